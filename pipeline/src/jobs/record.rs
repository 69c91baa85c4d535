//! What a job is and says about itself: its state, progress and times, kept as `job.json` in
//! its folder of the data directory.

use std::path::Path;

use chrono::{DateTime, Utc};
use securewatch_schemas::query::QueryError;
use serde::{Deserialize, Serialize};

/// The life of a job: queued → running → done | failed | cancelled | expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a free slot (per tenant and in all).
    Queued,
    /// Reading.
    Running,
    /// Finished; results complete (or truncated at the row cap).
    Done,
    /// Stopped by an error (a bad query never gets here: it is refused at submission).
    Failed,
    /// Cancelled by its owner; the rows read until then are kept.
    Cancelled,
    /// Nobody read it within its keep-alive: work stopped, results freed.
    Expired,
}

impl JobState {
    /// Whether the job will not change any more (but expire).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// Why a job failed: a message, with the query position when the query was at fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    /// What went wrong.
    pub message: String,
    /// Byte offset in the query, when the query was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Line (from 1), when the query was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column (from 1), when the query was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The query line with a caret, when the query was at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl JobFailure {
    /// A failure that is not the query's.
    pub fn message(message: impl Into<String>) -> JobFailure {
        JobFailure { message: message.into(), position: None, line: None, column: None, pointer: None }
    }
}

impl From<&QueryError> for JobFailure {
    fn from(error: &QueryError) -> JobFailure {
        JobFailure {
            message: error.message.clone(),
            position: Some(error.position),
            line: Some(error.line),
            column: Some(error.column),
            pointer: Some(error.pointer.clone()),
        }
    }
}

/// Everything a job says about itself (the body of `GET /api/v1/jobs/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Its id (random, URL-safe).
    pub id: String,
    /// What it does: `search` or `backtest`.
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// The query as submitted.
    pub query: String,
    /// Start of the time range read.
    pub from: DateTime<Utc>,
    /// End of the time range read (exclusive).
    pub to: DateTime<Utc>,
    /// Share of the time range scanned, 0 to 1.
    pub progress: f64,
    /// Stored rows read so far: the events in the time slices read (all the query's tenants'
    /// rows there, whatever its conditions), or the rollup rows read on a rollup path (`null`
    /// until the first slice, or the whole range, was read).
    pub rows_scanned: Option<u64>,
    /// Result rows produced so far.
    pub rows_matched: u64,
    /// A backtest's progress: its event-time cursor, events read, matches, alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<BacktestProgress>,
    /// The job stopped at its row cap (or byte cap): there are more rows than kept.
    pub truncated: bool,
    /// Result columns.
    pub columns: Vec<String>,
    /// How the store answers (`sliced_scan`, `scan`, `rollup`, `hour_rollup`).
    pub path: String,
    /// Who submitted it.
    pub owner: String,
    /// The tenants it reads (`*`: all).
    pub tenants: Vec<String>,
    /// When it was submitted.
    pub created: DateTime<Utc>,
    /// When it started running.
    pub started: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Seconds without a read (or an open WebSocket) after which it expires.
    pub keep_alive_secs: u64,
    /// When it expires unless read again.
    pub expires: DateTime<Utc>,
    /// Why it failed.
    pub error: Option<JobFailure>,
}

/// How far a backtest got.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BacktestProgress {
    /// Event time of the last event read (the range start before any).
    pub cursor: DateTime<Utc>,
    /// Stored events read.
    pub events_read: u64,
    /// Detection-rule matches.
    pub matches: u64,
    /// Alerts raised (single-rule and correlation).
    pub alerts: u64,
    /// The store read: `sqlite` or `postgres`.
    pub store: String,
}

/// The file of a job's status in its folder.
pub const STATUS_FILE: &str = "job.json";

/// Writes `status` to `folder/job.json` (through a temporary file, so a crash never leaves half).
pub fn save(folder: &Path, status: &JobStatus) -> std::io::Result<()> {
    let temporary = folder.join("job.json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?)?;
    std::fs::rename(temporary, folder.join(STATUS_FILE))
}

/// Reads `folder/job.json`.
pub fn load(folder: &Path) -> std::io::Result<JobStatus> {
    let bytes = std::fs::read(folder.join(STATUS_FILE))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}
