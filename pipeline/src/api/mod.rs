//! The HTTP API and the web console: health, events, dead letters, dashboards, alerts, search jobs, audit log, tokens and Prometheus metrics, every route behind the access guard.

mod alerts;
mod audit;
mod console;
mod dashboards;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod jobs;
mod jobs_ws;
mod whoami;

pub use jobs::csv_cell;
pub(crate) use alerts::AlertBody;
mod tokens;
#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod hardening_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use securewatch_connectors::log_limit::{SharedWarnLimiter, DEFAULT_INTERVAL};
use securewatch_connectors::queue::QueueMonitor;
use securewatch_connectors::sinks::read::ReadError;
use securewatch_connectors::sinks::StoreReader;
use serde::Serialize;

use crate::access::{self, Access};
use crate::rules::RulesReloader;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Every read of the stores goes through it; it knows which store answers what.
    pub reader: StoreReader,
    pub queue: QueueMonitor,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    /// Listening addresses of the sources, shown by the health endpoint.
    pub listeners: Arc<Vec<(String, SocketAddr)>>,
    /// Event fields whose IPs are looked up for `/api/v1/events` enrichment
    /// (`[enrichment] ip_fields`).
    pub ip_fields: Arc<[String]>,
    /// Most bytes of events in one `/api/v1/events` answer ([`events::MAX_ANSWER_BYTES`]).
    pub max_answer_bytes: usize,
    /// The detection rules' reloader (`None`: no `[detection] rules_dir`).
    pub rules: Option<Arc<RulesReloader>>,
    /// Access control: the guard of every route.
    pub access: Arc<Access>,
    /// The data directory (its tokens file).
    pub data_dir: Arc<std::path::PathBuf>,
    /// Largest request body ([api] max_body_bytes).
    pub max_body_bytes: usize,
    /// Starting, ready or stopping: what `/api/v1/health/ready` answers from.
    pub readiness: health::Readiness,
    /// The job runner (searches, backtests).
    pub jobs: Arc<crate::jobs::Jobs>,
    /// What backtests take from the configuration (rules directory, pipelines, lateness).
    pub backtest: Arc<crate::jobs::backtest::BacktestSettings>,
}

/// The router of `/api/v1/...` and `/metrics`, every route behind the access guard.
pub fn router(state: ApiState) -> Router {
    let access = Arc::clone(&state.access);
    let max_body_bytes = state.max_body_bytes;
    let routes = Router::new()
        .route("/api/v1/health/live", get(health::live))
        .route("/api/v1/health/ready", get(health::ready))
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/events", get(events::list_events))
        .route("/api/v1/dead-letters", get(events::list_dead_letters))
        .route("/api/v1/dashboards/timeseries", get(dashboards::timeseries))
        .route("/api/v1/dashboards/top", get(dashboards::top))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/alerts/{id}", get(alerts::get_alert))
        .route("/api/v1/rules/reload", post(alerts::reload_rules))
        .route("/api/v1/audit", get(audit::list_audit))
        .route("/api/v1/tokens", get(tokens::list_tokens).post(tokens::create_token))
        .route("/api/v1/tokens/{name}", axum::routing::delete(tokens::revoke_token))
        .route("/api/v1/jobs", get(jobs::list_jobs).post(jobs::create_job))
        .route("/api/v1/jobs/{id}", get(jobs::get_job).delete(jobs::cancel_job))
        .route("/api/v1/jobs/{id}/results", get(jobs::job_results))
        .route("/api/v1/jobs/{id}/ws", get(jobs_ws::job_socket))
        .route("/api/v1/search", post(jobs::search))
        .route("/api/v1/whoami", get(whoami::whoami))
        .route("/api/v1/rules", get(alerts::list_rules))
        .route("/metrics", get(render_metrics))
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .with_state(state);
    protect(routes, &access, max_body_bytes)
}

/// `routes` behind the access guard (route table, credentials, audit), with the body limit
/// and, when `[api] cors_origins` lists any, CORS for those origins only.
pub fn protect(routes: Router, access: &Arc<Access>, max_body_bytes: usize) -> Router {
    let guarded = routes
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(access), access::guard))
        .layer(DefaultBodyLimit::max(max_body_bytes));
    if access.cors_origins.is_empty() {
        return guarded;
    }
    let origins: Vec<HeaderValue> = access.cors_origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::HeaderName::from_static(access::TENANT_HEADER)]);
    guarded.layer(cors)
}

async fn render_metrics(axum::extract::State(state): axum::extract::State<ApiState>) -> String {
    state.metrics.render()
}

/// The error line of a failed request, at most once per interval.
static REQUEST_FAILURES: SharedWarnLimiter = SharedWarnLimiter::new("request_failed", DEFAULT_INTERVAL);

/// A JSON error body `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::FORBIDDEN, message: message.into() }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::CONFLICT, message: message.into() }
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: message.into() }
    }

    /// What went wrong, as the body says it.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        // A failing store fails every request: one line per interval, the rest counted.
        if let Some(suppressed) = REQUEST_FAILURES.admit("api", "http") {
            tracing::error!(%error, suppressed, "API request failed (`suppressed`: failures not logged since the last line).");
        }
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: error.to_string() }
    }
}

impl From<ReadError> for ApiError {
    /// A read over its budget is 503 (the store is busy; try again), anything else 500.
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::OverBudget { .. } => ApiError::unavailable(error.to_string()),
            other => ApiError::internal(other),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: &self.message })).into_response()
    }
}
