//! Correlations over a finished batch of matches (rule tests, conformance, benchmarks), run by the engine's own operators.
//!
//! [`correlate_batch`] builds [`build_correlations`] in an in-process timely dataflow, feeds
//! every match at ingest epoch 0 and closes the input: nothing is late (all matches arrive
//! before the watermark moves), so the result is the set of alerts of the matches in event
//! time, exactly what the running engine stores once every window has closed. There is no
//! second evaluator here: the alerts come from the same `reduce` the engine runs.
//!
//! Besides the alerts the engine would store ([`Correlations::alerts`]), the batch reports
//! the alerts of correlations that only feed other correlations (`generate: false`), read
//! from [`Correlations::resident`] at epoch 0. Nothing expires in a batch
//! ([`CorrelationConfig::never_expiring`]): the state ends with the dataflow.
//!
//! [`Correlations::alerts`]: crate::Correlations::alerts
//! [`Correlations::resident`]: crate::Correlations::resident

use std::collections::BTreeMap;
use std::sync::mpsc::channel;
use std::sync::Arc;

use differential_dataflow::input::Input;
use securewatch_detection::{CompiledCorrelations, Match};
use securewatch_schemas::Alert;
use timely::dataflow::operators::capture::{Capture, Event};

use crate::correlate::{build_correlations, CorrelationConfig};
use crate::time::Epoch;

/// Why a batch could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The timely workers could not be started.
    #[error("cannot start the dataflow workers: {0}")]
    Start(String),
    /// A worker stopped with an error (or panicked).
    #[error("a dataflow worker failed: {0}")]
    Worker(String),
}

/// One alert of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchAlert {
    /// The alert.
    pub alert: Alert,
    /// Whether the engine would store it: false for a correlation that only feeds others.
    pub emitted: bool,
}

/// What [`correlate_batch_report`] found: the alerts, and per correlation rule id the matches
/// it skipped for a missing group-by (or value) field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// As [`correlate_batch`] returns them.
    pub alerts: Vec<BatchAlert>,
    /// Correlation rule id → matches skipped (only correlations that skipped any).
    pub skipped: BTreeMap<String, usize>,
}

/// [`correlate_batch`] plus the skipped matches of each correlation, which a rule author needs
/// to tell "no alert" from "no match had the group-by field".
pub fn correlate_batch_report(
    matches: Vec<Match>,
    correlations: Arc<CompiledCorrelations>,
    workers: usize,
) -> Result<BatchReport, BatchError> {
    let (skip_sender, skip_receiver) = channel();
    let alerts = run_batch(matches, correlations, workers, Some(skip_sender))?;
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    for event in skip_receiver.try_iter() {
        if let Event::Messages(_, updates) = event {
            for ((rule_id, _), _, diff) in updates {
                let count = skipped.entry(rule_id).or_insert(0);
                *count = count.saturating_add_signed(diff);
            }
        }
    }
    skipped.retain(|_, count| *count > 0);
    Ok(BatchReport { alerts, skipped })
}

/// The correlation alerts of `matches`, in event time, on `workers` worker threads (at least
/// one): worker `i % workers` feeds match `i`. Alerts are sorted by (rule id, window start,
/// group key).
pub fn correlate_batch(
    matches: Vec<Match>,
    correlations: Arc<CompiledCorrelations>,
    workers: usize,
) -> Result<Vec<BatchAlert>, BatchError> {
    run_batch(matches, correlations, workers, None)
}

/// Skipped matches as the batch's dataflow captures them.
type SkipSender = std::sync::mpsc::Sender<Event<Epoch, Vec<((String, Match), Epoch, isize)>>>;

fn run_batch(
    matches: Vec<Match>,
    correlations: Arc<CompiledCorrelations>,
    workers: usize,
    skips: Option<SkipSender>,
) -> Result<Vec<BatchAlert>, BatchError> {
    if correlations.correlations.is_empty() {
        return Ok(Vec::new());
    }
    let matches = Arc::new(matches);
    let (sender, receiver) = channel();
    let (resident_sender, resident_receiver) = channel();
    let body = move |worker: &mut timely::worker::Worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (sender, resident_sender) = (sender.clone(), resident_sender.clone());
        let skips = skips.clone();
        let correlations = Arc::clone(&correlations);
        let mut input = worker.dataflow::<Epoch, _, _>(move |scope| {
            let (input, collection) = scope.new_collection::<Match, isize>();
            let out = build_correlations(collection, correlations, CorrelationConfig::default().never_expiring());
            out.alerts.inner.capture_into(sender);
            out.resident.inner.capture_into(resident_sender);
            if let Some(skips) = skips {
                out.skipped.inner.capture_into(skips);
            }
            input
        });
        for m in matches.iter().skip(index).step_by(peers) {
            input.update_at(m.clone(), 0, 1);
        }
        input.close();
        while worker.step() {}
    };
    if workers <= 1 {
        timely::execute_directly(body);
    } else {
        let guards = timely::execute(timely::Config::process(workers), body).map_err(BatchError::Start)?;
        for result in guards.join() {
            result.map_err(BatchError::Worker)?;
        }
    }
    let emitted = accumulate(receiver.try_iter(), None);
    let mut alerts: Vec<BatchAlert> = accumulate(resident_receiver.try_iter(), Some(0))
        .into_keys()
        .map(|alert| BatchAlert { emitted: emitted.contains_key(&alert), alert })
        .collect();
    alerts.sort_by(|a, b| {
        let key = |x: &BatchAlert| (x.alert.rule_id.clone(), x.alert.window_start_ms, x.alert.group_key.clone());
        key(a).cmp(&key(b))
    });
    Ok(alerts)
}

/// The alerts present after all captured updates (only those at `epoch` when given).
fn accumulate(
    events: impl Iterator<Item = Event<Epoch, Vec<(Alert, Epoch, isize)>>>,
    epoch: Option<Epoch>,
) -> BTreeMap<Alert, isize> {
    let mut counts: BTreeMap<Alert, isize> = BTreeMap::new();
    for event in events {
        if let Event::Messages(_, updates) = event {
            for (alert, time, diff) in updates {
                if epoch.is_none_or(|epoch| epoch == time) {
                    *counts.entry(alert).or_insert(0) += diff;
                }
            }
        }
    }
    counts.retain(|_, count| *count > 0);
    counts
}
