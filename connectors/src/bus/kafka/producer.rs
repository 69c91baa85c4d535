//! The producer of `securewatch ingest`: every record of a batch is enqueued in librdkafka at
//! once, then the batch waits for every delivery report.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use securewatch_schemas::{RawRecord, RecordMeta};

use super::config::ValueFormat;
use super::{avro, envelope, BusProducer, BusStats, KafkaBusConfig, KafkaBusError};

/// Delivery errors after which the producer's id is unusable (librdkafka's names): it is
/// replaced by a new producer.
const FENCED: [&str; 3] = ["ProducerFenced", "InvalidProducerEpoch", "UnknownProducerId"];

/// Where one record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The partition the record was written to.
    pub partition: i32,
    /// The record's offset within that partition.
    pub offset: i64,
}

/// Writes raw records to a topic. Cheap to clone; clones share one librdkafka producer.
///
/// **Keys.** A record's key picks its partition (librdkafka's default partitioner hashes it),
/// so records with the same key stay in order on one partition. The key is the value of the
/// configured `key_field` when the body is a JSON object that has it (a dotted path such as
/// `agent.name` reaches into nested objects); for `key_field = "host"` a record without one
/// falls back to its HEC request's default host, then to its peer's address without the port
/// (a syslog sender's IP, a tailed file's path). Records without any key are spread over the
/// partitions.
///
/// **Fatal errors.** An idempotent producer can enter a fatal state (e.g. fenced by the broker
/// after its messages timed out during an outage); it then fails every batch. The next batch
/// after such a failure gets a new librdkafka producer (a new producer id).
#[derive(Clone)]
pub struct KafkaProducer {
    producer: Arc<RwLock<FutureProducer>>,
    config: Arc<KafkaBusConfig>,
    topic: Arc<str>,
    format: ValueFormat,
    schema_id: u32,
    key_field: Arc<str>,
    message_timeout: Duration,
    stats: Arc<BusStats>,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").field("topic", &self.topic).field("format", &self.format).finish()
    }
}

impl KafkaProducer {
    /// A producer for `config.topic`. librdkafka connects in the background: unreachable
    /// brokers show up as failed batches, not here.
    pub fn new(config: &KafkaBusConfig) -> Result<Self, KafkaBusError> {
        let producer: FutureProducer = config.producer_config()?.create()?;
        Ok(KafkaProducer {
            producer: Arc::new(RwLock::new(producer)),
            config: Arc::new(config.clone()),
            topic: config.topic.as_str().into(),
            format: config.format,
            schema_id: config.schema_id,
            key_field: config.key_field.as_str().into(),
            message_timeout: Duration::from_millis(config.message_timeout_ms),
            stats: Arc::new(BusStats::new("kafka", "topic", &config.topic)),
        })
    }

    /// Sends the records (in order per partition) and returns where each went. `Ok` only once
    /// the brokers confirmed every record; `Err` after at most about `message_timeout_ms` when
    /// any was not (none may then be taken as sent).
    pub async fn send_batch(&self, records: &[RawRecord]) -> Result<Vec<Delivered>, KafkaBusError> {
        let result = self.send_all(records).await;
        match &result {
            Ok(delivered) => self.stats.count_produced(delivered.len() as u64),
            Err(error) => {
                self.stats.count_produce_errors(records.len() as u64);
                tracing::warn!(topic = %self.topic, records = records.len(), %error, "Kafka did not confirm a batch.");
                if let KafkaBusError::Delivery { reason, .. } = error {
                    self.replace_if_fatal(reason);
                }
            }
        }
        result
    }

    /// Replaces the librdkafka producer when it is in a fatal state or was fenced (`reason`: the
    /// delivery error of the failed batch).
    fn replace_if_fatal(&self, delivery_error: &str) {
        let mut producer = self.producer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fenced = FENCED.iter().any(|code| delivery_error.contains(code));
        let (code, reason) = match producer.client().fatal_error() {
            Some((code, reason)) => (Some(code), reason),
            None if fenced => (None, delivery_error.to_string()),
            None => return,
        };
        match self.config.producer_config().and_then(|config| Ok(config.create::<FutureProducer>()?)) {
            Ok(fresh) => {
                tracing::error!(topic = %self.topic, ?code, %reason, "The Kafka producer hit a fatal error; starting a new one.");
                *producer = fresh;
            }
            Err(error) => tracing::error!(topic = %self.topic, %error, "A new Kafka producer could not be created."),
        }
    }

    async fn send_all(&self, records: &[RawRecord]) -> Result<Vec<Delivered>, KafkaBusError> {
        let deadline = Instant::now() + self.message_timeout;
        let producer = self.producer.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut pending = Vec::with_capacity(records.len());
        let mut value = Vec::new();
        for record in records {
            value.clear();
            match self.format {
                ValueFormat::Avro => avro::encode_into(record, self.schema_id, &mut value)?,
                ValueFormat::Raw | ValueFormat::Json => envelope::encode_into(record, &mut value),
            }
            let key = record_key(record, &self.key_field);
            let mut message = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(&value);
            if let Some(key) = &key {
                message = message.key(key.as_slice());
            }
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    // librdkafka's queue is full: wait for deliveries to make room.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if Instant::now() < deadline =>
                    {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => {
                        let failed = records.len() - pending.len();
                        return Err(KafkaBusError::Delivery { failed, total: records.len(), reason: error.to_string() });
                    }
                }
            }
        }
        let mut delivered = Vec::with_capacity(records.len());
        let mut first_error = None;
        for delivery in pending {
            match delivery.await {
                Ok(Ok(report)) => delivered.push(Delivered { partition: report.partition, offset: report.offset }),
                Ok(Err((error, _))) => {
                    first_error.get_or_insert_with(|| error.to_string());
                }
                Err(_canceled) => {
                    first_error.get_or_insert_with(|| "the producer was dropped before delivery".to_string());
                }
            }
        }
        match first_error {
            None => Ok(delivered),
            Some(reason) => {
                Err(KafkaBusError::Delivery { failed: records.len() - delivered.len(), total: records.len(), reason })
            }
        }
    }

    /// This producer's counters (shared by its clones).
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }
}

impl BusProducer for KafkaProducer {
    type Error = KafkaBusError;

    async fn send_records(&self, records: &[RawRecord]) -> Result<(), KafkaBusError> {
        self.send_batch(records).await.map(drop)
    }
}

/// The message key of `record` (see [`KafkaProducer`]).
pub(crate) fn record_key(record: &RawRecord, key_field: &str) -> Option<Vec<u8>> {
    if let Some(key) = json_field(&record.body, key_field) {
        return Some(key);
    }
    if key_field != "host" {
        return None;
    }
    if let RecordMeta::HecEvent { meta, .. } | RecordMeta::HecRaw { meta, .. } = &record.meta {
        if let Some(host) = &meta.defaults.host {
            return Some(host.as_bytes().to_vec());
        }
    }
    record.peer.as_deref().map(|peer| peer_host(peer).as_bytes().to_vec())
}

/// The string, number or boolean at the dotted `path` of a JSON-object body.
fn json_field(body: &[u8], path: &str) -> Option<Vec<u8>> {
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let object: serde_json::Value = serde_json::from_slice(body).ok()?;
    let value = path.split('.').try_fold(&object, |value, name| value.get(name))?;
    match value {
        serde_json::Value::String(text) => Some(text.as_bytes().to_vec()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(value.to_string().into_bytes()),
        _ => None,
    }
}

/// `ip:port` or `[ipv6]:port` without the port; anything else (a file path) unchanged.
fn peer_host(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) => {
            host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host)
        }
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::layout::tests::sample_records;

    #[test]
    fn keys_come_from_the_body_then_the_hec_defaults_then_the_peer() {
        let records = sample_records();
        // Syslog: the sender's address without the port.
        assert_eq!(record_key(&records[0], "host").as_deref(), Some(&b"192.0.2.10"[..]));
        // HEC raw: the request's default host.
        assert_eq!(record_key(&records[1], "host").as_deref(), Some(&b"web-01"[..]));
        // HEC event without a host field or default: the IPv6 peer.
        assert_eq!(record_key(&records[2], "host").as_deref(), Some(&b"2001:db8::1"[..]));
        let mut event = records[2].clone();
        event.body = br#" {"event":"x","host":"db-7","agent":{"name":"a1","id":7}}"#.to_vec();
        assert_eq!(record_key(&event, "host").as_deref(), Some(&b"db-7"[..]));
        assert_eq!(record_key(&event, "agent.name").as_deref(), Some(&b"a1"[..]));
        assert_eq!(record_key(&event, "agent.id").as_deref(), Some(&b"7"[..]));
        assert_eq!(record_key(&event, "agent.missing"), None);
        // A tailed file: its path.
        assert_eq!(record_key(&records[3], "host").as_deref(), Some(&b"/var/ossec/logs/alerts/alerts.json"[..]));
    }
}
