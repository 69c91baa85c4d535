//! Tenants: whose data an event, alert or read belongs to, and which tenants a caller may see.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The tenant of data whose source names none.
pub const DEFAULT_TENANT: &str = "default";

/// The longest tenant name accepted.
pub const MAX_TENANT_LEN: usize = 64;

/// The tenant an event, alert, rollup row or dead letter belongs to.
///
/// A shared string: a source parses its tenant once and every record it produces holds a
/// clone of the same `Arc`, so the hot path never allocates for it. Names are 1 to
/// [`MAX_TENANT_LEN`] characters of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit
/// (safe in SQL literals, URLs, metric labels and OpenSearch index names); [`Tenant::parse`]
/// and deserialisation check that (so a config file's bad tenant is refused with its line).
/// Values read back from a store or the bus ([`Tenant::from_stored`]) are taken as written.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(Arc<str>);

/// Why a tenant name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantNameError {
    /// The name is empty.
    #[error("a tenant name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_TENANT_LEN`].
    #[error("tenant name is {0} characters, longer than {MAX_TENANT_LEN}")]
    TooLong(usize),
    /// The name holds a character outside `a-z 0-9 - _`, or starts with `-` or `_`.
    #[error("tenant name {0:?} may hold only a-z, 0-9, '-' and '_', starting with a letter or digit")]
    Charset(String),
}

impl Tenant {
    /// The `default` tenant (one shared allocation for the whole process).
    pub fn default_tenant() -> Tenant {
        static DEFAULT: OnceLock<Tenant> = OnceLock::new();
        DEFAULT.get_or_init(|| Tenant(Arc::from(DEFAULT_TENANT))).clone()
    }

    /// A validated tenant name (see the type's documentation for the charset).
    pub fn parse(name: &str) -> Result<Tenant, TenantNameError> {
        if name.is_empty() {
            return Err(TenantNameError::Empty);
        }
        if name.len() > MAX_TENANT_LEN {
            return Err(TenantNameError::TooLong(name.len()));
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !name.chars().all(allowed) {
            return Err(TenantNameError::Charset(name.to_string()));
        }
        Ok(Tenant::from_stored(name))
    }

    /// A tenant read back from a store or the bus, taken as written (the default tenant's
    /// allocation is shared).
    pub fn from_stored(name: &str) -> Tenant {
        if name == DEFAULT_TENANT {
            Tenant::default_tenant()
        } else {
            Tenant(Arc::from(name))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the `default` tenant.
    pub fn is_default(&self) -> bool {
        &*self.0 == DEFAULT_TENANT
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant::default_tenant()
    }
}

impl Deref for Tenant {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Tenant {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Tenant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Tenant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Tenant::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Which tenants a read may return.
///
/// The API derives it from the caller's identity and hands it to every read of the store,
/// which filters by it; handlers never filter themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantScope {
    /// Every tenant (an administrator, or access control turned off).
    All,
    /// Only these tenants; an empty list sees nothing.
    Only(Vec<String>),
}

impl TenantScope {
    /// The tenants of an `Only` scope; `None` for `All`.
    pub fn tenants(&self) -> Option<&[String]> {
        match self {
            TenantScope::All => None,
            TenantScope::Only(tenants) => Some(tenants),
        }
    }

    /// Whether data of `tenant` may be shown under this scope.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.iter().any(|allowed| allowed == tenant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_allows_only_its_tenants() {
        let acme = TenantScope::Only(vec!["acme".into()]);
        assert!(acme.allows("acme"));
        assert!(!acme.allows("globex"));
        assert!(!TenantScope::Only(Vec::new()).allows(DEFAULT_TENANT));
        assert!(TenantScope::All.allows("globex"));
    }

    #[test]
    fn tenant_names_are_checked() {
        assert_eq!(Tenant::parse("acme-eu_2").unwrap().as_str(), "acme-eu_2");
        assert!(Tenant::parse("default").unwrap().is_default());
        assert_eq!(Tenant::parse(""), Err(TenantNameError::Empty));
        assert!(matches!(Tenant::parse(&"a".repeat(65)), Err(TenantNameError::TooLong(65))));
        for bad in ["Acme", "-acme", "_x", "a b", "a'b", "a/b", "ä"] {
            assert!(matches!(Tenant::parse(bad), Err(TenantNameError::Charset(_))), "{bad}");
        }
    }

    #[test]
    fn tenants_serialise_as_plain_strings() {
        let acme = Tenant::parse("acme").unwrap();
        assert_eq!(serde_json::to_string(&acme).unwrap(), "\"acme\"");
        assert_eq!(serde_json::from_str::<Tenant>("\"acme\"").unwrap(), acme);
        assert_eq!(format!("{acme:?}"), "\"acme\"");
        let refused = serde_json::from_str::<Tenant>("\"Acme Corp\"").unwrap_err().to_string();
        assert!(refused.contains("may hold only a-z, 0-9"), "{refused}");
    }
}
