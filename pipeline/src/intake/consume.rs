//! `securewatch worker`'s intake: bus → ingest queue, committing positions after durability.
//!
//! Each batch read from the bus enters the dataflow with the positions it ends at. The writer
//! stores those positions in the store's `source_progress` table in the same transaction as the
//! outputs derived from the batch, and the batch's ack fires after that commit. Only then is the
//! position committed to the bus (Kafka group offsets, for monitoring; Redis `XACK`). A
//! restarted worker starts from the stored positions, never from the bus's: what was stored is
//! not read again, what was not is read again.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use securewatch_connectors::bus::kafka::{commit_positions, KafkaConsumer, KafkaEntry, StartOffset};
use securewatch_connectors::bus::redis::{BusEntry, RedisConsumer, StartPosition};
use securewatch_connectors::bus::DecodeError;
use securewatch_connectors::queue::{BatchOutcome, IngestBatch, IngestSender, SourcePosition};
use securewatch_connectors::sinks::{DeadLetter, EpochWrite};
use securewatch_connectors::CancellationToken;
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;
use tokio::sync::oneshot;

use super::BusConfig;
use securewatch_connectors::sinks::{Sinks, Stored};

/// How long a Kafka poll waits for the first message.
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// How often consumer lag is measured.
const LAG_INTERVAL: Duration = Duration::from_secs(5);
/// Pause after a failed poll before the next.
const POLL_RETRY: Duration = Duration::from_secs(1);

/// Counter: bus entries already durable when they were delivered again (acknowledged unread).
pub const SKIPPED_DURABLE: &str = "securewatch_worker_skipped_durable_total";
/// Gauge: batches read from the bus whose outputs are not durable yet.
pub const IN_FLIGHT: &str = "securewatch_worker_batches_in_flight";

/// The progress-table source name of a Kafka topic.
pub fn kafka_source(topic: &str) -> String {
    format!("kafka:{topic}")
}

/// The progress-table source name of a Redis stream.
pub fn redis_source(stream: &str) -> String {
    format!("redis:{stream}")
}

/// Batches sent to the dataflow whose outputs are not durable yet, oldest first, each with
/// what to commit to the bus once it is.
struct InFlight<C> {
    batches: VecDeque<(oneshot::Receiver<BatchOutcome>, C)>,
}

impl<C> InFlight<C> {
    fn new() -> Self {
        InFlight { batches: VecDeque::new() }
    }

    fn push(&mut self, ack: oneshot::Receiver<BatchOutcome>, commit: C) {
        self.batches.push_back((ack, commit));
        metrics::gauge!(IN_FLIGHT).set(self.batches.len() as f64);
    }

    /// The commits of the oldest batches that are durable now, in order (without waiting).
    fn durable(&mut self) -> anyhow::Result<Vec<C>> {
        let mut ready = Vec::new();
        while let Some((ack, _)) = self.batches.front_mut() {
            match ack.try_recv() {
                Ok(outcome) => {
                    check(outcome)?;
                    ready.push(self.batches.pop_front().expect("front exists").1);
                }
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => anyhow::bail!("a batch was dropped unfinished"),
            }
        }
        metrics::gauge!(IN_FLIGHT).set(self.batches.len() as f64);
        Ok(ready)
    }

    /// Waits for every batch; their commits in order.
    async fn all(&mut self) -> anyhow::Result<Vec<C>> {
        let mut ready = Vec::new();
        while let Some((ack, commit)) = self.batches.pop_front() {
            check(ack.await.context("a batch was dropped unfinished")?)?;
            ready.push(commit);
        }
        metrics::gauge!(IN_FLIGHT).set(0.0);
        Ok(ready)
    }
}

/// A batch the store could not take stops the worker: its records were counted by the
/// dataflow already, so only a restart (which restores the state from the store and reads the
/// bus again from the stored positions) keeps the results exact.
fn check(outcome: BatchOutcome) -> anyhow::Result<()> {
    match outcome {
        BatchOutcome::Durable => Ok(()),
        BatchOutcome::Failed(reason) | BatchOutcome::Unavailable(reason) => {
            anyhow::bail!("the store did not take a batch ({reason}); restart the worker to resume from the stored positions")
        }
    }
}

/// Writes the entries that are not records of this build to the dead letters, with the reason.
async fn dead_letter(sinks: &Sinks, kind: SourceKind, source: &str, undecodable: Vec<(String, DecodeError)>) -> anyhow::Result<()> {
    if undecodable.is_empty() {
        return Ok(());
    }
    let dead_letters = undecodable
        .into_iter()
        .map(|(position, error)| DeadLetter {
            record: RawRecord {
                tenant: Default::default(),
                kind,
                source_name: Arc::from(source),
                peer: Some(position),
                received: chrono::Utc::now(),
                body: Vec::new(),
                meta: RecordMeta::None,
            },
            reason: error.reason(),
            detail: error.to_string(),
        })
        .collect();
    let mut write = EpochWrite { dead_letters, ..EpochWrite::default() };
    sinks.write(&mut write, &mut Stored::default()).await.context("writing undecodable bus entries to the dead letters")?;
    Ok(())
}

/// Reads the Kafka topic's `partitions` from the stored positions (the earliest offset where
/// none is stored) until `stop`, then waits for the batches in flight and commits them.
pub async fn kafka(
    bus: &BusConfig,
    partitions: Vec<i32>,
    sinks: Sinks,
    queue: IngestSender,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let config = &bus.kafka;
    let source = kafka_source(&config.topic);
    let stored: BTreeMap<String, String> =
        sinks.progress(&source).await?.into_iter().map(|row| (row.partition, row.position)).collect();
    let starts: Vec<(i32, StartOffset)> = partitions
        .iter()
        .map(|partition| {
            let offset = stored.get(&partition.to_string()).and_then(|position| position.parse().ok());
            (*partition, offset.map_or(StartOffset::Earliest, StartOffset::At))
        })
        .collect();
    tracing::info!(topic = %config.topic, ?starts, "Reading Kafka partitions from the stored positions.");
    let mut consumer = KafkaConsumer::assign(config, &starts).context("Kafka consumer")?;
    let mut in_flight: InFlight<Vec<(i32, i64)>> = InFlight::new();
    let mut next_lag = Instant::now();
    while !stop.is_cancelled() {
        for positions in in_flight.durable()? {
            if let Err(error) = consumer.commit(&positions).await {
                tracing::warn!(%error, "Committing Kafka group offsets failed (they serve monitoring only).");
            }
        }
        if Instant::now() >= next_lag {
            next_lag = Instant::now() + LAG_INTERVAL;
            if let Err(error) = consumer.lag().await {
                tracing::debug!(%error, "Kafka lag not measured.");
            }
        }
        let entries = match consumer.poll_batch(bus.read_batch, POLL_TIMEOUT).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "Kafka poll failed; retrying.");
                tokio::time::sleep(POLL_RETRY).await;
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let commit = commit_positions(&entries);
        let mut records = Vec::with_capacity(entries.len());
        let mut undecodable = Vec::new();
        for KafkaEntry { partition, offset, record } in entries {
            match record {
                Ok(record) => records.push(record),
                Err(error) => undecodable.push((format!("{}/{partition}@{offset}", config.topic), error)),
            }
        }
        dead_letter(&sinks, SourceKind::Kafka, &config.topic, undecodable).await?;
        let (mut batch, ack) = IngestBatch::with_ack(records);
        batch.positions = commit
            .iter()
            .map(|(partition, next)| SourcePosition {
                source: source.clone(),
                partition: partition.to_string(),
                position: next.to_string(),
            })
            .collect();
        if queue.send(batch).await.is_err() {
            break;
        }
        in_flight.push(ack, commit);
    }
    drop(queue); // lets the dataflow finish what is in flight
    for positions in in_flight.all().await? {
        if let Err(error) = consumer.commit(&positions).await {
            tracing::warn!(%error, "Committing Kafka group offsets failed at shutdown.");
        }
    }
    Ok(())
}

/// A Redis stream id as `(milliseconds, sequence)`, for comparing.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, sequence) = id.split_once('-')?;
    Some((ms.parse().ok()?, sequence.parse().ok()?))
}

/// Reads the Redis stream as consumer `[bus.redis] consumer` of the group until `stop`, then
/// waits for the batches in flight and acknowledges them. After a restart, the consumer's own
/// pending entries up to the stored position are durable already: they are acknowledged
/// without being read again.
pub async fn redis(bus: &BusConfig, sinks: Sinks, queue: IngestSender, stop: CancellationToken) -> anyhow::Result<()> {
    let config = &bus.redis;
    let source = redis_source(&config.stream);
    let stored = sinks
        .progress(&source)
        .await?
        .into_iter()
        .find(|row| row.partition == config.consumer)
        .and_then(|row| stream_id(&row.position));
    tracing::info!(stream = %config.stream, consumer = %config.consumer, stored = ?stored, "Reading the Redis stream.");
    let mut consumer = RedisConsumer::connect(config, StartPosition::Beginning).await.context("Redis consumer")?;
    let mut highest = stored;
    let mut in_flight: InFlight<Vec<String>> = InFlight::new();
    // Ids sent to the dataflow and not yet durable: a re-read of the pending list (after a
    // failed read) delivers them again, and they must not enter twice.
    let mut unsettled: HashSet<String> = HashSet::new();
    let mut next_lag = Instant::now();
    while !stop.is_cancelled() {
        for ids in in_flight.durable()? {
            for id in &ids {
                unsettled.remove(id);
            }
            if let Err(error) = consumer.ack(&ids).await {
                tracing::warn!(%error, "XACK failed; the entries will be delivered again and skipped as durable.");
            }
        }
        if Instant::now() >= next_lag {
            next_lag = Instant::now() + LAG_INTERVAL;
            if let Err(error) = consumer.lag().await {
                tracing::debug!(%error, "Redis lag not measured.");
            }
        }
        let entries = match consumer.poll().await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "Redis read failed; retrying.");
                tokio::time::sleep(POLL_RETRY).await;
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let mut durable = Vec::new();
        let mut ids = Vec::with_capacity(entries.len());
        let mut records = Vec::with_capacity(entries.len());
        let mut undecodable = Vec::new();
        for BusEntry { id, record, own_pending } in entries {
            let parsed = stream_id(&id);
            if own_pending && parsed.is_some() && parsed <= stored {
                durable.push(id);
                continue;
            }
            if own_pending && unsettled.contains(&id) {
                continue;
            }
            highest = highest.max(parsed);
            match record {
                Ok(record) => records.push(record),
                Err(error) => undecodable.push((format!("{}/{id}", config.stream), error)),
            }
            ids.push(id);
        }
        if !durable.is_empty() {
            metrics::counter!(SKIPPED_DURABLE).increment(durable.len() as u64);
            consumer.ack(&durable).await.context("XACK of entries stored before the restart")?;
        }
        if ids.is_empty() {
            continue;
        }
        dead_letter(&sinks, SourceKind::Redis, &config.stream, undecodable).await?;
        let (mut batch, ack) = IngestBatch::with_ack(records);
        if let Some((ms, sequence)) = highest {
            batch.positions = vec![SourcePosition {
                source: source.clone(),
                partition: config.consumer.clone(),
                position: format!("{ms}-{sequence}"),
            }];
        }
        if queue.send(batch).await.is_err() {
            break;
        }
        unsettled.extend(ids.iter().cloned());
        in_flight.push(ack, ids);
    }
    drop(queue);
    for ids in in_flight.all().await? {
        if let Err(error) = consumer.ack(&ids).await {
            tracing::warn!(%error, "XACK failed at shutdown; the entries will be skipped as durable after a restart.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(stream_id("1700000000000-5") < stream_id("1700000000001-0"));
        assert!(stream_id("1700000000000-5") > stream_id("1700000000000-4"));
        assert_eq!(stream_id("nonsense"), None);
    }

    #[tokio::test]
    async fn commits_come_out_in_order_and_a_failed_batch_stops_the_worker() {
        let mut in_flight = InFlight::new();
        let (first, first_ack) = oneshot::channel();
        let (second, second_ack) = oneshot::channel();
        in_flight.push(first_ack, 1);
        in_flight.push(second_ack, 2);
        second.send(BatchOutcome::Durable).unwrap();
        assert!(in_flight.durable().unwrap().is_empty(), "the second waits for the first");
        first.send(BatchOutcome::Durable).unwrap();
        assert_eq!(in_flight.durable().unwrap(), [1, 2]);
        let (third, third_ack) = oneshot::channel();
        in_flight.push(third_ack, 3);
        third.send(BatchOutcome::Failed("disk full".into())).unwrap();
        let error = in_flight.all().await.unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
    }
}
