//! The bounded in-process ingest queue between sources and normalisation, with batch acks.
//!
//! Capacity is counted in records, not batches: a source reserves one permit per record
//! before it enqueues, and the permits return when the consumer has finished the batch.
//! A HEC request that does not fit is refused at once ([`IngestSender::try_send`] → 503 code 9);
//! stream sources (syslog TCP, file tailers) wait instead ([`IngestSender::send`]), which stops
//! them reading — backpressure. A batch can carry an ack that fires once its records are durable
//! in the store (or failed), so HEC answers and file positions follow durability, and a signal
//! that fires once it is journaled (HEC with indexer acknowledgement answers then).

use std::sync::Arc;

use securewatch_schemas::RawRecord;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// What happened to a batch, reported through its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every record is durable (stored, or dead-lettered with its reason).
    Durable,
    /// The store failed; the records may not be stored.
    Failed(String),
    /// The bus did not confirm the records (unreachable or refusing): the sender should try
    /// again later (HEC: 503 code 9).
    Unavailable(String),
}

/// Where a batch read from a bus ends: the next position to read of one partition, committed
/// with the outputs of the batch (see [`crate::sinks::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    /// The configured source (a Kafka topic, a Redis stream).
    pub source: String,
    /// The partition within it: a Kafka partition number, a Redis consumer name.
    pub partition: String,
    /// The next position to read there (a Kafka offset, the last Redis entry id read).
    pub position: String,
}

/// Records enqueued together, with an optional durability ack.
#[derive(Debug)]
pub struct IngestBatch {
    /// The records, in the order they were received.
    pub records: Vec<RawRecord>,
    /// Where to report the batch's outcome, when the sender waits for it.
    pub ack: Option<oneshot::Sender<BatchOutcome>>,
    /// Bus positions this batch closes (empty for batches of the direct sources).
    pub positions: Vec<SourcePosition>,
    /// Told once the batch is synced to the embedded journal (`securewatch run`); dropped
    /// untold where there is no journal or appending failed.
    journaled: Option<oneshot::Sender<()>>,
    reservation: Option<Reservation>,
}

/// The queue capacity a batch holds; released (and the depth gauge updated) when the batch is
/// completed or dropped, whichever comes first.
#[derive(Debug)]
struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    monitor: QueueMonitor,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.monitor.publish_depth();
    }
}

impl IngestBatch {
    /// A batch without an ack.
    pub fn new(records: Vec<RawRecord>) -> Self {
        IngestBatch { records, ack: None, positions: Vec::new(), journaled: None, reservation: None }
    }

    /// A batch and the receiver of its durability ack.
    pub fn with_ack(records: Vec<RawRecord>) -> (Self, oneshot::Receiver<BatchOutcome>) {
        let (sender, receiver) = oneshot::channel();
        let batch = IngestBatch { records, ack: Some(sender), positions: Vec::new(), journaled: None, reservation: None };
        (batch, receiver)
    }

    /// A receiver told once the batch is journaled; it hears nothing (an error) when the batch
    /// completes or is dropped without being journaled.
    pub fn when_journaled(&mut self) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.journaled = Some(sender);
        receiver
    }

    /// Tells whoever waits in [`IngestBatch::when_journaled`] that the batch is journaled.
    pub fn journaled(&mut self) {
        if let Some(journaled) = self.journaled.take() {
            let _ = journaled.send(());
        }
    }

    /// Reports the outcome to the sender (if it still listens) and frees the queue capacity.
    pub fn complete(self, outcome: BatchOutcome) {
        if let Some(ack) = self.ack {
            let _ = ack.send(outcome);
        }
    }
}

/// Why a batch was not enqueued. The batch is handed back so nothing is lost silently.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue has no room for the batch now.
    #[error("ingest queue is full")]
    Full(IngestBatch),
    /// The queue is closed: the pipeline is shutting down.
    #[error("ingest queue is closed (shutting down)")]
    Closed(IngestBatch),
    /// The batch holds more records than the queue's whole capacity.
    #[error("batch of {} records exceeds the queue capacity", .0.records.len())]
    TooLarge(IngestBatch),
}

/// The sending side, cloned into every source.
#[derive(Clone, Debug)]
pub struct IngestSender {
    sender: mpsc::UnboundedSender<IngestBatch>,
    monitor: QueueMonitor,
}

/// The receiving side, owned by the normalisation stage.
#[derive(Debug)]
pub struct IngestReceiver {
    receiver: mpsc::UnboundedReceiver<IngestBatch>,
    monitor: QueueMonitor,
}

/// A queue holding at most `capacity` records in flight.
pub fn ingest_queue(capacity: usize) -> (IngestSender, IngestReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let monitor = QueueMonitor { permits: Arc::new(Semaphore::new(capacity)), capacity };
    let (sender, receiver) = mpsc::unbounded_channel();
    (IngestSender { sender, monitor: monitor.clone() }, IngestReceiver { receiver, monitor })
}

fn permit_count(batch: &IngestBatch) -> u32 {
    u32::try_from(batch.records.len().max(1)).unwrap_or(u32::MAX)
}

impl IngestSender {
    /// Enqueues without waiting; `Full` when the records do not fit now.
    pub fn try_send(&self, mut batch: IngestBatch) -> Result<(), QueueError> {
        if batch.records.len() > self.capacity() {
            return Err(QueueError::TooLarge(batch));
        }
        match Arc::clone(&self.monitor.permits).try_acquire_many_owned(permit_count(&batch)) {
            Ok(permit) => batch.reservation = Some(self.reserve(permit)),
            Err(TryAcquireError::NoPermits) => return Err(QueueError::Full(batch)),
            Err(TryAcquireError::Closed) => return Err(QueueError::Closed(batch)),
        }
        self.push(batch)
    }

    /// Enqueues, waiting for room (backpressure for stream sources).
    pub async fn send(&self, mut batch: IngestBatch) -> Result<(), QueueError> {
        if batch.records.len() > self.capacity() {
            return Err(QueueError::TooLarge(batch));
        }
        match Arc::clone(&self.monitor.permits).acquire_many_owned(permit_count(&batch)).await {
            Ok(permit) => batch.reservation = Some(self.reserve(permit)),
            Err(_) => return Err(QueueError::Closed(batch)),
        }
        self.push(batch)
    }

    fn reserve(&self, permit: OwnedSemaphorePermit) -> Reservation {
        let reservation = Reservation { permit: Some(permit), monitor: self.monitor.clone() };
        self.monitor.publish_depth();
        reservation
    }

    fn push(&self, batch: IngestBatch) -> Result<(), QueueError> {
        self.sender.send(batch).map_err(|error| QueueError::Closed(error.0))
    }

    /// Records currently in flight (enqueued and not yet completed).
    pub fn depth(&self) -> usize {
        self.monitor.depth()
    }

    /// The configured capacity in records.
    pub fn capacity(&self) -> usize {
        self.monitor.capacity()
    }

    /// A read-only view of the queue's fill that does not keep the queue open.
    pub fn monitor(&self) -> QueueMonitor {
        self.monitor.clone()
    }
}

/// Reads the queue's depth (for health checks) without being a sender.
#[derive(Clone, Debug)]
pub struct QueueMonitor {
    permits: Arc<Semaphore>,
    capacity: usize,
}

impl QueueMonitor {
    /// Records currently in flight.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.permits.available_permits())
    }

    /// The configured capacity in records.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the `securewatch_queue_depth` gauge to the current depth.
    fn publish_depth(&self) {
        metrics::gauge!(crate::telemetry::QUEUE_DEPTH).set(self.depth() as f64);
    }
}

impl IngestReceiver {
    /// The next batch; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<IngestBatch> {
        self.receiver.recv().await
    }

    /// The next batch if one is ready now.
    pub fn try_recv(&mut self) -> Option<IngestBatch> {
        self.receiver.try_recv().ok()
    }

    /// Records currently in flight.
    pub fn depth(&self) -> usize {
        self.monitor.depth()
    }

    /// Refuses new batches; batches already queued are still delivered.
    pub fn close(&mut self) {
        self.monitor.permits.close();
        self.receiver.close();
    }

    /// A second stage of this queue (the embedded journal between the sources and the
    /// dataflow): batches passed on through the [`IngestRelay`] keep the capacity they hold, so
    /// both stages together stay within the queue's capacity.
    pub fn relay(&self) -> (IngestRelay, IngestReceiver) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (IngestRelay { sender }, IngestReceiver { receiver, monitor: self.monitor.clone() })
    }
}

/// Passes batches on to the next stage of a queue (see [`IngestReceiver::relay`]).
#[derive(Clone, Debug)]
pub struct IngestRelay {
    sender: mpsc::UnboundedSender<IngestBatch>,
}

impl IngestRelay {
    /// Passes `batch` on as it is; `Closed` when the next stage is gone.
    pub fn send(&self, batch: IngestBatch) -> Result<(), QueueError> {
        self.sender.send(batch).map_err(|error| QueueError::Closed(error.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use securewatch_schemas::RecordMeta;
    use securewatch_schemas::SourceKind;

    fn records(count: usize) -> Vec<RawRecord> {
        (0..count)
            .map(|index| RawRecord {
                tenant: Default::default(),
                kind: SourceKind::Syslog,
                source_name: "test".into(),
                peer: None,
                received: Utc::now(),
                body: format!("line {index}").into_bytes(),
                meta: RecordMeta::None,
            })
            .collect()
    }

    #[tokio::test]
    async fn capacity_counts_records_and_frees_on_completion() {
        let (sender, mut receiver) = ingest_queue(10);
        sender.try_send(IngestBatch::new(records(6))).unwrap();
        assert!(matches!(sender.try_send(IngestBatch::new(records(5))), Err(QueueError::Full(_))));
        assert!(matches!(
            sender.try_send(IngestBatch::new(records(11))),
            Err(QueueError::TooLarge(_))
        ));
        assert_eq!(sender.depth(), 6);
        let batch = receiver.recv().await.unwrap();
        assert_eq!(batch.records.len(), 6);
        batch.complete(BatchOutcome::Durable);
        assert_eq!(sender.depth(), 0);
        sender.try_send(IngestBatch::new(records(10))).unwrap();
    }

    #[tokio::test]
    async fn ack_reports_outcome_and_send_waits_for_room() {
        let (sender, mut receiver) = ingest_queue(2);
        let (batch, ack) = IngestBatch::with_ack(records(2));
        sender.try_send(batch).unwrap();
        let waiting = {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(IngestBatch::new(records(1))).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "send must wait while the queue is full");
        receiver.recv().await.unwrap().complete(BatchOutcome::Durable);
        assert_eq!(ack.await.unwrap(), BatchOutcome::Durable);
        waiting.await.unwrap().unwrap();
        let (mut batch, _) = IngestBatch::with_ack(records(1));
        let told = batch.when_journaled();
        batch.journaled();
        told.await.unwrap();
        let (mut batch, _) = IngestBatch::with_ack(records(1));
        let untold = batch.when_journaled();
        batch.complete(BatchOutcome::Durable);
        assert!(untold.await.is_err(), "completed without a journal: no signal");
        assert_eq!(receiver.recv().await.unwrap().records.len(), 1);
    }

    /// The depth gauge follows completions too, not only sends.
    #[test]
    fn depth_gauge_falls_when_batches_complete_or_drop() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let gauge = || {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .find(|(key, ..)| key.key().name() == crate::telemetry::QUEUE_DEPTH)
                .map(|(.., value)| value)
        };
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let (sender, mut receiver) = ingest_queue(10);
                sender.try_send(IngestBatch::new(records(4))).unwrap();
                sender.try_send(IngestBatch::new(records(3))).unwrap();
                assert_eq!(gauge(), Some(DebugValue::Gauge(7.0.into())));
                receiver.recv().await.unwrap().complete(BatchOutcome::Durable);
                assert_eq!(gauge(), Some(DebugValue::Gauge(3.0.into())));
                drop(receiver.recv().await.unwrap());
                assert_eq!(gauge(), Some(DebugValue::Gauge(0.0.into())));
            });
        });
    }

    #[tokio::test]
    async fn closed_queue_hands_the_batch_back() {
        let (sender, mut receiver) = ingest_queue(4);
        receiver.close();
        match sender.send(IngestBatch::new(records(3))).await {
            Err(QueueError::Closed(batch)) => assert_eq!(batch.records.len(), 3),
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}
