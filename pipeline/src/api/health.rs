//! `GET /api/v1/health`: liveness plus store reachability and queue depth.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

/// 200 with details when the store answers, 503 otherwise.
pub async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let store = sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(state.store.pool()).await;
    let listeners: serde_json::Map<String, Value> = state
        .listeners
        .iter()
        .map(|(name, address)| (name.clone(), Value::String(address.to_string())))
        .collect();
    let body = json!({
        "status": if store.is_ok() { "ok" } else { "degraded" },
        "store": match &store { Ok(_) => "ok".to_string(), Err(error) => error.to_string() },
        "queue": {"depth": state.queue.depth(), "capacity": state.queue.capacity()},
        "uptime_seconds": state.started.elapsed().as_secs(),
        "listeners": listeners,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if store.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
