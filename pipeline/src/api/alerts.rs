//! `GET /api/v1/alerts` (filtered, newest first), `GET /api/v1/alerts/{id}` (with the contributing
//! events), `GET /api/v1/rules` and `POST /api/v1/rules/reload`. Alerts are read from PostgreSQL when it is configured.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::read::{AlertQuery, StoredEvent};
use securewatch_schemas::{Alert, AlertLevel, EventId, TenantScope};
use serde::{Deserialize, Serialize};

use super::events::{limit, non_empty, parse_time};
use super::{ApiError, ApiState};
use crate::rules::{ReloadReport, RulesListing};

/// Query string of `/api/v1/alerts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsParams {
    limit: Option<u32>,
    /// Rule (or correlation) id.
    rule: Option<String>,
    level: Option<String>,
    /// `rule` or a correlation type.
    kind: Option<String>,
    /// Last contributing event at or after (RFC 3339 or epoch seconds).
    from: Option<String>,
    /// Last contributing event before.
    to: Option<String>,
}

/// An alert as the API returns it: the alert (times as RFC 3339), its contributing event ids,
/// and on `/api/v1/alerts/{id}` the events themselves.
#[derive(Debug, Serialize)]
pub struct AlertBody {
    id: String,
    tenant: String,
    rule_id: String,
    title: String,
    level: Option<&'static str>,
    kind: String,
    tags: Vec<String>,
    group: BTreeMap<String, String>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    event_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<StoredEvent>>,
}

impl AlertBody {
    pub(crate) fn new(alert: Alert, events: Option<Vec<StoredEvent>>) -> AlertBody {
        let time = |ms: u64| DateTime::from_timestamp_millis(ms as i64).unwrap_or_default();
        AlertBody {
            id: alert.id.to_string(),
            tenant: alert.tenant.to_string(),
            rule_id: alert.rule_id,
            title: alert.rule_title,
            level: alert.level.map(AlertLevel::as_str),
            kind: alert.kind,
            tags: alert.tags,
            group: alert.group_key,
            window_start: time(alert.window_start_ms),
            window_end: time(alert.window_end_ms),
            fired_at: time(alert.fired_at_ms),
            first_seen: time(alert.first_seen_ms),
            last_seen: time(alert.last_seen_ms),
            event_ids: alert.event_ids.iter().map(ToString::to_string).collect(),
            events,
        }
    }
}

/// Alerts newest first.
pub async fn list_alerts(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<AlertsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AlertBody>>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let level = non_empty(params.level);
    if let Some(level) = &level {
        if AlertLevel::parse(level).is_none() {
            let names: Vec<_> = AlertLevel::ALL.iter().map(|level| level.as_str()).collect();
            return Err(ApiError::bad_request(format!("level: expected one of {}, got {level:?}", names.join(", "))));
        }
    }
    let query = AlertQuery {
        limit: limit(params.limit)?,
        rule_id: non_empty(params.rule),
        level,
        kind: non_empty(params.kind),
        from: parse_time("from", &params.from)?,
        to: parse_time("to", &params.to)?,
    };
    let alerts = state.reader.alerts(&query, &scope).await?;
    Ok(Json(alerts.into_iter().map(|alert| AlertBody::new(alert, None)).collect()))
}

/// One alert with its contributing events; 404 when there is none with that id.
/// An alert of a tenant outside the caller's scope is not found either.
pub async fn get_alert(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    Path(id): Path<String>,
) -> Result<Json<AlertBody>, ApiError> {
    let id: EventId = id.parse().map_err(|_| ApiError::bad_request(format!("{id:?} is not an alert id (32 hex digits)")))?;
    let found = state.reader.alert(id, &scope).await?;
    match found {
        Some((alert, events)) => Ok(Json(AlertBody::new(alert, Some(events)))),
        None => Err(ApiError::not_found(format!("no alert {id}"))),
    }
}

/// Reloads the rules directory now: 200 with the report when the new set is in force, 422 with
/// the report (its `new_errors`) when it was refused and the old set keeps running, 409 when
/// detection is not configured.
pub async fn reload_rules(State(state): State<ApiState>) -> Result<(StatusCode, Json<ReloadReport>), ApiError> {
    let Some(reloader) = state.rules.clone() else {
        return Err(ApiError::conflict("detection is not configured ([detection] rules_dir)"));
    };
    let mut report = reloader.reload().await.map_err(|error| ApiError::internal(crate::errors::error_chain(&error)))?;
    if let Some(directory) = reloader.rules_dir() {
        report.relative_to(directory);
    }
    let status = if report.applied { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Json(report)))
}

/// The rules in force and the rejected ones with reasons; 409 when detection is not configured.
pub async fn list_rules(State(state): State<ApiState>) -> Result<Json<RulesListing>, ApiError> {
    match &state.rules {
        Some(reloader) => Ok(Json(reloader.listing())),
        None => Err(ApiError::conflict("detection is not configured ([detection] rules_dir)")),
    }
}
