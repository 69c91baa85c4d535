//! The writer: buffers drained outputs per epoch and, once every local worker passed an epoch,
//! stores them in every sink and acknowledges the batches that entered at that epoch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use securewatch_connectors::queue::{BatchOutcome, IngestBatch};
use securewatch_connectors::sinks::progress::SourceProgress;
use securewatch_connectors::sinks::{DeadLetter, EpochWrite};
use securewatch_connectors::telemetry::{self as source_telemetry, SourceLabels};
use securewatch_dataflow::engine::{Drain, Feed, FrontierTracker, Output, Rejected};
use securewatch_dataflow::{Epoch, RollupInput};
use securewatch_schemas::{bucket_start, changes, EnrichmentRow, RollupRow};
use securewatch_schemas::{Alert, Event, EventId};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::feeder::Pending;
use securewatch_connectors::sinks::{Sinks, Stored};
use super::telemetry;

/// Drained messages taken before looking at the frontier again.
const MESSAGES_PER_ROUND: usize = 1024;

/// Outputs of one or more epochs.
#[derive(Debug, Default)]
struct Outputs {
    events: Vec<Event>,
    rejected: Vec<Rejected>,
    rollups: Vec<(RollupRow, isize)>,
    late: Vec<(RollupInput, isize)>,
    enrichment: Vec<(EnrichmentRow, isize)>,
    alerts: Vec<(Alert, isize)>,
}

impl Outputs {
    fn len(&self) -> usize {
        self.events.len() + self.rejected.len() + self.rollups.len() + self.late.len() + self.enrichment.len() + self.alerts.len()
    }

    fn append(&mut self, mut other: Outputs) {
        self.events.append(&mut other.events);
        self.rejected.append(&mut other.rejected);
        self.rollups.append(&mut other.rollups);
        self.late.append(&mut other.late);
        self.enrichment.append(&mut other.enrichment);
        self.alerts.append(&mut other.alerts);
    }
}

/// Outputs by the epoch they belong to, until that epoch completes.
#[derive(Debug, Default)]
struct Buffered {
    epochs: BTreeMap<Epoch, Outputs>,
    len: usize,
}

impl Buffered {
    fn accept(&mut self, epoch: Epoch, outputs: Vec<Output>) {
        self.len += outputs.len();
        for output in outputs {
            match output {
                Output::Event(event) => self.epochs.entry(epoch).or_default().events.push(event),
                Output::Rejected(rejected) => self.epochs.entry(epoch).or_default().rejected.push(rejected),
                Output::Rollup(row, at, diff) => self.epochs.entry(at).or_default().rollups.push((row, diff)),
                Output::Late(input, at, diff) => self.epochs.entry(at).or_default().late.push((input, diff)),
                Output::Enrichment(row, at, diff) => self.epochs.entry(at).or_default().enrichment.push((row, diff)),
                Output::Alert(alert, at, diff) => self.epochs.entry(at).or_default().alerts.push((alert, diff)),
            }
        }
    }

    /// Removes and merges the outputs of the epochs below `frontier` (all for `None`).
    fn take_before(&mut self, frontier: Option<Epoch>) -> Outputs {
        let mut ready = Outputs::default();
        for (_, outputs) in super::take_before(&mut self.epochs, frontier) {
            ready.append(outputs);
        }
        self.len -= ready.len();
        ready
    }
}

/// Whether frontier `new` is beyond `old` (`None` is beyond everything).
fn passes(new: Option<Epoch>, old: Option<Epoch>) -> bool {
    match (new, old) {
        (None, Some(_)) => true,
        (Some(new), Some(old)) => new > old,
        _ => false,
    }
}

/// Runs until the drain closes (the workers finished), writing every completed epoch.
/// `durable` publishes the frontier below which every epoch is stored.
pub async fn run(
    mut drain: UnboundedReceiver<Drain>,
    store: Sinks,
    pending: Arc<Pending>,
    mut tracker: FrontierTracker,
    published: tokio::sync::watch::Sender<Option<Epoch>>,
    control: UnboundedSender<Feed>,
) {
    let mut buffered = Buffered::default();
    let mut durable = tracker.combined();
    let mut lag_clock = tokio::time::interval(Duration::from_secs(1));
    loop {
        let message = tokio::select! {
            message = drain.recv() => message,
            _ = lag_clock.tick() => {
                publish_lag(durable);
                continue;
            }
        };
        let Some(first) = message else { break };
        take_ready(first, &mut drain, MESSAGES_PER_ROUND, |message| match message {
            Drain::Data { epoch, outputs, .. } => buffered.accept(epoch, outputs),
            Drain::Frontier { worker, frontier } => {
                tracker.update(worker, frontier);
            }
        });
        metrics::gauge!(telemetry::WRITER_BUFFERED).set(buffered.len as f64);
        let frontier = tracker.combined();
        if passes(frontier, durable) {
            let ready = buffered.take_before(frontier);
            let batches = pending.take_before(frontier);
            let outcome = write_with_retries(&store, ready, progress_of(&batches), &control).await;
            for batch in batches.into_values().flatten() {
                batch.complete(outcome.clone());
            }
            // Skip the start (durable epoch 0): it is no epoch that was sealed.
            if let (Some(epoch @ 1..), Some(_)) = (durable, frontier) {
                metrics::histogram!(telemetry::EPOCH_DURABLE_SECONDS)
                    .record(securewatch_dataflow::now_ms().saturating_sub(epoch) as f64 / 1000.0);
            }
            durable = frontier;
            publish_lag(durable);
            published.send_replace(durable);
        }
    }
    if !tracker.finished() {
        tracing::error!("The dataflow workers stopped before finishing; writing what arrived.");
        let ready = buffered.take_before(None);
        // No positions: the epochs are incomplete, so their sources must deliver them again.
        let outcome = write_with_retries(&store, ready, Vec::new(), &control).await;
        let failure = BatchOutcome::Failed("the dataflow workers stopped".into());
        for batch in pending.take_before(None).into_values().flatten() {
            batch.complete(if outcome == BatchOutcome::Durable { failure.clone() } else { outcome.clone() });
        }
    }
}

/// As many copies of each id's event as `ids` names it (events carry their id, so any copy
/// will do).
fn copies_of(events: &[Event], ids: Vec<EventId>) -> Vec<Event> {
    let mut wanted: HashMap<EventId, usize> = HashMap::new();
    for id in ids {
        *wanted.entry(id).or_default() += 1;
    }
    let mut copies = Vec::new();
    for event in events {
        if let Some(count) = wanted.get_mut(&event.id).filter(|count| **count > 0) {
            *count -= 1;
            copies.push(event.clone());
        }
    }
    copies
}

/// Records each written event's receipt-to-durable latency.
fn record_end_to_end(events: &[Event]) {
    let now = chrono::Utc::now();
    let histogram = metrics::histogram!(telemetry::EVENT_DURABLE_SECONDS);
    for event in events {
        let latency = now.signed_duration_since(event.received);
        histogram.record(latency.num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6);
    }
}

/// The bus positions the batches of completed epochs close, each at its batch's epoch.
fn progress_of(batches: &BTreeMap<Epoch, Vec<IngestBatch>>) -> Vec<SourceProgress> {
    let mut progress = Vec::new();
    for (&epoch, batches) in batches {
        for position in batches.iter().flat_map(|batch| &batch.positions) {
            progress.push(SourceProgress {
                source: position.source.clone(),
                partition: position.partition.clone(),
                position: position.position.clone(),
                epoch,
            });
        }
    }
    progress
}

/// Hands `first` and then the messages already waiting in `drain` to `handle`, at most `max`
/// in all; the rest stay in the channel for the next round.
fn take_ready<T>(first: T, drain: &mut UnboundedReceiver<T>, max: usize, mut handle: impl FnMut(T)) {
    handle(first);
    for _ in 1..max {
        match drain.try_recv() {
            Ok(message) => handle(message),
            Err(_) => return,
        }
    }
}

fn publish_lag(durable: Option<Epoch>) {
    if let Some(epoch) = durable {
        let lag_ms = securewatch_dataflow::now_ms().saturating_sub(epoch);
        metrics::gauge!(telemetry::EPOCH_LAG).set(lag_ms as f64 / 1000.0);
    }
}

/// Turns a completed run of epochs into one store write, counting what it drops or flags.
fn prepare(outputs: Outputs) -> EpochWrite {
    for event in &outputs.events {
        if let Some(reason) = securewatch_parse::syslog::parse_failure(event) {
            metrics::counter!(
                source_telemetry::PARSE_FAILURES,
                "source" => event.source.name.clone(),
                "reason" => reason.to_string()
            )
            .increment(1);
        }
    }
    let dead_letters = outputs
        .rejected
        .into_iter()
        .map(|rejected| {
            let record = rejected.record;
            SourceLabels::new(record.kind, &*record.source_name).rejected(rejected.reason, 1);
            metrics::counter!(source_telemetry::DEAD_LETTERED, "reason" => rejected.reason).increment(1);
            tracing::debug!(source = %record.source_name, reason = rejected.reason, detail = %rejected.detail, "Record dead-lettered.");
            DeadLetter { record, reason: rejected.reason, detail: rejected.detail }
        })
        .collect();
    let mut late: BTreeMap<u64, i64> = BTreeMap::new();
    for (input, diff) in outputs.late {
        *late.entry(bucket_start(input.event_time_ms)).or_default() += diff as i64;
    }
    for (alert, diff) in &outputs.alerts {
        let change = if *diff > 0 { "raised" } else { "retracted" };
        let level = alert.level.map_or("none", |level| level.as_str());
        metrics::counter!(telemetry::ALERTS, "kind" => alert.kind.clone(), "level" => level, "change" => change).increment(1);
    }
    let late_events: i64 = late.values().sum();
    if late_events > 0 {
        metrics::counter!(telemetry::LATE_EVENTS).increment(late_events as u64);
    }
    EpochWrite {
        events: outputs.events,
        dead_letters,
        rollups: changes(outputs.rollups),
        late: late.into_iter().filter(|(_, count)| *count != 0).collect(),
        enrichment: outputs.enrichment,
        alerts: outputs.alerts,
        progress: Vec::new(),
    }
}

/// Pauses between attempts of a failed write; after the last, the batches fail (their senders
/// are told, HEC answers an error) and the next write of each touched rollup row, which
/// carries the row's full count, repairs the rollups.
const RETRY_DELAYS: [Duration; 3] = [Duration::from_millis(100), Duration::from_millis(500), Duration::from_secs(2)];

/// Writes a run of epochs to every sink: durable only once all of them stored it. A retry
/// skips the sinks that stored it already (see [`Stored`]).
/// Events the store held already go back to the dataflow through `control`
/// ([`Feed::Duplicates`]), which takes them out of the rollups again.
async fn write_with_retries(
    sinks: &Sinks,
    outputs: Outputs,
    progress: Vec<SourceProgress>,
    control: &UnboundedSender<Feed>,
) -> BatchOutcome {
    if outputs.len() == 0 && progress.is_empty() {
        return BatchOutcome::Durable;
    }
    let mut batch = prepare(outputs);
    batch.progress = progress;
    let mut stored = Stored::default();
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match sinks.write(&mut batch, &mut stored).await {
            Ok(duplicates) => {
                tracing::trace!(events = batch.events.len(), elapsed = ?started.elapsed(), "Epochs committed.");
                if !duplicates.is_empty() {
                    let _ = control.send(Feed::Duplicates(copies_of(&batch.events, duplicates)));
                }
                record_end_to_end(&batch.events);
                metrics::counter!(telemetry::ROLLUP_CHANGES).increment(batch.rollups.len() as u64);
                return BatchOutcome::Durable;
            }
            Err(error) => {
                let Some(delay) = RETRY_DELAYS.get(attempt) else {
                    tracing::error!(%error, events = batch.events.len(), "Store write failed; giving up.");
                    return BatchOutcome::Failed(error.to_string());
                };
                tracing::warn!(%error, attempt, "Store write failed; retrying.");
                tokio::time::sleep(*delay).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_takes_every_waiting_message_up_to_the_bound_and_loses_none() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        for value in 1..=10 {
            sender.send(value).unwrap();
        }
        let mut seen = Vec::new();
        take_ready(0, &mut receiver, 4, |value| seen.push(value));
        assert_eq!(seen, [0, 1, 2, 3]);
        take_ready(100, &mut receiver, 100, |value| seen.push(value));
        assert_eq!(seen, [0, 1, 2, 3, 100, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn frontiers_order_with_none_last() {
        assert!(passes(Some(2), Some(1)));
        assert!(!passes(Some(1), Some(1)));
        assert!(passes(None, Some(5)));
        assert!(!passes(None, None));
        assert!(!passes(Some(1), None));
    }
}
