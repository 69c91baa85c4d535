//! The audit log: who did what to which resource, appended to the embedded store (and PostgreSQL when configured), never changed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use securewatch_schemas::TenantScope;
use serde::Serialize;

use super::postgres::{PostgresError, PostgresSink};
use super::sqlite::{SqliteStore, StoreError};

/// The tenant of entries that belong to no single tenant (an identity of every tenant, or a
/// refused credential): only callers who see every tenant read them.
pub const NO_TENANT: &str = "*";

/// Most entries one audit read returns.
pub const MAX_AUDIT_ROWS: u32 = 10_000;

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused: a missing or invalid credential, a missing permission, a refused request.
    Refused,
    /// Allowed, but it failed (e.g. a rule reload whose new rules did not load).
    Failed,
}

impl AuditOutcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> AuditOutcome {
        match text {
            "ok" => AuditOutcome::Ok,
            "failed" => AuditOutcome::Failed,
            _ => AuditOutcome::Refused,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Token name or JWT subject; `-` when no credential was accepted.
    pub identity: String,
    /// The identity's tenant ([`NO_TENANT`] for all or none; several joined by `,`).
    pub tenant: String,
    /// What was attempted, e.g. `rules:write`, `tokens:write`, `authenticate`.
    pub action: String,
    /// What it was attempted on, e.g. `POST /api/v1/rules/reload` or `token grafana`.
    pub resource: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The client's address (`cli` for the command line).
    pub peer: Option<String>,
    /// Why, for a refusal or failure; never a secret.
    pub detail: String,
}

impl AuditEntry {
    /// The stored outcome spelling read back.
    pub(super) fn outcome_from(text: &str) -> AuditOutcome {
        AuditOutcome::parse(text)
    }
}

/// Filters of an audit read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Most entries returned, newest first (at most [`MAX_AUDIT_ROWS`]).
    pub limit: u32,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only this identity.
    pub identity: Option<String>,
}

/// The tenants whose entries `scope` reads, as the SQL filter needs them: `None` for every
/// tenant, else the list (possibly empty: nothing to read).
pub(super) fn tenant_filter(scope: &TenantScope) -> Option<&[String]> {
    match scope {
        TenantScope::All => None,
        TenantScope::Only(tenants) => Some(tenants),
    }
}

/// Why an audit entry could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The embedded store refused it.
    #[error("SQLite store: {0}")]
    Sqlite(#[from] StoreError),
    /// PostgreSQL refused it.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] PostgresError),
}

/// Appends audit entries to the embedded store and, when configured, PostgreSQL. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sqlite: SqliteStore,
    postgres: Option<Arc<PostgresSink>>,
}

impl AuditLog {
    /// A log writing to `sqlite` and `postgres`.
    pub fn new(sqlite: SqliteStore, postgres: Option<Arc<PostgresSink>>) -> AuditLog {
        AuditLog { sqlite, postgres }
    }

    /// Appends `entry` to every store: SQLite first (which the API reads), then PostgreSQL.
    pub async fn append(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        self.sqlite.append_audit(entry).await?;
        if let Some(postgres) = &self.postgres {
            postgres.append_audit(entry).await?;
        }
        Ok(())
    }
}
