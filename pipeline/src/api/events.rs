//! `GET /api/v1/events` (newest first, filtered) and `GET /api/v1/dead-letters`.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::sqlite::{EventQuery, StoredDeadLetter, StoredEvent};
use serde::Deserialize;

use super::{ApiError, ApiState};

/// Default and maximum page sizes.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// Query string of `/api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    limit: Option<u32>,
    source: Option<String>,
    host: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn parse_time(name: &str, text: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if let Some(time) = DateTime::from_timestamp_micros((seconds * 1e6) as i64) {
            return Ok(Some(time));
        }
    }
    Err(ApiError::bad_request(format!("{name}: expected RFC 3339 or epoch seconds, got {text:?}")))
}

fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    match value.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::bad_request("limit must be at least 1")),
        value if value > MAX_LIMIT => Err(ApiError::bad_request(format!("limit must be at most {MAX_LIMIT}"))),
        value => Ok(value),
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

/// Events newest first; `source` matches the source kind or the configured source name.
pub async fn list_events(
    State(state): State<ApiState>,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let query = EventQuery {
        limit: limit(params.limit)?,
        from: parse_time("from", &params.from)?,
        to: parse_time("to", &params.to)?,
        source: non_empty(params.source),
        host: non_empty(params.host),
        q: non_empty(params.q),
    };
    state.store.events(&query).await.map(Json).map_err(ApiError::internal)
}

/// Query string of `/api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    limit: Option<u32>,
}

/// The most recent dead letters with their reasons.
pub async fn list_dead_letters(
    State(state): State<ApiState>,
    params: Result<Query<DeadLetterParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StoredDeadLetter>>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    state.store.dead_letters(limit(params.limit)?).await.map(Json).map_err(ApiError::internal)
}
