//! Asynchronous jobs: a query (or, later, a backtest) runs in the background with progress,
//! results paged from the data directory, cancel keeping partial rows, a keep-alive after which
//! it expires, and limits on how many run per tenant and in all (the rest wait in a queue).
//!
//! The runner is generic over a [`JobKind`]: [`search::SearchJob`] and
//! [`backtest::BacktestJob`].

pub mod backtest;
pub mod cli;
pub mod config;
mod output;
pub mod record;
pub mod results;
pub mod search;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use securewatch_schemas::TenantScope;
use serde_json::Value as Json;
use tokio::sync::watch;

pub use output::JobOutput;
pub use record::{JobFailure, JobState, JobStatus};
use results::Cursor;

/// Limits of the job runner.
#[derive(Clone, Debug)]
pub struct JobLimits {
    /// Jobs running at once for one tenant (set of tenants) of the callers.
    pub per_tenant: usize,
    /// Jobs running at once in all.
    pub global: usize,
    /// Most result rows a job keeps (then it stops, `truncated`).
    pub row_cap: u64,
    /// Most bytes of result rows a job keeps (then it stops, `truncated`).
    pub byte_cap: u64,
    /// Most bytes of results all jobs keep; a new job is refused past it.
    pub total_bytes: u64,
    /// Most jobs kept (any state); a new job is refused past it.
    pub max_jobs: usize,
    /// Keep-alive when the submission names none.
    pub default_keep_alive: Duration,
    /// Longest keep-alive accepted.
    pub max_keep_alive: Duration,
    /// Rows a job keeps in memory for WebSocket previews.
    pub preview_rows: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            per_tenant: 1,
            // Below the store's read turns (3), so dashboards and event reads keep one.
            global: 2,
            row_cap: 100_000,
            byte_cap: 64 << 20,
            total_bytes: 1 << 30,
            max_jobs: 1000,
            default_keep_alive: Duration::from_secs(600),
            max_keep_alive: Duration::from_secs(24 * 3600),
            preview_rows: 20,
        }
    }
}

/// What a job does. The runner knows nothing else of it.
pub trait JobKind: Send + Sync + 'static {
    /// Its kind as listed (`search`).
    fn kind(&self) -> &'static str;
    /// Names of the result columns.
    fn columns(&self) -> Vec<String>;
    /// How it is answered (shown in the status).
    fn path(&self) -> String;
    /// Runs to the end, writing rows and progress into `output`.
    fn run<'a>(&'a self, output: &'a mut JobOutput) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
    /// Whether it watches [`JobOutput::cancelled`] and ends by itself (writing what it found),
    /// instead of being dropped at a cancel.
    fn ends_on_cancel(&self) -> bool {
        false
    }
}

/// Why the runner refused a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The results space or the number of jobs is full.
    #[error("{0}")]
    Full(String),
    /// The data directory failed.
    #[error("job storage: {0}")]
    Io(#[from] std::io::Error),
}

/// One job: its status, results folder and the signals around it.
pub struct Job {
    folder: PathBuf,
    status: Mutex<JobStatus>,
    /// Rows and bytes of results readers may see.
    visible: Mutex<(u64, u64)>,
    preview: Mutex<Vec<Vec<Json>>>,
    /// Bumped on every change of status or preview.
    updates: watch::Sender<u64>,
    cancel: watch::Sender<bool>,
    last_read: Mutex<Instant>,
    sockets: AtomicUsize,
    scope: TenantScope,
    tenant_key: String,
    kind: Mutex<Option<Arc<dyn JobKind>>>,
}

impl Job {
    /// Its status now.
    pub fn status(&self) -> JobStatus {
        self.status.lock().expect("job status").clone()
    }

    /// The first result rows (for WebSocket previews).
    pub fn preview(&self) -> Vec<Vec<Json>> {
        self.preview.lock().expect("job preview").clone()
    }

    /// How many preview rows there are so far.
    pub fn preview_len(&self) -> usize {
        self.preview.lock().expect("job preview").len()
    }

    /// Whether the job has reached a final state.
    pub fn is_final(&self) -> bool {
        self.status.lock().expect("job status").state.is_final()
    }

    /// A receiver told of every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Whether `scope` may see this job: it sees every tenant the job reads.
    pub fn visible_to(&self, scope: &TenantScope) -> bool {
        match (&self.scope, scope) {
            (_, TenantScope::All) => true,
            (TenantScope::All, TenantScope::Only(_)) => false,
            (TenantScope::Only(tenants), caller) => tenants.iter().all(|tenant| caller.allows(tenant)),
        }
    }

    /// A read: the keep-alive starts again.
    pub fn touch(&self) {
        *self.last_read.lock().expect("job read time") = Instant::now();
        let mut status = self.status.lock().expect("job status");
        if status.state != JobState::Expired {
            status.expires = Utc::now() + chrono::Duration::seconds(status.keep_alive_secs as i64);
        }
    }

    /// An open WebSocket keeps the job alive until it closes (the guard).
    pub fn hold(self: &Arc<Self>) -> SocketHold {
        self.sockets.fetch_add(1, Ordering::AcqRel);
        SocketHold(Arc::clone(self))
    }

    fn update(&self, change: impl FnOnce(&mut JobStatus)) {
        change(&mut self.status.lock().expect("job status"));
        self.updates.send_modify(|version| *version += 1);
    }

    fn save(&self) {
        if let Err(error) = record::save(&self.folder, &self.status()) {
            tracing::warn!(%error, folder = %self.folder.display(), "Cannot save a job's status.");
        }
    }

    /// A page of results from `cursor`.
    pub fn page(&self, cursor: Cursor, limit: u64) -> std::io::Result<(Vec<Vec<Json>>, Option<Cursor>)> {
        let visible = *self.visible.lock().expect("job results");
        results::read_page(&self.folder, cursor, limit, visible)
    }
}

/// Keeps a job alive while held (an open WebSocket).
pub struct SocketHold(Arc<Job>);

impl Drop for SocketHold {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A submission.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The query text.
    pub query: String,
    /// Time range start.
    pub from: chrono::DateTime<Utc>,
    /// Time range end (exclusive).
    pub to: chrono::DateTime<Utc>,
    /// Keep-alive (bounded by [`JobLimits::max_keep_alive`]).
    pub keep_alive: Option<Duration>,
    /// Who submits it.
    pub owner: String,
    /// The tenants it reads.
    pub scope: TenantScope,
}

/// The job runner of one data directory.
pub struct Jobs {
    dir: PathBuf,
    limits: JobLimits,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Jobs").field("dir", &self.dir).field("limits", &self.limits).finish()
    }
}

fn tenants_of(scope: &TenantScope) -> Vec<String> {
    match scope {
        TenantScope::All => vec!["*".to_owned()],
        TenantScope::Only(tenants) => tenants.clone(),
    }
}

impl Jobs {
    /// The runner over `data_dir/jobs`: jobs found there that were queued or running are
    /// marked failed ("interrupted by restart"); the others are kept with their results.
    /// Starts the expiry sweep.
    pub fn start(data_dir: &Path, limits: JobLimits) -> Result<Arc<Jobs>, JobError> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir)?;
        let mut jobs = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let folder = entry?.path();
            let Ok(mut status) = record::load(&folder) else { continue };
            if !status.state.is_final() {
                status.state = JobState::Failed;
                status.finished = Some(Utc::now());
                status.error = Some(JobFailure::message("interrupted by restart"));
                record::save(&folder, &status)?;
            }
            let visible = visible_rows(&folder);
            let scope = if status.tenants.iter().any(|tenant| tenant == "*") { TenantScope::All } else { TenantScope::Only(status.tenants.clone()) };
            let job = Job {
                tenant_key: status.tenants.join(","),
                folder,
                visible: Mutex::new(visible),
                preview: Mutex::new(Vec::new()),
                updates: watch::channel(0).0,
                cancel: watch::channel(false).0,
                last_read: Mutex::new(Instant::now()),
                sockets: AtomicUsize::new(0),
                scope,
                kind: Mutex::new(None),
                status: Mutex::new(status),
            };
            jobs.insert(job.status().id.clone(), Arc::new(job));
        }
        let runner = Arc::new(Jobs { dir, limits, jobs: Mutex::new(jobs) });
        let sweeper = Arc::downgrade(&runner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let Some(runner) = sweeper.upgrade() else { return };
                runner.expire_idle();
            }
        });
        Ok(runner)
    }

    /// The limits in force.
    pub fn limits(&self) -> &JobLimits {
        &self.limits
    }

    /// Submits a job of `kind`: queued, started as soon as the limits allow.
    pub fn submit(self: &Arc<Self>, submission: Submission, kind: Arc<dyn JobKind>) -> Result<Arc<Job>, JobError> {
        let job = self.create(&submission, kind.kind(), kind.columns(), kind.path(), JobState::Queued, None)?;
        *job.kind.lock().expect("job kind") = Some(kind);
        self.schedule();
        Ok(job)
    }

    /// Records a job that failed before running (a bad query), so its status says why.
    pub fn submit_failed(&self, submission: Submission, kind: &str, failure: JobFailure) -> Result<Arc<Job>, JobError> {
        self.create(&submission, kind, Vec::new(), String::new(), JobState::Failed, Some(failure))
    }

    fn create(
        &self,
        submission: &Submission,
        kind: &str,
        columns: Vec<String>,
        path: String,
        state: JobState,
        error: Option<JobFailure>,
    ) -> Result<Arc<Job>, JobError> {
        let mut jobs = self.jobs.lock().expect("jobs");
        if jobs.len() >= self.limits.max_jobs {
            return Err(JobError::Full(format!("{} jobs are kept; delete some or wait for them to expire", jobs.len())));
        }
        let used: u64 = jobs.values().map(|job| job.visible.lock().expect("job results").1).sum();
        if used >= self.limits.total_bytes {
            return Err(JobError::Full(format!("job results hold {used} bytes, the limit; delete some or wait for them to expire")));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        let folder = self.dir.join(&id);
        std::fs::create_dir_all(&folder)?;
        let keep_alive = submission.keep_alive.unwrap_or(self.limits.default_keep_alive).min(self.limits.max_keep_alive);
        let now = Utc::now();
        let finished = state.is_final().then_some(now);
        let status = JobStatus {
            id: id.clone(),
            kind: kind.to_owned(),
            state,
            query: submission.query.clone(),
            from: submission.from,
            to: submission.to,
            progress: 0.0,
            rows_scanned: None,
            rows_matched: 0,
            backtest: None,
            truncated: false,
            columns,
            path,
            owner: submission.owner.clone(),
            tenants: tenants_of(&submission.scope),
            created: now,
            started: None,
            finished,
            keep_alive_secs: keep_alive.as_secs().max(1),
            expires: now + chrono::Duration::from_std(keep_alive).unwrap_or_default(),
            error,
        };
        record::save(&folder, &status)?;
        let job = Arc::new(Job {
            folder,
            tenant_key: status.tenants.join(","),
            status: Mutex::new(status),
            visible: Mutex::new((0, 0)),
            preview: Mutex::new(Vec::new()),
            updates: watch::channel(0).0,
            cancel: watch::channel(false).0,
            last_read: Mutex::new(Instant::now()),
            sockets: AtomicUsize::new(0),
            scope: submission.scope.clone(),
            kind: Mutex::new(None),
        });
        jobs.insert(id, Arc::clone(&job));
        Ok(job)
    }

    /// The job `id` when `scope` may see it (another tenant's job reads as absent).
    pub fn get(&self, id: &str, scope: &TenantScope) -> Option<Arc<Job>> {
        let job = self.jobs.lock().expect("jobs").get(id).cloned()?;
        job.visible_to(scope).then_some(job)
    }

    /// The jobs `scope` may see, newest first.
    pub fn list(&self, scope: &TenantScope) -> Vec<JobStatus> {
        let mut list: Vec<JobStatus> =
            self.jobs.lock().expect("jobs").values().filter(|job| job.visible_to(scope)).map(|job| job.status()).collect();
        list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        list
    }

    /// Cancels a queued or running job; its rows so far are kept. Answers its status.
    pub fn cancel(self: &Arc<Self>, job: &Arc<Job>) -> JobStatus {
        let mut queued = false;
        job.update(|status| {
            if status.state == JobState::Queued {
                status.state = JobState::Cancelled;
                status.finished = Some(Utc::now());
                queued = true;
            }
        });
        if queued {
            job.kind.lock().expect("job kind").take();
            job.save();
        } else {
            job.cancel.send_replace(true);
        }
        job.status()
    }

    /// Starts queued jobs, oldest first, while the limits allow.
    fn schedule(self: &Arc<Self>) {
        let jobs = self.jobs.lock().expect("jobs");
        let mut running: HashMap<String, usize> = HashMap::new();
        let mut queued = Vec::new();
        for job in jobs.values() {
            match job.status.lock().expect("job status").state {
                JobState::Running => *running.entry(job.tenant_key.clone()).or_default() += 1,
                JobState::Queued => queued.push(Arc::clone(job)),
                _ => {}
            }
        }
        let mut total: usize = running.values().sum();
        queued.sort_by_key(|job| job.status.lock().expect("job status").created);
        for job in queued {
            let per_tenant = running.get(job.tenant_key.as_str()).copied().unwrap_or(0);
            if total >= self.limits.global || per_tenant >= self.limits.per_tenant {
                continue;
            }
            let Some(kind) = job.kind.lock().expect("job kind").take() else { continue };
            total += 1;
            *running.entry(job.tenant_key.clone()).or_default() += 1;
            job.update(|status| {
                status.state = JobState::Running;
                status.started = Some(Utc::now());
            });
            job.save();
            tokio::spawn(Arc::clone(self).run(Arc::clone(&job), kind));
        }
    }

    async fn run(self: Arc<Self>, job: Arc<Job>, kind: Arc<dyn JobKind>) {
        let mut cancel = job.cancel.subscribe();
        let outcome = match JobOutput::new(Arc::clone(&job), &self.limits) {
            Err(error) => Some(Err(error.to_string())),
            Ok(mut output) => {
                let outcome = if kind.ends_on_cancel() {
                    let outcome = kind.run(&mut output).await;
                    if *cancel.borrow() { None } else { Some(outcome) }
                } else {
                    tokio::select! {
                        outcome = kind.run(&mut output) => Some(outcome),
                        _ = cancel.wait_for(|cancelled| *cancelled) => None,
                    }
                };
                let outcome = match (outcome, output.finish()) {
                    (Some(Ok(())), Err(error)) => Some(Err(error.to_string())),
                    (outcome, _) => outcome,
                };
                outcome
            }
        };
        job.update(|status| {
            if status.state != JobState::Running {
                return; // expired meanwhile
            }
            status.finished = Some(Utc::now());
            match outcome {
                Some(Ok(())) => {
                    status.state = JobState::Done;
                    status.progress = 1.0;
                }
                Some(Err(message)) => {
                    status.state = JobState::Failed;
                    status.error = Some(JobFailure::message(message));
                }
                None => status.state = JobState::Cancelled,
            }
        });
        if job.status().state == JobState::Expired {
            let _ = std::fs::remove_file(job.folder.join(results::ROWS_FILE));
        }
        job.save();
        self.schedule();
    }

    /// Expires jobs nobody read within their keep-alive (an open WebSocket counts as reading):
    /// running work stops, results are freed, the status stays to answer 410. Expired jobs are
    /// forgotten a keep-alive later.
    fn expire_idle(self: &Arc<Self>) {
        let now = Instant::now();
        let jobs: Vec<Arc<Job>> = self.jobs.lock().expect("jobs").values().cloned().collect();
        let mut forget = Vec::new();
        for job in jobs {
            let status = job.status();
            let idle = now.duration_since(*job.last_read.lock().expect("job read time"));
            let keep_alive = Duration::from_secs(status.keep_alive_secs);
            if status.state == JobState::Expired {
                if idle > keep_alive * 2 {
                    forget.push(status.id.clone());
                }
                continue;
            }
            if idle <= keep_alive || job.sockets.load(Ordering::Acquire) > 0 {
                continue;
            }
            job.update(|status| {
                status.state = JobState::Expired;
                status.finished.get_or_insert(Utc::now());
            });
            job.kind.lock().expect("job kind").take();
            job.cancel.send_replace(true);
            *job.visible.lock().expect("job results") = (0, 0);
            job.preview.lock().expect("job preview").clear();
            let _ = std::fs::remove_file(job.folder.join(results::ROWS_FILE));
            job.save();
        }
        if !forget.is_empty() {
            let mut jobs = self.jobs.lock().expect("jobs");
            for id in forget {
                if let Some(job) = jobs.remove(&id) {
                    let _ = std::fs::remove_dir_all(&job.folder);
                }
            }
        }
        self.schedule();
    }
}

/// Rows and bytes of a results file (complete lines only).
fn visible_rows(folder: &Path) -> (u64, u64) {
    let Ok(bytes) = std::fs::read(folder.join(results::ROWS_FILE)) else { return (0, 0) };
    let end = bytes.iter().rposition(|byte| *byte == b'\n').map_or(0, |index| index + 1);
    (bytes[..end].iter().filter(|byte| **byte == b'\n').count() as u64, end as u64)
}
