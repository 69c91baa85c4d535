//! `GET /api/v1/tokens` (`tokens:read`), `POST /api/v1/tokens` and `DELETE /api/v1/tokens/{name}` (`tokens:write`): the tokens file of the data directory over HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::access::guard_detail;
use crate::access::tokens::{self, TokenError};
use crate::access::Identity;

/// A token as listed: never the token or its hash.
#[derive(Debug, Serialize)]
pub struct TokenBody {
    name: String,
    roles: Vec<String>,
    tenants: Vec<String>,
    created: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
}

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    roles: Vec<String>,
    #[serde(default)]
    tenants: Vec<String>,
    expires_in_days: Option<u32>,
}

fn token_error(error: TokenError) -> ApiError {
    match error {
        TokenError::Invalid(message) => ApiError::unprocessable(message),
        other => ApiError::internal(other),
    }
}

/// The tokens of the tokens file.
pub async fn list_tokens(State(state): State<ApiState>) -> Result<Json<Vec<TokenBody>>, ApiError> {
    let stored = tokens::read_file(&state.data_dir).map_err(token_error)?;
    let body = stored
        .into_iter()
        .map(|token| TokenBody { name: token.name, roles: token.roles, tenants: token.tenants, created: token.created, expires: token.expires })
        .collect();
    Ok(Json(body))
}

/// Creates a token: 201 with the token, shown only in this answer. A caller cannot hand out
/// tenants it does not see itself.
pub async fn create_token(
    State(state): State<ApiState>,
    Extension(caller): Extension<Identity>,
    body: Result<Json<CreateToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| ApiError { status: rejection.status(), message: rejection.body_text() })?;
    for role in &body.roles {
        state.access.config.check_role(role).map_err(ApiError::unprocessable)?;
    }
    let tenants = if body.tenants.is_empty() { vec![securewatch_schemas::DEFAULT_TENANT.to_string()] } else { body.tenants.clone() };
    for tenant in &tenants {
        let allowed = if tenant == "*" { caller.scope == securewatch_schemas::TenantScope::All } else { caller.scope.allows(tenant) };
        if !allowed {
            return Err(ApiError { status: StatusCode::FORBIDDEN, message: format!("you cannot grant tenant {tenant:?}") });
        }
    }
    let expires = body.expires_in_days.map(|days| Utc::now() + Duration::days(i64::from(days)));
    let token = tokens::create(&state.data_dir, &body.name, body.roles.clone(), tenants.clone(), expires).map_err(token_error)?;
    let answer = serde_json::json!({ "name": body.name, "token": token, "roles": body.roles, "tenants": tenants, "expires": expires });
    let detail = format!("token {} created; roles {}; tenants {}", body.name, body.roles.join(","), tenants.join(","));
    Ok(guard_detail((StatusCode::CREATED, Json(answer)).into_response(), detail))
}

/// Revokes a token of the tokens file: 204, or 404 when there is none of that name.
pub async fn revoke_token(State(state): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    if !tokens::revoke(&state.data_dir, &name).map_err(token_error)? {
        return Err(ApiError::not_found(format!("no token named {name:?}")));
    }
    Ok(guard_detail(StatusCode::NO_CONTENT.into_response(), format!("token {name} revoked")))
}
