//! `GET /api/v1/health`: liveness plus the reachability of every sink and the queue depth (needs
//! `health:read`); `/api/v1/health/live` and `/api/v1/health/ready`: status codes only, open to
//! probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

/// 200 while the process serves requests; no body.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// 200 when every configured store answers, 503 otherwise; no body.
pub async fn ready(State(state): State<ApiState>) -> StatusCode {
    let stores = state.reader.health().await;
    if stores.iter().all(|store| store.state.is_ok()) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// 200 with details when the store and every configured sink answer, 503 otherwise.
pub async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let stores = state.reader.health().await;
    let text = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(error) => error.clone(),
    };
    let sinks: serde_json::Map<String, Value> =
        stores.iter().map(|store| (store.name.to_string(), Value::String(text(&store.state)))).collect();
    let healthy = stores.iter().all(|store| store.state.is_ok());
    let listeners: serde_json::Map<String, Value> = state
        .listeners
        .iter()
        .map(|(name, address)| (name.clone(), Value::String(address.to_string())))
        .collect();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "store": text(&stores[0].state),
        "sinks": sinks,
        "queue": {"depth": state.queue.depth(), "capacity": state.queue.capacity()},
        "uptime_seconds": state.started.elapsed().as_secs(),
        "listeners": listeners,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
