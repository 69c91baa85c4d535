//! The consumer of `securewatch worker`: statically assigned partitions, caller-supplied start
//! offsets, and group offsets committed only when the caller says its output is durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;

use super::config::ValueFormat;
use super::{BusStats, DecodeError, KafkaBusConfig, KafkaBusError};
use crate::bus::layout::Decoder;
use crate::telemetry;

/// Where a partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// With the oldest message the partition still holds.
    Earliest,
    /// With this offset: the next one to read, as committed (last processed + 1).
    At(i64),
}

/// One consumed message: its coordinates and its record, or why it is not one (the caller
/// dead-letters it and commits past it like any other).
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaEntry {
    /// The partition the message was read from.
    pub partition: i32,
    /// The message's offset within its partition.
    pub offset: i64,
    /// The decoded record, or why the message is not one.
    pub record: Result<RawRecord, DecodeError>,
}

impl KafkaEntry {
    /// The offset to commit once this entry is processed: Kafka's committed offset is the
    /// next one to read, this entry's offset + 1.
    pub fn next_offset(&self) -> i64 {
        self.offset + 1
    }
}

/// The positions to commit after processing `entries`: per partition, the highest offset + 1,
/// in partition order.
pub fn commit_positions(entries: &[KafkaEntry]) -> Vec<(i32, i64)> {
    let mut next = BTreeMap::new();
    for entry in entries {
        let position = next.entry(entry.partition).or_insert(entry.next_offset());
        *position = (*position).max(entry.next_offset());
    }
    next.into_iter().collect()
}

/// One partition's backlog as the broker and this consumer see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition number.
    pub partition: i32,
    /// The oldest offset the broker holds.
    pub low_watermark: i64,
    /// The offset the next produced message gets.
    pub high_watermark: i64,
    /// The next offset this consumer reads.
    pub position: i64,
    /// `high_watermark − position`, at least 0.
    pub lag: i64,
}

/// A reader of statically assigned partitions of one topic. Partitions started at an offset
/// are fetched from `start_rewind` messages earlier, and the messages before the start offset
/// dropped (see [`KafkaBusConfig::start_rewind`]).
pub struct KafkaConsumer {
    consumer: Arc<StreamConsumer>,
    config: KafkaBusConfig,
    /// Per assigned partition, the next offset to read, once known (a start offset, or a
    /// consumed message's offset + 1).
    positions: BTreeMap<i32, Option<i64>>,
    /// Per partition, the position the group offset was last committed at (or started from),
    /// to count how far commits advance it.
    committed: BTreeMap<i32, i64>,
    /// Per partition started at an offset, that offset: earlier messages, fetched because of
    /// `start_rewind`, are dropped.
    skip_below: BTreeMap<i32, i64>,
    topic_name: Arc<str>,
    decoder: Decoder,
    stats: Arc<BusStats>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("topic", &self.config.topic)
            .field("positions", &self.positions)
            .finish()
    }
}

impl KafkaConsumer {
    /// A consumer of `config.topic` reading exactly the given partitions from the given
    /// offsets (`assign`; the group only stores committed offsets).
    pub fn assign(config: &KafkaBusConfig, starts: &[(i32, StartOffset)]) -> Result<Self, KafkaBusError> {
        let consumer: StreamConsumer = config.consumer_config()?.create()?;
        let mut assignment = TopicPartitionList::new();
        let mut positions = BTreeMap::new();
        let mut committed = BTreeMap::new();
        let mut skip_below = BTreeMap::new();
        for &(partition, start) in starts {
            let offset = match start {
                StartOffset::Earliest => Offset::Beginning,
                StartOffset::At(offset) => {
                    committed.insert(partition, offset);
                    skip_below.insert(partition, offset);
                    // Below the log start, librdkafka resets to the earliest offset.
                    Offset::Offset((offset - i64::from(config.start_rewind)).max(0))
                }
            };
            assignment.add_partition_offset(&config.topic, partition, offset)?;
            positions.insert(partition, if let StartOffset::At(offset) = start { Some(offset) } else { None });
        }
        consumer.assign(&assignment)?;
        Ok(KafkaConsumer {
            consumer: Arc::new(consumer),
            topic_name: config.topic.as_str().into(),
            config: config.clone(),
            positions,
            committed,
            skip_below,
            decoder: Decoder::default(),
            stats: Arc::new(BusStats::new("kafka", "topic", &config.topic)),
        })
    }

    /// Up to `max` messages: waits up to `timeout` for the first, then takes what is already
    /// there. Empty when nothing came in time.
    pub async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<KafkaEntry>, KafkaBusError> {
        let mut entries = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let consumer = Arc::clone(&self.consumer);
        while entries.len() < max {
            // The first message may take until the deadline; later ones only if already there.
            let wait = if entries.is_empty() { deadline } else { tokio::time::Instant::now() };
            let message = match tokio::time::timeout_at(wait, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Err(error)) if entries.is_empty() => return Err(error.into()),
                Ok(Err(error)) => {
                    tracing::warn!(topic = %self.config.topic, %error, "Kafka consumer error after a partial batch.");
                    break;
                }
                Ok(Ok(message)) => message,
            };
            if self.skip_below.get(&message.partition()).is_some_and(|start| message.offset() < *start) {
                continue;
            }
            let entry = self.entry(&message);
            if let Err(error) = &entry.record {
                self.stats.count_undecodable(error.reason());
            }
            self.positions.insert(entry.partition, Some(entry.next_offset()));
            self.committed.entry(entry.partition).or_insert(entry.offset);
            entries.push(entry);
        }
        self.stats.count_consumed(entries.len() as u64);
        Ok(entries)
    }

    fn entry(&mut self, message: &BorrowedMessage<'_>) -> KafkaEntry {
        let value = message.payload().unwrap_or_default();
        let record = match (message.payload(), self.config.format) {
            (None, _) => Err(DecodeError::Envelope("the message has no value".to_string())),
            (Some(_), ValueFormat::Raw) => self.decoder.decode_envelope(value),
            (Some(_), ValueFormat::Avro) => self.decoder.decode_avro(value, self.config.schema_id),
            (Some(_), ValueFormat::Json) => json_record(value, &self.topic_name, message.timestamp().to_millis()),
        };
        KafkaEntry { partition: message.partition(), offset: message.offset(), record }
    }

    /// Commits the group offsets (synchronously): `(partition, next offset to read)`, as
    /// [`KafkaEntry::next_offset`] and [`super::commit_positions`] give them. Call it only once
    /// all output derived from the messages before those offsets is durable.
    pub async fn commit(&mut self, positions: &[(i32, i64)]) -> Result<(), KafkaBusError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for &(partition, next) in positions {
            if !self.positions.contains_key(&partition) {
                return Err(KafkaBusError::NotAssigned(partition));
            }
            list.add_partition_offset(&self.config.topic, partition, Offset::Offset(next))?;
        }
        let consumer = Arc::clone(&self.consumer);
        blocking(move || consumer.commit(&list, CommitMode::Sync)).await??;
        let mut advanced = 0;
        for &(partition, next) in positions {
            let before = self.committed.insert(partition, next).unwrap_or(next);
            advanced += (next - before).max(0) as u64;
        }
        self.stats.count_committed(advanced);
        Ok(())
    }

    /// The group's committed offsets of the assigned partitions (`None`: nothing committed).
    pub async fn committed_offsets(&self) -> Result<Vec<(i32, Option<i64>)>, KafkaBusError> {
        let mut list = TopicPartitionList::new();
        for &partition in self.positions.keys() {
            list.add_partition(&self.config.topic, partition);
        }
        let consumer = Arc::clone(&self.consumer);
        let timeout = self.config.request_timeout();
        let list = blocking(move || consumer.committed_offsets(list, timeout)).await??;
        Ok(list
            .elements()
            .iter()
            .map(|element| {
                let offset = match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                };
                (element.partition(), offset)
            })
            .collect())
    }

    /// Each assigned partition's watermarks and this consumer's lag, also set as the
    /// `securewatch_bus_consumer_lag` gauge by partition. A partition started at `Earliest`
    /// with nothing read yet counts from its low watermark.
    pub async fn lag(&self) -> Result<Vec<PartitionLag>, KafkaBusError> {
        let mut lags = Vec::with_capacity(self.positions.len());
        for (&partition, &position) in &self.positions {
            let consumer = Arc::clone(&self.consumer);
            let topic = self.config.topic.clone();
            let timeout = self.config.request_timeout();
            let (low, high) = blocking(move || consumer.fetch_watermarks(&topic, partition, timeout)).await??;
            let position = position.unwrap_or(low);
            let lag = (high - position).max(0);
            self.stats.set_gauge(telemetry::BUS_CONSUMER_LAG, &[("partition", partition.to_string())], lag as f64);
            lags.push(PartitionLag { partition, low_watermark: low, high_watermark: high, position, lag });
        }
        Ok(lags)
    }

    /// This consumer's counters.
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }
}

/// Runs one of librdkafka's blocking calls off the async threads.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> Result<T, KafkaBusError> {
    tokio::task::spawn_blocking(call).await.map_err(|error| KafkaBusError::Task(error.to_string()))
}

/// A foreign JSON message as a record of kind `kafka`: the value is the body, the topic the
/// source name, the message timestamp (milliseconds) the receive time, so a replay yields the
/// same record.
fn json_record(value: &[u8], topic: &Arc<str>, timestamp: Option<i64>) -> Result<RawRecord, DecodeError> {
    if value.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::Json("the value does not start with `{`".to_string()));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(|error| DecodeError::Json(error.to_string()))?;
    let received = timestamp.and_then(DateTime::<Utc>::from_timestamp_millis).unwrap_or_else(Utc::now);
    Ok(RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Kafka,
        source_name: Arc::clone(topic),
        peer: None,
        received,
        body: value.to_vec(),
        meta: RecordMeta::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(partition: i32, offset: i64) -> KafkaEntry {
        KafkaEntry { partition, offset, record: Err(DecodeError::Missing("v")) }
    }

    #[test]
    fn the_committed_offset_is_the_next_one_to_read() {
        assert_eq!(entry(0, 41).next_offset(), 42);
        let entries = [entry(2, 7), entry(0, 3), entry(2, 9), entry(0, 4), entry(2, 8)];
        assert_eq!(commit_positions(&entries), vec![(0, 5), (2, 10)]);
        assert!(commit_positions(&[]).is_empty());
    }

    #[test]
    fn json_values_become_kafka_records_and_other_values_are_rejected() {
        let topic: Arc<str> = "edr-events".into();
        let record = json_record(br#" {"host":"a","n":1}"#, &topic, Some(1_700_000_000_123)).unwrap();
        assert_eq!(record.kind, SourceKind::Kafka);
        assert_eq!(&*record.source_name, "edr-events");
        assert_eq!(record.received.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(record.body, br#" {"host":"a","n":1}"#);
        assert_eq!(json_record(b"[1,2]", &topic, None).unwrap_err().reason(), "bad_json");
        assert_eq!(json_record(b"{\"a\":", &topic, None).unwrap_err().reason(), "bad_json");
    }
}
