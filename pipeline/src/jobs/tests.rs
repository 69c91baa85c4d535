//! The runner with a kind of job the test steers: queueing behind the limits, cancel keeping
//! partial rows, expiry freeing results, restart marking running jobs failed.

use std::sync::Arc;
use std::time::Duration;

use securewatch_connectors::sinks::read::search::SearchSink;
use tokio::sync::Semaphore;

use super::*;

/// Writes `rows` rows, then waits for a permit before finishing.
struct Steered {
    rows: u64,
    gate: Arc<Semaphore>,
}

impl JobKind for Steered {
    fn kind(&self) -> &'static str {
        "steered"
    }

    fn columns(&self) -> Vec<String> {
        vec!["n".into()]
    }

    fn path(&self) -> String {
        "test".into()
    }

    fn run<'a>(&'a self, output: &'a mut JobOutput) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            for n in 0..self.rows {
                output.row(vec![Json::from(n)]);
            }
            output.progress(0.5);
            self.gate.acquire().await.map_err(|error| error.to_string())?.forget();
            output.progress(1.0);
            Ok(())
        })
    }
}

fn submission(tenant: &str) -> Submission {
    Submission {
        query: "steered".into(),
        from: Utc::now(),
        to: Utc::now(),
        keep_alive: None,
        owner: "test".into(),
        scope: TenantScope::Only(vec![tenant.into()]),
    }
}

async fn until(job: &Arc<Job>, state: JobState) {
    let mut updates = job.subscribe();
    tokio::time::timeout(Duration::from_secs(10), async {
        while job.status().state != state {
            updates.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the job never became {state:?}: {:?}", job.status()));
}

fn steered(rows: u64, gate: &Arc<Semaphore>) -> Arc<dyn JobKind> {
    Arc::new(Steered { rows, gate: Arc::clone(gate) })
}

#[tokio::test]
async fn jobs_queue_behind_the_tenant_and_global_limits() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::start(dir.path(), JobLimits { per_tenant: 1, global: 2, ..JobLimits::default() }).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let first = jobs.submit(submission("acme"), steered(1, &gate)).unwrap();
    let second = jobs.submit(submission("acme"), steered(1, &gate)).unwrap();
    let other = jobs.submit(submission("globex"), steered(1, &gate)).unwrap();
    let third = jobs.submit(submission("initech"), steered(1, &gate)).unwrap();
    until(&first, JobState::Running).await;
    until(&other, JobState::Running).await;
    assert_eq!(second.status().state, JobState::Queued, "acme runs one at a time");
    assert_eq!(third.status().state, JobState::Queued, "two run in all");
    gate.add_permits(1);
    until(&second, JobState::Running).await;
    assert!(first.status().state == JobState::Done || other.status().state == JobState::Done);
    gate.add_permits(3);
    for job in [&first, &second, &other, &third] {
        until(job, JobState::Done).await;
        let status = job.status();
        assert_eq!((status.rows_matched, status.progress), (1, 1.0));
        assert!(status.started.is_some() && status.finished.is_some());
    }
}

#[tokio::test]
async fn cancel_keeps_the_rows_read_and_a_queued_job_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::start(dir.path(), JobLimits { per_tenant: 1, ..JobLimits::default() }).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let running = jobs.submit(submission("acme"), steered(5, &gate)).unwrap();
    let queued = jobs.submit(submission("acme"), steered(5, &gate)).unwrap();
    until(&running, JobState::Running).await;
    let mut updates = running.subscribe();
    while running.status().progress < 0.5 {
        updates.changed().await.unwrap();
    }
    jobs.cancel(&running);
    until(&running, JobState::Cancelled).await;
    let (rows, next) = running.page(results::Cursor::default(), 100).unwrap();
    assert_eq!(rows.len(), 5, "the partial rows stay readable");
    assert!(next.is_none());
    assert_eq!(running.status().rows_matched, 5);
    // The queued one started when the first ended; cancel it too, then one still queued.
    until(&queued, JobState::Running).await;
    let waiting = jobs.submit(submission("acme"), steered(5, &gate)).unwrap();
    assert_eq!(jobs.cancel(&waiting).state, JobState::Cancelled);
    assert!(waiting.status().started.is_none(), "a cancelled queued job never starts");
    jobs.cancel(&queued);
    until(&queued, JobState::Cancelled).await;
}

#[tokio::test]
async fn the_row_cap_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::start(dir.path(), JobLimits { row_cap: 3, ..JobLimits::default() }).unwrap();
    let gate = Arc::new(Semaphore::new(1));
    let job = jobs.submit(submission("acme"), steered(10, &gate)).unwrap();
    until(&job, JobState::Done).await;
    let status = job.status();
    assert_eq!((status.rows_matched, status.truncated), (3, true));
}

#[tokio::test]
async fn an_unread_job_expires_stops_and_frees_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = Jobs::start(dir.path(), JobLimits { per_tenant: 3, global: 3, ..JobLimits::default() }).unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let done = jobs.submit(Submission { keep_alive: Some(Duration::from_secs(1)), ..submission("acme") }, steered(2, &gate)).unwrap();
    gate.add_permits(1);
    until(&done, JobState::Done).await;
    let running = jobs.submit(Submission { keep_alive: Some(Duration::from_secs(1)), ..submission("acme") }, steered(2, &gate)).unwrap();
    let held = jobs.submit(Submission { keep_alive: Some(Duration::from_secs(1)), ..submission("acme") }, steered(0, &Arc::new(Semaphore::new(1)))).unwrap();
    until(&held, JobState::Done).await;
    let hold = held.hold();
    until(&done, JobState::Expired).await;
    until(&running, JobState::Expired).await;
    assert!(!done.folder.join(results::ROWS_FILE).exists(), "results freed");
    assert!(running.status().finished.is_some(), "the running work stopped");
    assert_eq!(held.status().state, JobState::Done, "an open socket keeps a job alive");
    drop(hold);
    until(&held, JobState::Expired).await;
}

#[tokio::test]
async fn a_restart_marks_running_jobs_failed_and_keeps_finished_results() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (running_id, done_id) = {
        let jobs = Jobs::start(dir.path(), JobLimits::default()).unwrap();
        let done = jobs.submit(submission("acme"), steered(3, &Arc::new(Semaphore::new(1)))).unwrap();
        until(&done, JobState::Done).await;
        let running = jobs.submit(submission("acme"), steered(1, &gate)).unwrap();
        until(&running, JobState::Running).await;
        (running.status().id, done.status().id)
    };
    // A second runner over the same folder, as after a crash.
    let jobs = Jobs::start(dir.path(), JobLimits::default()).unwrap();
    let acme = TenantScope::Only(vec!["acme".into()]);
    let interrupted = jobs.get(&running_id, &acme).unwrap().status();
    assert_eq!(interrupted.state, JobState::Failed);
    assert_eq!(interrupted.error.unwrap().message, "interrupted by restart");
    let done = jobs.get(&done_id, &acme).unwrap();
    assert_eq!(done.status().state, JobState::Done);
    assert_eq!(done.page(results::Cursor::default(), 10).unwrap().0.len(), 3);
    assert!(jobs.get(&done_id, &TenantScope::Only(vec!["globex".into()])).is_none(), "another tenant's job reads as absent");
    assert_eq!(jobs.list(&acme).len(), 2);
}
