//! `GET /api/v1/health`: liveness plus the reachability of every sink and the queue depth (needs
//! `health:read`); `/api/v1/health/live` and `/api/v1/health/ready`: status codes only, open to
//! probes. Readiness follows the process's [`Readiness`]: starting (restoring the dataflow's
//! state from the store), ready, or stopping.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

/// Where the process is in its life, as readiness probes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The API answers, but the dataflow's state is still being restored from the store.
    Starting,
    /// Everything runs.
    Ready,
    /// Shutdown began: the sources drain and nothing new should be routed here.
    Stopping,
}

impl Phase {
    /// The phase's name in `/api/v1/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Stopping => "stopping",
        }
    }
}

/// The process's [`Phase`], shared by the role that moves it and the API that reports it.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// A process that is [`Phase::Starting`].
    pub fn starting() -> Readiness {
        Readiness(Arc::new(AtomicU8::new(Phase::Starting as u8)))
    }

    /// A process that is [`Phase::Ready`] from the start (tests, roles without a restore).
    pub fn ready() -> Readiness {
        let readiness = Readiness::starting();
        readiness.set(Phase::Ready);
        readiness
    }

    /// Moves to `phase`; a stopping process never becomes ready again.
    pub fn set(&self, phase: Phase) {
        if phase == Phase::Stopping {
            self.0.store(Phase::Stopping as u8, Ordering::Release);
        } else {
            let _ = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current != Phase::Stopping as u8).then_some(phase as u8)
            });
        }
    }

    /// 200 when ready, 503 otherwise: the answer of a readiness probe before the stores' check.
    pub fn status(&self) -> StatusCode {
        if self.phase() == Phase::Ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            value if value == Phase::Starting as u8 => Phase::Starting,
            value if value == Phase::Ready as u8 => Phase::Ready,
            _ => Phase::Stopping,
        }
    }
}

/// 200 while the process serves requests; no body.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// 200 when the process is [`Phase::Ready`] and every configured store answers, 503 otherwise;
/// no body.
pub async fn ready(State(state): State<ApiState>) -> StatusCode {
    if state.readiness.status() != StatusCode::OK {
        return state.readiness.status();
    }
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
    let phase = state.readiness.phase();
    let healthy = stores.iter().all(|store| store.state.is_ok()) && phase != Phase::Stopping;
    let listeners: serde_json::Map<String, Value> = state
        .listeners
        .iter()
        .map(|(name, address)| (name.clone(), Value::String(address.to_string())))
        .collect();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "phase": phase.as_str(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::config::AuthConfig;
    use crate::access::AuthMode;
    use crate::api::access_tests;
    use securewatch_connectors::sinks::sqlite::{SqliteConfig, SqliteStore};

    #[test]
    fn a_stopping_process_never_becomes_ready_again() {
        let readiness = Readiness::starting();
        assert_eq!((readiness.phase(), readiness.status()), (Phase::Starting, StatusCode::SERVICE_UNAVAILABLE));
        readiness.set(Phase::Ready);
        assert_eq!((readiness.phase(), readiness.status()), (Phase::Ready, StatusCode::OK));
        readiness.set(Phase::Stopping);
        readiness.set(Phase::Ready);
        assert_eq!((readiness.phase(), readiness.status()), (Phase::Stopping, StatusCode::SERVICE_UNAVAILABLE));
    }

    #[tokio::test]
    async fn readiness_answers_503_while_restoring_and_stopping_and_liveness_200_throughout() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let auth = AuthConfig { mode: AuthMode::Off, ..Default::default() };
        let access = access_tests::access(&auth, &crate::config::ApiConfig::default(), dir.path(), &store).await;
        let readiness = Readiness::starting();
        let state = ApiState { readiness: readiness.clone(), ..access_tests::state(&store, access, dir.path(), None) };
        let phase_of = |Json(body): Json<Value>| body["phase"].as_str().unwrap().to_string();

        assert_eq!(ready(State(state.clone())).await, StatusCode::SERVICE_UNAVAILABLE, "restoring");
        assert_eq!(live().await, StatusCode::OK);
        let (status, body) = health(State(state.clone())).await;
        assert_eq!((status, phase_of(body).as_str()), (StatusCode::OK, "starting"), "a start is not a fault");

        readiness.set(Phase::Ready);
        assert_eq!(ready(State(state.clone())).await, StatusCode::OK);

        readiness.set(Phase::Stopping);
        assert_eq!(ready(State(state.clone())).await, StatusCode::SERVICE_UNAVAILABLE, "stopping");
        assert_eq!(live().await, StatusCode::OK);
        let (status, body) = health(State(state)).await;
        assert_eq!((status, phase_of(body).as_str()), (StatusCode::SERVICE_UNAVAILABLE, "stopping"));
        store.close().await;
    }
}
