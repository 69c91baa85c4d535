//! API access control: identities (API tokens, JWTs), roles and permissions, the route guard, the audit trail.
//!
//! [`Access`] is built once per process from `[api.auth]` and the data directory; the guard in
//! [`guard`] runs before every route, decides from the route table in [`roles`] and hands the
//! handlers the caller's [`Identity`] and its `TenantScope` as request extensions.

pub mod cli;
pub mod config;
mod guard;
pub mod jwt;
mod limiter;
pub mod roles;
pub mod tokens;

#[cfg(test)]
mod jwt_tests;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use securewatch_connectors::sinks::{AuditEntry, AuditLog, AuditOutcome};
use securewatch_schemas::TenantScope;

pub use config::{AuthConfig, AuthMode};
pub use guard::{guard, AuditDetail, TENANT_HEADER, WEBSOCKET_BEARER};

/// `response` with `detail` for the audit entry the guard writes for it.
pub fn guard_detail(mut response: axum::response::Response, detail: String) -> axum::response::Response {
    response.extensions_mut().insert(AuditDetail(detail));
    response
}

use self::jwt::JwtVerifier;
use self::limiter::FailureLimiter;
use self::roles::{grants_allow, RoleBook};
use self::tokens::TokenRegistry;

/// The tenant label of an identity that sees every tenant (the audit log's `*`).
pub use securewatch_connectors::sinks::audit::NO_TENANT;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Token name, `jwt:<subject>`, or `anonymous` when access control is off.
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// The tenants it sees.
    pub scope: TenantScope,
    grants: Arc<BTreeSet<String>>,
}

impl Identity {
    /// An identity with `roles` resolved by `book`, seeing `tenants` (`*` among them: all).
    pub fn new(name: String, roles: Vec<String>, tenants: &[String], book: &RoleBook) -> Identity {
        let scope = if tenants.iter().any(|tenant| tenant == NO_TENANT) {
            TenantScope::All
        } else {
            TenantScope::Only(tenants.to_vec())
        };
        let grants = Arc::new(book.grants(&roles));
        Identity { name, roles, scope, grants }
    }

    /// Everything, every tenant: the caller when access control is off.
    pub fn anonymous() -> Identity {
        Identity {
            name: "anonymous".into(),
            roles: Vec::new(),
            scope: TenantScope::All,
            grants: Arc::new(BTreeSet::from(["*".to_string()])),
        }
    }

    /// Every known permission the identity holds.
    pub fn permissions(&self) -> Vec<&'static str> {
        roles::PERMISSIONS.into_iter().filter(|permission| self.allows(permission)).collect()
    }

    /// Whether the identity holds `permission`.
    pub fn allows(&self, permission: &str) -> bool {
        grants_allow(&self.grants, permission)
    }

    /// The tenant written to the audit log: `*` for all (or none known), else the tenants
    /// joined by `,`.
    pub fn tenant_label(&self) -> String {
        match &self.scope {
            TenantScope::All => NO_TENANT.to_string(),
            TenantScope::Only(tenants) if tenants.is_empty() => NO_TENANT.to_string(),
            TenantScope::Only(tenants) => tenants.join(","),
        }
    }
}

/// Access control of one API: how callers are identified, what they may do, where it is logged.
pub struct Access {
    /// `[api.auth]`.
    pub config: AuthConfig,
    /// Whether the API listens on loopback only (then only loopback `Host` names are served
    /// unless `allowed_hosts` lists others).
    pub loopback: bool,
    /// `[api] allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// `[api] cors_origins`.
    pub cors_origins: Vec<String>,
    /// `[api] max_header_bytes`.
    pub max_header_bytes: usize,
    book: RoleBook,
    tokens: TokenRegistry,
    jwt: Option<JwtVerifier>,
    audit: Option<AuditLog>,
    limiter: FailureLimiter,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Access").field("mode", &self.config.mode).finish_non_exhaustive()
    }
}

/// What [`Access::start`] needs from the API's configuration.
pub struct AccessSettings<'a> {
    /// `[api.auth]`.
    pub auth: &'a AuthConfig,
    /// The API's address.
    pub listen: SocketAddr,
    /// `[api] allowed_hosts`.
    pub allowed_hosts: &'a [String],
    /// `[api] cors_origins`.
    pub cors_origins: &'a [String],
    /// `[api] max_header_bytes`.
    pub max_header_bytes: usize,
}

impl Access {
    /// Resolves the configured tokens, reads the tokens file of `data_dir`, reads the JWT keys
    /// and fetches the JWKS; refuses auth off on a non-loopback address.
    pub async fn start(settings: AccessSettings<'_>, data_dir: &Path, audit: Option<AuditLog>) -> anyhow::Result<Arc<Access>> {
        let auth = settings.auth;
        let loopback = settings.listen.ip().is_loopback();
        if auth.mode == AuthMode::Off {
            if !loopback {
                anyhow::bail!(
                    "[api.auth] mode = \"off\" on {}: refusing to serve the API without access control on a \
                     non-loopback address; turn auth on or listen on 127.0.0.1",
                    settings.listen
                );
            }
            tracing::warn!("[api.auth] mode = \"off\": the API answers anyone who reaches {} without credentials.", settings.listen);
        }
        let tokens = TokenRegistry::new(tokens::resolve_configured(&auth.tokens)?, Some(data_dir))?;
        let jwt = match &auth.jwt {
            Some(config) => {
                let verifier = JwtVerifier::new(config)?;
                verifier.prefetch().await;
                Some(verifier)
            }
            None => None,
        };
        if auth.mode == AuthMode::On && tokens.is_empty() && jwt.is_none() {
            tracing::warn!("[api.auth]: no API token and no JWT configured; every API call but health will be refused.");
        }
        Ok(Arc::new(Access {
            config: auth.clone(),
            loopback,
            allowed_hosts: settings.allowed_hosts.to_vec(),
            cors_origins: settings.cors_origins.to_vec(),
            max_header_bytes: settings.max_header_bytes,
            book: RoleBook::new(&auth.roles),
            tokens,
            jwt,
            audit,
            limiter: FailureLimiter::new(auth.failed_per_minute),
        }))
    }

    /// The identity behind a bearer credential, or why it was refused (for the log; never
    /// shown to the client in detail).
    pub async fn identify(&self, credential: &str) -> Result<Identity, String> {
        let looks_like_jwt = credential.matches('.').count() == 2;
        if looks_like_jwt {
            let Some(jwt) = &self.jwt else { return Err("a JWT, but [api.auth.jwt] is not configured".into()) };
            let claims = jwt.verify(credential).await.map_err(|refusal| refusal.to_string())?;
            let (name, roles, tenants) = jwt.identity(&claims);
            let roles: Vec<String> = roles.into_iter().filter(|role| self.book.knows(role)).collect();
            return Ok(Identity::new(name, roles, &tenants, &self.book));
        }
        match self.tokens.verify(credential) {
            Ok(known) => Ok(Identity::new(known.name, known.roles, &known.tenants, &self.book)),
            Err(tokens::TokenRefusal::Expired) => Err("expired API token".into()),
            Err(tokens::TokenRefusal::Unknown) => Err("unknown API token".into()),
        }
    }

    /// Writes `entry` to the audit log (when the process has a store) and as a `tracing` event.
    pub async fn audit(&self, entry: AuditEntry) {
        record(self.audit.as_ref(), entry).await;
    }
}

/// Logs `entry` as a `tracing` event and appends it to `log` when there is one; a failed write
/// is logged and counted, never fails the call it describes.
pub async fn record(log: Option<&AuditLog>, entry: AuditEntry) {
    tracing::info!(
        target: "securewatch::audit",
        identity = %entry.identity,
        tenant = %entry.tenant,
        action = %entry.action,
        resource = %entry.resource,
        outcome = entry.outcome.as_str(),
        peer = entry.peer.as_deref().unwrap_or("-"),
        detail = %entry.detail,
        "Audit."
    );
    if let Some(log) = log {
        if let Err(error) = log.append(&entry).await {
            metrics::counter!("securewatch_audit_write_failures_total").increment(1);
            tracing::error!(%error, "Cannot write the audit entry to the store.");
        }
    }
}

/// An audit entry of now.
pub fn entry(identity: &str, tenant: &str, action: &str, resource: String, outcome: AuditOutcome, peer: Option<String>, detail: String) -> AuditEntry {
    AuditEntry {
        time: chrono::Utc::now(),
        identity: identity.to_string(),
        tenant: tenant.to_string(),
        action: action.to_string(),
        resource,
        outcome,
        peer,
        detail,
    }
}
