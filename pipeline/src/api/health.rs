//! `GET /api/v1/health`: liveness plus the reachability of every sink and the queue depth.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

/// How long a sink may take to answer the health check.
const SINK_TIMEOUT: Duration = Duration::from_secs(2);

/// `"ok"` or why the sink did not answer.
async fn reachability<E: std::fmt::Display>(check: impl std::future::Future<Output = Result<(), E>>) -> Result<(), String> {
    match tokio::time::timeout(SINK_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", SINK_TIMEOUT.as_secs())),
    }
}

/// 200 with details when the store and every configured sink answer, 503 otherwise.
pub async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    let store = reachability(async { sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(state.store.pool()).await.map(drop) });
    let postgres = async {
        match &state.postgres {
            Some(postgres) => Some(
                reachability(async { sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(postgres.pool()).await.map(drop) })
                    .await,
            ),
            None => None,
        }
    };
    let opensearch = async {
        match &state.opensearch {
            Some(opensearch) => Some(reachability(opensearch.ping()).await),
            None => None,
        }
    };
    let (store, postgres, opensearch) = tokio::join!(store, postgres, opensearch);
    let text = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(error) => error.clone(),
    };
    let mut sinks = serde_json::Map::new();
    sinks.insert("sqlite".into(), Value::String(text(&store)));
    for (name, result) in [("postgres", &postgres), ("opensearch", &opensearch)] {
        if let Some(result) = result {
            sinks.insert(name.into(), Value::String(text(result)));
        }
    }
    let healthy = store.is_ok() && [&postgres, &opensearch].iter().all(|result| !matches!(result, Some(Err(_))));
    let listeners: serde_json::Map<String, Value> = state
        .listeners
        .iter()
        .map(|(name, address)| (name.clone(), Value::String(address.to_string())))
        .collect();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "store": text(&store),
        "sinks": sinks,
        "queue": {"depth": state.queue.depth(), "capacity": state.queue.capacity()},
        "uptime_seconds": state.started.elapsed().as_secs(),
        "listeners": listeners,
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
