//! The feeder: ingest queue → worker inboxes at the open epoch; seals an epoch on every tick.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use securewatch_connectors::queue::{IngestBatch, IngestReceiver};
use securewatch_operators::engine::{Engine, Feed};
use securewatch_operators::Epoch;
use securewatch_connectors::CancellationToken;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::telemetry;

/// Batches whose records are in the dataflow, by the epoch they entered at, until the writer
/// has made that epoch's outputs durable and completes them (which frees their queue space).
#[derive(Debug, Default)]
pub struct Pending {
    batches: Mutex<BTreeMap<Epoch, Vec<IngestBatch>>>,
}

impl Pending {
    fn register(&self, epoch: Epoch, batch: IngestBatch) {
        self.batches.lock().expect("pending poisoned").entry(epoch).or_default().push(batch);
    }

    /// Removes the batches of epochs below `frontier` (all of them for `None`), by epoch.
    pub fn take_before(&self, frontier: Option<Epoch>) -> BTreeMap<Epoch, Vec<IngestBatch>> {
        let mut batches = self.batches.lock().expect("pending poisoned");
        super::take_before(&mut batches, frontier)
    }
}

/// Monotone ingest epochs: wall-clock milliseconds rounded down to the tick, and always above
/// the previous epoch even if the clock steps back.
#[derive(Debug)]
pub struct EpochClock {
    tick_ms: u64,
    last: Epoch,
}

impl EpochClock {
    pub fn new(tick: Duration) -> Self {
        EpochClock { tick_ms: (tick.as_millis() as u64).max(1), last: 0 }
    }

    /// The next epoch for the wall-clock time `now_ms`.
    pub fn next_at(&mut self, now_ms: u64) -> Epoch {
        let rounded = now_ms - now_ms % self.tick_ms;
        self.last = rounded.max(self.last + 1);
        self.last
    }

    /// The next epoch now.
    pub fn next(&mut self) -> Epoch {
        self.next_at(super::now_ms())
    }
}

/// Feeds batches to the workers (round robin) and control feeds (reference changes, correlation
/// backfills) to worker 0 until the queue closes, sealing an epoch on every worker each tick, then hands the engine back for
/// stopping. Reference changes enter at the open epoch, so they are in force (and re-tag the
/// resident buckets) when that epoch is sealed: within one tick.
pub async fn run(
    engine: Engine,
    mut queue: IngestReceiver,
    mut references: mpsc::UnboundedReceiver<Feed>,
    pending: std::sync::Arc<Pending>,
    tick: Duration,
    stopped: CancellationToken,
) -> Engine {
    let workers_alive = feed(&engine, &mut queue, &mut references, &pending, tick).await;
    if !workers_alive {
        tracing::error!("The dataflow workers stopped; ingest stops.");
        stopped.cancel();
    }
    engine
}

/// The feeding loop; returns `true` when the queue closed, `false` when the workers stopped.
async fn feed(
    engine: &Engine,
    queue: &mut IngestReceiver,
    references: &mut mpsc::UnboundedReceiver<Feed>,
    pending: &Pending,
    tick: Duration,
) -> bool {
    let mut clock = EpochClock::new(tick);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate
    let mut open = clock.next();
    if engine.seal(open).await.is_err() {
        return false;
    }
    let mut next_worker = 0usize;
    let mut references_open = true;
    loop {
        tokio::select! {
            biased;
            changes = references.recv(), if references_open => {
                match changes {
                    Some(feed) => {
                        if engine.send(0, feed).await.is_err() {
                            return false;
                        }
                    }
                    None => references_open = false,
                }
            }
            _ = ticker.tick() => {
                open = clock.next();
                if engine.seal(open).await.is_err() {
                    return false;
                }
                let depth: usize = engine.inbox_depths().iter().sum();
                metrics::gauge!(telemetry::INBOX_DEPTH).set(depth as f64);
                metrics::gauge!(telemetry::OPEN_EPOCH).set(open as f64);
            }
            batch = queue.recv() => {
                let Some(mut batch) = batch else { return true };
                let records = std::mem::take(&mut batch.records);
                // Registered before the records are sent, so it is known by the time the
                // frontier can pass `open`.
                pending.register(open, batch);
                if engine.send(next_worker, Feed::Records { epoch: open, records }).await.is_err() {
                    return false;
                }
                next_worker = next_worker.wrapping_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_rounded_and_monotone() {
        let mut clock = EpochClock::new(Duration::from_millis(100));
        assert_eq!(clock.next_at(1_000_057), 1_000_000);
        assert_eq!(clock.next_at(1_000_199), 1_000_100);
        // Same tick again, or the clock stepping back: still increasing.
        assert_eq!(clock.next_at(1_000_150), 1_000_101);
        assert_eq!(clock.next_at(900_000), 1_000_102);
        assert_eq!(clock.next_at(1_000_300), 1_000_300);
    }

    #[test]
    fn pending_batches_complete_by_epoch() {
        let pending = Pending::default();
        pending.register(100, IngestBatch::new(Vec::new()));
        pending.register(200, IngestBatch::new(Vec::new()));
        pending.register(200, IngestBatch::new(Vec::new()));
        let count = |taken: BTreeMap<Epoch, Vec<IngestBatch>>| taken.values().map(Vec::len).sum::<usize>();
        assert_eq!(count(pending.take_before(Some(100))), 0);
        assert_eq!(count(pending.take_before(Some(101))), 1);
        assert_eq!(count(pending.take_before(Some(200))), 0);
        assert_eq!(count(pending.take_before(None)), 2);
    }
}
