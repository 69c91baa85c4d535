//! `/api/v1/jobs` and `/api/v1/search` (`jobs:run`): submit a query (or, with `backtests:run`,
//! a backtest of rules) as a job, follow it, page its results (JSON, NDJSON or CSV), cancel it;
//! the search shortcut answers inline when the job is done within `wait_ms`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use securewatch_schemas::query::compile;
use securewatch_schemas::TenantScope;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::{ApiError, ApiState};
use crate::access::{guard_detail, Identity};
use crate::jobs::results::Cursor;
use crate::jobs::backtest::replay::{at_low_priority, CHUNK_EVENTS};
use crate::jobs::backtest::replay::Plan;
use crate::jobs::backtest::{compile_rules, BacktestJob, RulesSource};
use crate::jobs::search::{path_name, SearchJob};
use crate::jobs::{Job, JobError, JobFailure, JobState, JobStatus, Submission};

/// A time bound: RFC 3339, epoch seconds, `now`, or `-<span>` (`-15m`, `-1h`, `-7d`) before now.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeBound {
    /// Epoch seconds.
    Number(f64),
    /// Any of the text forms.
    Text(String),
}

/// A duration: seconds, or a span such as `10m`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Span {
    /// Seconds.
    Seconds(u64),
    /// `30s`, `10m`, `2h`, `1d`.
    Text(String),
}

/// Body of `POST /api/v1/jobs` and `POST /api/v1/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// `search` (default) or `backtest`.
    kind: Option<String>,
    /// The search's query.
    #[serde(default)]
    query: String,
    /// A backtest's rules: YAML documents, or a path inside the server's rules directory.
    rules: Option<String>,
    /// A backtest's events per read from the store (default 5000; 100 to 100000): smaller
    /// chunks report progress more often.
    chunk_events: Option<u32>,
    from: Option<TimeBound>,
    to: Option<TimeBound>,
    keep_alive: Option<Span>,
    /// `/api/v1/search` only: how long to wait for an inline answer (default 1000, at most 60000).
    wait_ms: Option<u64>,
    /// Answer the SQL and the path instead of running.
    #[serde(default)]
    explain: bool,
}

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Default time range when `from` is not given: the last hour.
const DEFAULT_RANGE: chrono::Duration = chrono::Duration::hours(1);

fn span_of(text: &str) -> Option<chrono::Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    match unit {
        "s" => Some(chrono::Duration::seconds(number)),
        "m" => Some(chrono::Duration::minutes(number)),
        "h" => Some(chrono::Duration::hours(number)),
        "d" => Some(chrono::Duration::days(number)),
        _ => None,
    }
}

pub(crate) fn time_of(name: &str, bound: &TimeBound, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let invalid = || ApiError::bad_request(format!("{name}: expected RFC 3339, epoch seconds, `now` or `-<span>` such as -1h"));
    match bound {
        TimeBound::Number(seconds) if seconds.is_finite() => {
            DateTime::from_timestamp_micros((seconds * 1e6) as i64).ok_or_else(invalid)
        }
        TimeBound::Number(_) => Err(invalid()),
        TimeBound::Text(text) if text == "now" => Ok(now),
        TimeBound::Text(text) => {
            if let Some(span) = text.strip_prefix('-').and_then(span_of) {
                return Ok(now - span);
            }
            super::events::parse_time(name, &Some(text.clone()))?.ok_or_else(invalid)
        }
    }
}

fn keep_alive_of(span: &Option<Span>) -> Result<Option<Duration>, ApiError> {
    match span {
        None => Ok(None),
        Some(Span::Seconds(seconds)) => Ok(Some(Duration::from_secs(*seconds))),
        Some(Span::Text(text)) => span_of(text)
            .and_then(|span| span.to_std().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("keep_alive: expected seconds or a span such as 10m, got {text:?}"))),
    }
}

fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::Full(message) => ApiError::unavailable(message),
        other => ApiError::internal(other),
    }
}

/// What a submission becomes: a running job, a failed one (bad query) or an explanation.
enum Submitted {
    Job(Arc<Job>),
    Refused(Arc<Job>),
    Explained(Json_),
}

/// The time range of a submission: `to` defaults to now, `from` to an hour before `to`.
fn range_of(body: &JobRequest, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = body.to.as_ref().map(|bound| time_of("to", bound, now)).transpose()?.unwrap_or(now);
    let from = body.from.as_ref().map(|bound| time_of("from", bound, now)).transpose()?.unwrap_or(to - DEFAULT_RANGE);
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    Ok((from, to))
}

/// A backtest: `backtests:run`, the rules compiled as the live pipeline compiles them (a
/// rejected rule refuses the submission), the caller's tenants.
async fn submit_backtest(state: &ApiState, caller: &Identity, body: JobRequest) -> Result<Arc<Job>, ApiError> {
    if !caller.allows("backtests:run") {
        return Err(ApiError::forbidden("a backtest needs the backtests:run permission"));
    }
    if !body.query.is_empty() || body.explain || body.wait_ms.is_some() {
        return Err(ApiError::bad_request("a backtest takes `rules`, not `query`, `explain` or `wait_ms`"));
    }
    let chunk_events = body.chunk_events.unwrap_or(CHUNK_EVENTS);
    if !(100..=100_000).contains(&chunk_events) {
        return Err(ApiError::bad_request("chunk_events: from 100 to 100000"));
    }
    let text = body.rules.clone().ok_or_else(|| ApiError::bad_request("rules: required for a backtest (YAML documents or a path in the rules directory)"))?;
    let (from, to) = range_of(&body, Utc::now())?;
    let settings = Arc::clone(&state.backtest);
    let source = RulesSource::from_request(&text, settings.detection.rules_dir.as_deref()).map_err(ApiError::bad_request)?;
    let compiled = at_low_priority(move || compile_rules(&settings.detection, &source))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::bad_request)?;
    let names: Vec<&str> = compiled.catalogue.iter().map(|entry| entry.rule_id.as_str()).collect();
    let mut description = format!("backtest of {} rules: {}", names.len(), names.join(", "));
    if description.len() > 1000 {
        let cut = (0..=1000).rev().find(|index| description.is_char_boundary(*index)).unwrap_or(0);
        description.truncate(cut);
        description.push('…');
    }
    let submission = Submission {
        query: description,
        from,
        to,
        keep_alive: keep_alive_of(&body.keep_alive)?,
        owner: caller.name.clone(),
        scope: caller.scope.clone(),
    };
    let kind = BacktestJob(Plan {
        reader: state.reader.clone(),
        rules: compiled,
        scope: caller.scope.clone(),
        from,
        to,
        correlation: state.backtest.correlation,
        chunk_events,
    });
    state.jobs.submit(submission, Arc::new(kind)).map_err(job_error)
}

fn submit(state: &ApiState, caller: &Identity, body: JobRequest) -> Result<Submitted, ApiError> {
    match body.kind.as_deref() {
        None | Some("search") => {}
        Some("backtest") => return Err(ApiError::bad_request("a backtest runs as a job: POST /api/v1/jobs")),
        Some(other) => return Err(ApiError::bad_request(format!("kind: expected search or backtest, got {other:?}"))),
    }
    if body.rules.is_some() || body.chunk_events.is_some() {
        return Err(ApiError::bad_request("rules, chunk_events: only a backtest takes them (\"kind\": \"backtest\")"));
    }
    if body.query.is_empty() {
        return Err(ApiError::bad_request("query: required for a search"));
    }
    if body.query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(format!("query of {} bytes; at most {MAX_QUERY_BYTES}", body.query.len())));
    }
    let now = Utc::now();
    let (from, to) = range_of(&body, now)?;
    let submission = Submission {
        query: body.query.clone(),
        from,
        to,
        keep_alive: keep_alive_of(&body.keep_alive)?,
        owner: caller.name.clone(),
        scope: caller.scope.clone(),
    };
    let plan = match compile(&body.query, now) {
        Ok(plan) => plan,
        Err(error) => {
            let job = state.jobs.submit_failed(submission, "search", JobFailure::from(&error)).map_err(job_error)?;
            return Ok(Submitted::Refused(job));
        }
    };
    let compiled = state.reader.compile_search(&plan, &caller.scope, from, to);
    if body.explain {
        let params: Vec<String> = compiled.params.iter().map(|param| format!("{param:?}")).collect();
        let columns: Vec<&str> = compiled.columns.iter().map(|(name, _)| name.as_str()).collect();
        return Ok(Submitted::Explained(json!({ "path": path_name(&compiled), "sql": compiled.sql, "params": params, "columns": columns, "from": from, "to": to })));
    }
    let kind = SearchJob { reader: state.reader.clone(), compiled, from, to };
    Ok(Submitted::Job(state.jobs.submit(submission, Arc::new(kind)).map_err(job_error)?))
}

fn parse_body(body: Result<Json<JobRequest>, JsonRejection>) -> Result<JobRequest, ApiError> {
    body.map(|Json(body)| body).map_err(|rejection| ApiError { status: rejection.status(), message: rejection.body_text() })
}

fn audited(status: StatusCode, body: impl IntoResponse, job: &JobStatus, what: &str) -> Response {
    let query: String = job.query.chars().take(200).collect();
    guard_detail((status, body).into_response(), format!("job {} {what}: {query}", job.id))
}

/// `POST /api/v1/jobs`: 202 with the job; 400 with the failed job when the query is bad.
pub async fn create_job(
    State(state): State<ApiState>,
    Extension(caller): Extension<Identity>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(body)?;
    if body.kind.as_deref() == Some("backtest") {
        let job = submit_backtest(&state, &caller, body).await?;
        let status = job.status();
        return Ok(audited(StatusCode::ACCEPTED, Json(&status), &status, "created"));
    }
    match submit(&state, &caller, body)? {
        Submitted::Job(job) => {
            let status = job.status();
            Ok(audited(StatusCode::ACCEPTED, Json(&status), &status, "created"))
        }
        Submitted::Refused(job) => {
            let status = job.status();
            Ok(audited(StatusCode::BAD_REQUEST, Json(&status), &status, "refused"))
        }
        Submitted::Explained(explain) => Ok(Json(explain).into_response()),
    }
}

/// `POST /api/v1/search`: the rows inline (first page) when the job is done within `wait_ms`,
/// else 202 with the job to follow.
pub async fn search(
    State(state): State<ApiState>,
    Extension(caller): Extension<Identity>,
    body: Result<Json<JobRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = parse_body(body)?;
    let wait = Duration::from_millis(body.wait_ms.unwrap_or(1000).min(60_000));
    let job = match submit(&state, &caller, body)? {
        Submitted::Job(job) => job,
        Submitted::Refused(job) => {
            let status = job.status();
            return Ok(audited(StatusCode::BAD_REQUEST, Json(&status), &status, "refused"));
        }
        Submitted::Explained(explain) => return Ok(Json(explain).into_response()),
    };
    let mut updates = job.subscribe();
    let _ = tokio::time::timeout(wait, async {
        while !job.status().state.is_final() {
            if updates.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let status = job.status();
    if status.state != JobState::Done {
        return Ok(audited(StatusCode::ACCEPTED, Json(&status), &status, "created"));
    }
    let page = results_json(&job, Cursor::default(), DEFAULT_PAGE)?;
    Ok(audited(StatusCode::OK, Json(page), &status, "answered"))
}

/// `GET /api/v1/jobs`: the caller's tenants' jobs, newest first.
pub async fn list_jobs(State(state): State<ApiState>, Extension(scope): Extension<TenantScope>) -> Json<Vec<JobStatus>> {
    Json(state.jobs.list(&scope))
}

/// The job `id` of the caller's tenants: 404 when absent (or another tenant's), 410 with its
/// status when expired.
pub(super) fn find(state: &ApiState, scope: &TenantScope, id: &str) -> Result<Arc<Job>, Response> {
    let job = state.jobs.get(id, scope).ok_or_else(|| ApiError::not_found(format!("no job {id:?}")).into_response())?;
    let status = job.status();
    if status.state == JobState::Expired {
        return Err((StatusCode::GONE, Json(status)).into_response());
    }
    job.touch();
    Ok(job)
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get_job(State(state): State<ApiState>, Extension(scope): Extension<TenantScope>, Path(id): Path<String>) -> Response {
    match find(&state, &scope, &id) {
        Ok(job) => Json(job.status()).into_response(),
        Err(response) => response,
    }
}

/// `DELETE /api/v1/jobs/{id}`: cancels; the rows read so far stay readable.
pub async fn cancel_job(State(state): State<ApiState>, Extension(scope): Extension<TenantScope>, Path(id): Path<String>) -> Response {
    let job = match find(&state, &scope, &id) {
        Ok(job) => job,
        Err(response) => return response,
    };
    let before = job.status().state;
    let mut status = state.jobs.cancel(&job);
    if before == JobState::Running {
        let mut updates = job.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while job.status().state == JobState::Running {
                if updates.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        status = job.status();
    }
    audited(StatusCode::OK, Json(&status), &status, "cancelled")
}

/// Query string of the results.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsParams {
    cursor: Option<String>,
    limit: Option<u64>,
    /// `json` (default), `ndjson` or `csv`.
    format: Option<String>,
}

const DEFAULT_PAGE: u64 = 1000;

fn results_json(job: &Job, cursor: Cursor, limit: u64) -> Result<Json_, ApiError> {
    let status = job.status();
    let (rows, next) = job.page(cursor, limit).map_err(ApiError::internal)?;
    let objects: Vec<Json_> = rows.into_iter().map(|row| row_object(&status.columns, row)).collect();
    let complete = status.state.is_final() && next.is_none();
    Ok(json!({ "job": status, "columns": status.columns, "rows": objects, "next": next.map(Cursor::encode), "complete": complete }))
}

fn row_object(columns: &[String], row: Vec<Json_>) -> Json_ {
    Json_::Object(columns.iter().cloned().zip(row).collect())
}

/// `GET /api/v1/jobs/{id}/results?cursor=&limit=&format=`: a page of rows (also while the job
/// runs); the cursor of the next page in `next` (JSON) or the `X-SecureWatch-Next` header.
pub async fn job_results(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    Path(id): Path<String>,
    params: Result<Query<ResultsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let job = match find(&state, &scope, &id) {
        Ok(job) => job,
        Err(response) => return Ok(response),
    };
    let cursor = match &params.cursor {
        Some(text) => Cursor::decode(text).ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a cursor of this job")))?,
        None => Cursor::default(),
    };
    let limit = params.limit.unwrap_or(DEFAULT_PAGE).clamp(1, state.jobs.limits().row_cap.max(1));
    let format = params.format.as_deref().unwrap_or("json");
    if format == "json" {
        return Ok(Json(results_json(&job, cursor, limit)?).into_response());
    }
    let status = job.status();
    let (rows, next) = job.page(cursor, limit).map_err(ApiError::internal)?;
    let (content_type, body) = match format {
        "ndjson" => {
            let mut body = String::new();
            for row in rows {
                body.push_str(&row_object(&status.columns, row).to_string());
                body.push('\n');
            }
            ("application/x-ndjson", body)
        }
        "csv" => ("text/csv; charset=utf-8", csv_text(&status.columns, rows, cursor.row == 0).map_err(ApiError::internal)?),
        other => return Err(ApiError::bad_request(format!("format: expected json, ndjson or csv, got {other:?}"))),
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(next) = next.and_then(|next| HeaderValue::from_str(&next.encode()).ok()) {
        response.headers_mut().insert("x-securewatch-next", next);
    }
    response.headers_mut().insert("x-securewatch-state", HeaderValue::from_static(state_name(status.state)));
    Ok(response)
}

/// A JSON value as a CSV cell: text as is, null empty, anything else as JSON.
pub fn csv_cell(value: &Json_) -> String {
    match value {
        Json_::Null => String::new(),
        Json_::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn csv_text(columns: &[String], rows: Vec<Vec<Json_>>, with_header: bool) -> Result<String, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if with_header {
        writer.write_record(columns)?;
    }
    for row in rows {
        writer.write_record(row.iter().map(csv_cell))?;
    }
    let bytes = writer.into_inner().map_err(|error| csv::Error::from(error.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Expired => "expired",
    }
}
