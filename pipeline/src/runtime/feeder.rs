//! The feeder: ingest queue → worker inboxes at the open epoch; seals an epoch on every tick.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use securewatch_connectors::queue::{IngestBatch, IngestReceiver};
use securewatch_dataflow::engine::{Engine, Feed};
use securewatch_dataflow::{Epoch, EpochClock};
use securewatch_connectors::CancellationToken;
use tokio::sync::{mpsc, watch};
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

/// Feeds batches to the workers (round robin) and control feeds (reference changes, correlation
/// backfills) to worker 0 until the queue closes, sealing an epoch on every worker each tick, then hands the engine back for
/// stopping. Reference changes enter at the open epoch, so they are in force (and re-tag the
/// resident buckets) when that epoch is sealed: within one tick.
///
/// Once the queue closed it keeps sealing epochs and taking control feeds until everything fed
/// is durable and no control feed waits: the writer's last writes may have found stored events
/// again ([`Feed::Duplicates`]), and their retraction from the rollups must be in before the
/// inputs close (see [`settle`]).
pub async fn run(
    engine: Engine,
    mut queue: IngestReceiver,
    mut references: mpsc::UnboundedReceiver<Feed>,
    pending: std::sync::Arc<Pending>,
    durable: watch::Receiver<Option<Epoch>>,
    tick: Duration,
    stopped: CancellationToken,
) -> Engine {
    let mut feeder = Feeder::new(tick);
    let mut workers_alive = feeder.feed(&engine, &mut queue, &mut references, &pending).await;
    if workers_alive {
        workers_alive = feeder.settle(&engine, &mut references, durable).await;
    }
    if !workers_alive {
        tracing::error!("The dataflow workers stopped; ingest stops.");
        stopped.cancel();
    }
    engine
}

/// How long a stopping feeder waits for the last writes and their retractions to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The feeding loop's state: the epoch clock and ticker, the open epoch and the last epoch
/// anything entered at.
struct Feeder {
    clock: EpochClock,
    ticker: tokio::time::Interval,
    open: Epoch,
    last_fed: Epoch,
}

impl Feeder {
    fn new(tick: Duration) -> Self {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Feeder { clock: EpochClock::new(tick), ticker, open: 0, last_fed: 0 }
    }

    /// Seals the next epoch on every worker; `false` when the workers stopped.
    async fn seal_next(&mut self, engine: &Engine) -> bool {
        self.open = self.clock.next();
        if engine.seal(self.open).await.is_err() {
            return false;
        }
        let depth: usize = engine.inbox_depths().iter().sum();
        metrics::gauge!(telemetry::INBOX_DEPTH).set(depth as f64);
        metrics::gauge!(telemetry::OPEN_EPOCH).set(self.open as f64);
        true
    }

    /// Sends a control feed to worker 0 at the open epoch; `false` when the workers stopped.
    async fn control(&mut self, engine: &Engine, feed: Feed) -> bool {
        self.last_fed = self.open;
        engine.send(0, feed).await.is_ok()
    }

    /// The feeding loop; returns `true` when the queue closed, `false` when the workers stopped.
    async fn feed(
        &mut self,
        engine: &Engine,
        queue: &mut IngestReceiver,
        references: &mut mpsc::UnboundedReceiver<Feed>,
        pending: &Pending,
    ) -> bool {
        self.ticker.tick().await; // the first tick is immediate
        if !self.seal_next(engine).await {
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
                            if !self.control(engine, feed).await {
                                return false;
                            }
                        }
                        None => references_open = false,
                    }
                }
                _ = self.ticker.tick() => {
                    if !self.seal_next(engine).await {
                        return false;
                    }
                }
                batch = queue.recv() => {
                    let Some(mut batch) = batch else { return true };
                    let records = std::mem::take(&mut batch.records);
                    // Registered before the records are sent, so it is known by the time the
                    // frontier can pass `open`.
                    pending.register(self.open, batch);
                    self.last_fed = self.open;
                    if engine.send(next_worker, Feed::Records { epoch: self.open, records }).await.is_err() {
                        return false;
                    }
                    next_worker = next_worker.wrapping_add(1);
                }
            }
        }
    }

    /// After the queue closed: keeps sealing epochs and feeding control feeds until every epoch
    /// that took input is durable and no control feed waits. The writer sends a write's
    /// duplicates before it publishes that write's durable frontier, so once the frontier is
    /// past the last input, every retraction owed is in the channel or already fed. Gives up
    /// (with a warning) after [`SETTLE_TIMEOUT`]; `false` when the workers stopped.
    async fn settle(
        &mut self,
        engine: &Engine,
        references: &mut mpsc::UnboundedReceiver<Feed>,
        mut durable: watch::Receiver<Option<Epoch>>,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            // The frontier first: a write publishes it only after sending its duplicates, so
            // when nothing waits in the channel after this reading, nothing owed by the writes
            // up to it is missing.
            let frontier = *durable.borrow_and_update();
            let mut drained = false;
            while let Ok(feed) = references.try_recv() {
                drained = true;
                if !self.control(engine, feed).await {
                    return false;
                }
            }
            if !drained && matches!(frontier, Some(frontier) if frontier > self.last_fed) {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(last_fed = self.last_fed, "Stopping before the last writes settled; a duplicate found by them may stay counted in its rollup until the bucket's next change.");
                    return true;
                }
                _ = self.ticker.tick() => {
                    if !self.seal_next(engine).await {
                        return false;
                    }
                }
                changed = durable.changed() => {
                    if changed.is_err() {
                        return true; // the writer ended: nothing more becomes durable
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
