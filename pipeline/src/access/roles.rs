//! Permissions (`resource:action`), the built-in roles, and the route table: which permission each API route needs.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;

/// Every permission the API checks.
pub const PERMISSIONS: [&str; 12] = [
    "events:read",
    "dead_letters:read",
    "dashboards:read",
    "alerts:read",
    "health:read",
    "metrics:read",
    "jobs:run",
    "rules:write",
    "backtests:run",
    "tokens:read",
    "tokens:write",
    "audit:read",
];

const VIEWER: &[&str] = &["events:read", "dashboards:read", "alerts:read"];
const ANALYST: &[&str] = &["events:read", "dashboards:read", "alerts:read", "health:read", "jobs:run"];
const ENGINEER: &[&str] = &[
    "events:read",
    "dashboards:read",
    "alerts:read",
    "health:read",
    "jobs:run",
    "dead_letters:read",
    "metrics:read",
    "rules:write",
    "backtests:run",
];

/// The built-in roles and their permissions; `admin` has every permission.
pub const BUILT_IN_ROLES: [(&str, &[&str]); 4] =
    [("viewer", VIEWER), ("analyst", ANALYST), ("engineer", ENGINEER), ("admin", &["*"])];

/// `Ok` when `permission` is a known permission, `resource:*` of a known resource, or `*`.
pub fn check_permission(permission: &str) -> Result<(), String> {
    if permission == "*" || PERMISSIONS.contains(&permission) {
        return Ok(());
    }
    if let Some(resource) = permission.strip_suffix(":*") {
        if PERMISSIONS.iter().any(|known| known.split(':').next() == Some(resource)) {
            return Ok(());
        }
    }
    Err(format!("unknown permission {permission:?} (known: {}, resource:*, *)", PERMISSIONS.join(", ")))
}

/// The permissions of every role, built-in and custom, resolved once.
#[derive(Debug, Clone, Default)]
pub struct RoleBook {
    roles: BTreeMap<String, BTreeSet<String>>,
}

impl RoleBook {
    /// The built-in roles plus `custom` (validated by the configuration).
    pub fn new(custom: &BTreeMap<String, Vec<String>>) -> RoleBook {
        let mut roles: BTreeMap<String, BTreeSet<String>> = BUILT_IN_ROLES
            .iter()
            .map(|(name, permissions)| (name.to_string(), permissions.iter().map(|p| p.to_string()).collect()))
            .collect();
        for (name, permissions) in custom {
            roles.insert(name.clone(), permissions.iter().cloned().collect());
        }
        RoleBook { roles }
    }

    /// The grants of `roles` together; unknown roles grant nothing.
    pub fn grants(&self, roles: &[String]) -> BTreeSet<String> {
        roles.iter().filter_map(|role| self.roles.get(role)).flatten().cloned().collect()
    }

    /// Whether `role` exists.
    pub fn knows(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }
}

/// Whether `grants` include `permission` (exactly, by `resource:*`, or by `*`).
pub fn grants_allow(grants: &BTreeSet<String>, permission: &str) -> bool {
    let resource = permission.split(':').next().unwrap_or(permission);
    grants.contains("*") || grants.contains(permission) || grants.contains(&format!("{resource}:*"))
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone who reaches the port.
    Open,
    /// Nothing: the console's static files (they hold no data).
    Console,
    /// A valid credential, no particular permission (`/api/v1/whoami`).
    SignedIn,
    /// This permission.
    Permission(&'static str),
    /// This permission, unless `[api.auth] open_health` opens it.
    HealthDetail,
    /// This permission, unless `[api.auth] open_metrics` opens it.
    Metrics,
}

/// One API route and what it needs.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// The route's path as registered in the router (`{id}` for parameters).
    pub path: &'static str,
    /// What the caller needs.
    pub need: Need,
}

const fn route(method: Method, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

/// Every route of the API with its permission: the one place access is decided. A route the
/// router serves but this table lacks is refused (403) for everyone.
pub const ROUTES: [Route; 26] = [
    route(Method::GET, "/api/v1/health/live", Need::Open),
    route(Method::GET, "/api/v1/health/ready", Need::Open),
    route(Method::GET, "/api/v1/health", Need::HealthDetail),
    route(Method::GET, "/metrics", Need::Metrics),
    route(Method::GET, "/api/v1/events", Need::Permission("events:read")),
    route(Method::GET, "/api/v1/dead-letters", Need::Permission("dead_letters:read")),
    route(Method::GET, "/api/v1/dashboards/timeseries", Need::Permission("dashboards:read")),
    route(Method::GET, "/api/v1/dashboards/top", Need::Permission("dashboards:read")),
    route(Method::GET, "/api/v1/alerts", Need::Permission("alerts:read")),
    route(Method::GET, "/api/v1/alerts/{id}", Need::Permission("alerts:read")),
    route(Method::POST, "/api/v1/rules/reload", Need::Permission("rules:write")),
    route(Method::GET, "/api/v1/audit", Need::Permission("audit:read")),
    route(Method::GET, "/api/v1/tokens", Need::Permission("tokens:read")),
    route(Method::POST, "/api/v1/tokens", Need::Permission("tokens:write")),
    route(Method::DELETE, "/api/v1/tokens/{name}", Need::Permission("tokens:write")),
    route(Method::GET, "/api/v1/jobs", Need::Permission("jobs:run")),
    route(Method::POST, "/api/v1/jobs", Need::Permission("jobs:run")),
    route(Method::GET, "/api/v1/jobs/{id}", Need::Permission("jobs:run")),
    route(Method::DELETE, "/api/v1/jobs/{id}", Need::Permission("jobs:run")),
    route(Method::GET, "/api/v1/jobs/{id}/results", Need::Permission("jobs:run")),
    route(Method::GET, "/api/v1/jobs/{id}/ws", Need::Permission("jobs:run")),
    route(Method::POST, "/api/v1/search", Need::Permission("jobs:run")),
    route(Method::GET, "/api/v1/whoami", Need::SignedIn),
    route(Method::GET, "/api/v1/rules", Need::Permission("alerts:read")),
    route(Method::GET, "/", Need::Console),
    route(Method::GET, "/console/{file}", Need::Console),
];

/// What `method` on the registered route `path` needs; `None` when the table lacks it.
pub fn route_need(method: &Method, path: &str) -> Option<Need> {
    // HEAD is answered by GET routes.
    let method = if method == Method::HEAD { &Method::GET } else { method };
    ROUTES.iter().find(|route| route.method == *method && route.path == path).map(|route| route.need)
}

/// Whether `method` changes state (audited; needs a JSON body or none).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grow_from_viewer_to_admin() {
        let book = RoleBook::new(&BTreeMap::from([("auditor".to_string(), vec!["audit:read".to_string(), "events:*".to_string()])]));
        let grants = |role: &str| book.grants(&[role.to_string()]);
        assert!(grants_allow(&grants("viewer"), "events:read") && !grants_allow(&grants("viewer"), "jobs:run"));
        assert!(grants_allow(&grants("analyst"), "jobs:run") && !grants_allow(&grants("analyst"), "rules:write"));
        assert!(grants_allow(&grants("engineer"), "rules:write") && !grants_allow(&grants("engineer"), "audit:read"));
        for permission in PERMISSIONS {
            assert!(grants_allow(&grants("admin"), permission), "{permission}");
            check_permission(permission).unwrap();
        }
        assert!(grants_allow(&grants("auditor"), "audit:read") && grants_allow(&grants("auditor"), "events:read"));
        assert!(!grants_allow(&grants("auditor"), "alerts:read"));
        assert!(grants("nobody").is_empty());
        assert!(check_permission("events:write").is_err() && check_permission("bogus:*").is_err());
    }

    #[test]
    fn every_route_permission_is_a_known_one() {
        for route in ROUTES {
            if let Need::Permission(permission) = route.need {
                check_permission(permission).unwrap();
            }
        }
        assert_eq!(route_need(&Method::HEAD, "/api/v1/events"), Some(Need::Permission("events:read")));
        assert_eq!(route_need(&Method::GET, "/api/v1/rules/reload"), None);
    }
}
