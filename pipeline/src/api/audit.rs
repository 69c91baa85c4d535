//! `GET /api/v1/audit`: the audit log of the caller's tenants, newest first (`audit:read`).

use axum::extract::{Query, State};
use axum::{Extension, Json};
use securewatch_connectors::sinks::audit::MAX_AUDIT_ROWS;
use securewatch_connectors::sinks::{AuditEntry, AuditOutcome, AuditQuery};
use securewatch_schemas::TenantScope;
use serde::Deserialize;

use super::events::non_empty;
use super::{ApiError, ApiState};

/// Query string of `/api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Most entries (default 100, at most 10000).
    limit: Option<u32>,
    /// `ok`, `refused` or `failed`.
    outcome: Option<String>,
    /// Only this identity.
    identity: Option<String>,
}

/// Audit entries newest first, of the tenants the caller sees.
pub async fn list_audit(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_AUDIT_ROWS {
        return Err(ApiError::bad_request(format!("limit: 1 to {MAX_AUDIT_ROWS}")));
    }
    let outcome = match non_empty(params.outcome).as_deref() {
        None => None,
        Some("ok") => Some(AuditOutcome::Ok),
        Some("refused") => Some(AuditOutcome::Refused),
        Some("failed") => Some(AuditOutcome::Failed),
        Some(other) => return Err(ApiError::bad_request(format!("outcome: expected ok, refused or failed, got {other:?}"))),
    };
    let query = AuditQuery { limit, outcome, identity: non_empty(params.identity) };
    Ok(Json(state.reader.audit(&scope, &query).await?))
}
