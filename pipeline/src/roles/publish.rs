//! `securewatch ingest`'s publisher: ingest queue → bus, acknowledging each batch once the bus
//! confirmed it.
//!
//! A batch with an ack (HEC, the Wazuh tailer) is tried once: on failure its sender hears
//! `Unavailable` (HEC answers 503 code 9, the tailer keeps its position and sends again). A
//! batch without one (syslog) has nobody to tell, so it is retried with backoff until the bus
//! takes it; meanwhile the queue fills and syslog TCP stops reading (backpressure), and UDP
//! datagrams that find the queue full are dropped and counted by the syslog source.

use std::sync::Arc;
use std::time::Duration;

use securewatch_connectors::bus::BusProducer;
use securewatch_connectors::queue::{BatchOutcome, IngestBatch, IngestReceiver};
use tokio::task::JoinSet;

/// Counter: publish attempts that failed, by whether the batch is retried.
pub const PUBLISH_FAILURES: &str = "securewatch_ingest_publish_failures_total";
/// Gauge: batches being published.
pub const PUBLISH_IN_FLIGHT: &str = "securewatch_ingest_publish_in_flight";
/// Counter: records dropped unpublished at shutdown (batches without an ack still failing).
pub const PUBLISH_DROPPED: &str = "securewatch_ingest_dropped_records_total";

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long batches without an ack keep being retried once the queue closed (shutdown).
const SHUTDOWN_RETRY: Duration = Duration::from_secs(30);

/// Publishes every batch of `queue` with at most `in_flight` batches at once, until the queue
/// closes (the sources stopped) and every batch is settled.
pub async fn run<P>(producer: Arc<P>, mut queue: IngestReceiver, in_flight: usize)
where
    P: BusProducer + Send + Sync + 'static,
{
    let mut publishing: JoinSet<()> = JoinSet::new();
    let closing = securewatch_connectors::CancellationToken::new();
    while let Some(batch) = queue.recv().await {
        while publishing.len() >= in_flight.max(1) {
            publishing.join_next().await;
        }
        publishing.spawn(publish(Arc::clone(&producer), batch, closing.clone()));
        metrics::gauge!(PUBLISH_IN_FLIGHT).set(publishing.len() as f64);
    }
    closing.cancel();
    while publishing.join_next().await.is_some() {}
    metrics::gauge!(PUBLISH_IN_FLIGHT).set(0.0);
}

/// Publishes one batch; see the module documentation for what happens when the bus fails.
async fn publish<P: BusProducer>(producer: Arc<P>, batch: IngestBatch, closing: securewatch_connectors::CancellationToken) {
    if batch.ack.is_some() {
        if let Err(error) = producer.publish(batch).await {
            metrics::counter!(PUBLISH_FAILURES, "retried" => "false").increment(1);
            tracing::warn!(%error, "The bus did not take a batch; its sender is told to retry.");
        }
        return;
    }
    let mut backoff = FIRST_BACKOFF;
    let mut deadline = None;
    loop {
        match producer.send_records(&batch.records).await {
            Ok(()) => {
                batch.complete(BatchOutcome::Durable);
                return;
            }
            Err(error) => {
                metrics::counter!(PUBLISH_FAILURES, "retried" => "true").increment(1);
                tracing::warn!(%error, records = batch.records.len(), retry_in_ms = backoff.as_millis() as u64, "The bus did not take a batch; retrying.");
            }
        }
        if closing.is_cancelled() {
            let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_RETRY);
            if tokio::time::Instant::now() >= deadline {
                metrics::counter!(PUBLISH_DROPPED).increment(batch.records.len() as u64);
                tracing::error!(records = batch.records.len(), "Shutting down with the bus unavailable: records dropped.");
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
