//! Tenants: whose data an event, alert or read belongs to, and which tenants a caller may see.

use serde::{Deserialize, Serialize};

/// The tenant of data whose source names none.
pub const DEFAULT_TENANT: &str = "default";

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
}
