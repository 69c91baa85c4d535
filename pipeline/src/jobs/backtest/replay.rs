//! Replays a range of stored history through the backtest dataflow: chunks read oldest first,
//! fed while the next one is read, progress after each; a cancel stops the reading and the
//! windows end with what was read.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::read::{HistoryCursor, HistoryQuery};
use securewatch_connectors::sinks::StoreReader;
use securewatch_dataflow::backtest::{Backtest, Step};
use securewatch_dataflow::CorrelationConfig;
use securewatch_schemas::{Alert, Event, EventId, TenantScope};

use super::CompiledRules;
use crate::jobs::record::BacktestProgress;

/// Events per chunk read from the store, unless the submission says otherwise.
pub const CHUNK_EVENTS: u32 = 5_000;
/// Matched events kept as evidence (beyond them, alerts list their event ids only).
pub const MAX_EVIDENCE_EVENTS: usize = 200_000;
/// Alerts kept in full (listed with their evidence and compared with live); single-rule
/// alerts beyond them are counted per rule (volume, days, groups) only.
pub const MAX_ALERTS_KEPT: usize = 100_000;
/// Niceness of the backtest's worker thread: the live workers keep their pace.
const WORKER_NICENESS: i32 = 10;

/// What to replay.
#[derive(Clone)]
pub struct Plan {
    /// The reader of the stores.
    pub reader: StoreReader,
    /// The rules.
    pub rules: CompiledRules,
    /// The tenants read.
    pub scope: TenantScope,
    /// Range start (events before it are not read).
    pub from: DateTime<Utc>,
    /// Range end (exclusive).
    pub to: DateTime<Utc>,
    /// The live correlations' lateness and retention.
    pub correlation: CorrelationConfig,
    /// Events per read from the store.
    pub chunk_events: u32,
}

/// Where a replay reports its progress and learns of a cancel.
pub trait Progress: Send {
    /// After each chunk: the progress and the share of the range read (0–1).
    fn report(&mut self, progress: &BacktestProgress, share: f64);
    /// Whether to stop reading.
    fn cancelled(&self) -> bool;
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Found {
    /// Progress at the end.
    pub progress: BacktestProgress,
    /// Matches per detection rule.
    pub matches: BTreeMap<String, u64>,
    /// The alerts, net of retractions.
    pub alerts: Vec<Alert>,
    /// Matched events by id (at most [`MAX_EVIDENCE_EVENTS`]).
    pub evidence: HashMap<EventId, Event>,
    /// Per rule, the single-rule alerts beyond [`MAX_ALERTS_KEPT`], counted only.
    pub overflow: BTreeMap<String, super::tally::RuleTally>,
    /// The reading stopped at a cancel before the range's end.
    pub cancelled: bool,
}

#[derive(Default)]
struct Tally {
    matches: BTreeMap<String, u64>,
    alerts: BTreeMap<Alert, isize>,
    evidence: HashMap<EventId, Event>,
    overflow: BTreeMap<String, super::tally::RuleTally>,
    overflowed: u64,
    events: u64,
    cursor_ms: Option<u64>,
}

impl Tally {
    fn add(&mut self, step: Step) {
        self.events += step.events;
        if step.events > 0 {
            self.cursor_ms = Some(self.cursor_ms.unwrap_or(0).max(step.cursor_ms));
        }
        for (rule, count) in step.matches {
            *self.matches.entry(rule).or_insert(0) += count;
        }
        let hosts: HashMap<EventId, Option<&str>> = step.evidence.iter().map(|event| (event.id, event.host.as_deref())).collect();
        for (alert, diff) in step.alerts {
            // Single-rule alerts are never retracted: past the cap they are only counted.
            if diff > 0 && alert.kind == "rule" && self.alerts.len() >= MAX_ALERTS_KEPT && !self.alerts.contains_key(&alert) {
                let host = alert.event_ids.first().and_then(|id| hosts.get(id).copied().flatten());
                self.overflow.entry(alert.rule_id.clone()).or_default().count_uncompared(&alert, host);
                self.overflowed += 1;
                continue;
            }
            *self.alerts.entry(alert).or_insert(0) += diff;
        }
        drop(hosts);
        for event in step.evidence {
            if self.evidence.len() < MAX_EVIDENCE_EVENTS {
                self.evidence.insert(event.id, event);
            }
        }
    }

    fn progress(&self, plan: &Plan) -> BacktestProgress {
        let cursor = self.cursor_ms.and_then(|ms| DateTime::from_timestamp_millis(ms as i64)).unwrap_or(plan.from);
        BacktestProgress {
            cursor,
            events_read: self.events,
            matches: self.matches.values().sum(),
            alerts: self.alerts.values().filter(|diff| **diff > 0).count() as u64 + self.overflowed,
            store: plan.reader.history_store().to_owned(),
        }
    }
}

fn share(plan: &Plan, cursor: DateTime<Utc>) -> f64 {
    let span = (plan.to - plan.from).num_milliseconds();
    if span <= 0 {
        return 1.0;
    }
    (cursor - plan.from).num_milliseconds() as f64 / span as f64
}

/// Lowers the calling thread's priority (Linux: niceness applies per thread).
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICENESS) };
    if result != 0 {
        tracing::debug!("Cannot lower the backtest worker's priority.");
    }
}

/// Runs `work` on a thread of its own at the backtest worker's lower priority (compiling a
/// large rule set takes seconds of CPU the live pipeline keeps).
pub async fn at_low_priority<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("securewatch-backtest-rules".into())
        .spawn(move || {
            lower_priority();
            let _ = sender.send(work());
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    receiver.await.map_err(|_| "the rules thread stopped".to_string())
}

/// Reads `plan`'s range chunk by chunk through the backtest dataflow.
pub async fn run(plan: &Plan, progress: &mut dyn Progress) -> Result<Found, String> {
    let mut backtest =
        Backtest::start(std::sync::Arc::clone(&plan.rules.rules), plan.correlation, lower_priority).map_err(|error| error.to_string())?;
    let mut tally = Tally::default();
    let mut query = HistoryQuery { from: plan.from, to: plan.to, after: None, limit: plan.chunk_events.max(1) };
    let mut cancelled = false;
    loop {
        if progress.cancelled() {
            cancelled = true;
            break;
        }
        let chunk = plan.reader.history(&query, &plan.scope).await.map_err(|error| format!("reading the stored events: {error}"))?;
        let full = chunk.len() as u32 >= query.limit;
        if let Some(last) = chunk.last() {
            query.after = Some(HistoryCursor { time_us: last.time.timestamp_micros(), id: last.id });
            backtest.feed(chunk).await.map_err(|error| error.to_string())?;
        }
        for step in backtest.steps() {
            tally.add(step);
        }
        let now = tally.progress(plan);
        progress.report(&now, share(plan, now.cursor));
        if !full {
            break;
        }
    }
    for step in backtest.finish().await.map_err(|error| error.to_string())? {
        tally.add(step);
    }
    let done = tally.progress(plan);
    progress.report(&done, if cancelled { share(plan, done.cursor) } else { 1.0 });
    let alerts = tally.alerts.into_iter().filter(|(_, diff)| *diff > 0).map(|(alert, _)| alert).collect();
    Ok(Found { progress: done, matches: tally.matches, alerts, evidence: tally.evidence, overflow: tally.overflow, cancelled })
}
