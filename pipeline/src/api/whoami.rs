//! `GET /api/v1/whoami`: who the caller is, its roles, tenants and permissions (what the console shows).

use axum::{Extension, Json};
use securewatch_schemas::TenantScope;
use serde::Serialize;

use crate::access::Identity;

/// The caller as the console needs it.
#[derive(Debug, Serialize)]
pub struct WhoamiBody {
    name: String,
    roles: Vec<String>,
    /// The tenants it sees; empty with `all_tenants`.
    tenants: Vec<String>,
    /// Whether it sees every tenant.
    all_tenants: bool,
    /// Every permission it holds.
    permissions: Vec<&'static str>,
}

/// The caller's identity (after the tenant header, when sent, narrowed it).
pub async fn whoami(Extension(identity): Extension<Identity>) -> Json<WhoamiBody> {
    let (tenants, all_tenants) = match &identity.scope {
        TenantScope::All => (Vec::new(), true),
        TenantScope::Only(tenants) => (tenants.clone(), false),
    };
    Json(WhoamiBody { permissions: identity.permissions(), name: identity.name, roles: identity.roles, tenants, all_tenants })
}
