//! Configuration of the Kafka bus (`[bus.kafka]`), shared by the producer (ingest) and the
//! consumer (worker), and the librdkafka properties it turns into.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use super::KafkaBusError;

/// Compression of produced batches (`compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Batches are sent uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How a message value encodes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    /// The raw-record envelope ([`super::envelope`]): every record exactly, compact.
    Raw,
    /// The raw record as Avro (`schemas/avro/raw_record.avsc`) in the Confluent wire format:
    /// magic byte 0, the 4-byte big-endian `schema_id`, the Avro binary datum.
    Avro,
    /// Read only: any topic of JSON events. Each value must be a JSON object; it becomes the
    /// body of a record of kind `kafka` (see [`super::KafkaConsumer`]).
    Json,
}

/// `[bus.kafka]`: where records go, how they are batched, and how workers read them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaBusConfig {
    /// Bootstrap brokers, `host:port[,host:port…]` (default `127.0.0.1:9092`).
    pub brokers: String,
    /// Topic of the raw records (default `securewatch.raw`).
    pub topic: String,
    /// `client.id` sent to the brokers (default `securewatch`).
    pub client_id: String,
    /// Consumer group whose offsets workers commit for monitoring (default `securewatch`).
    /// Partitions are assigned statically, so the group does not balance anything.
    pub group: String,
    /// Compression of produced batches: `lz4` (default), `zstd`, `snappy`, `gzip` or `none`.
    pub compression: Compression,
    /// How long the producer waits to fill a batch, in milliseconds (`linger.ms`, default 20).
    pub linger_ms: u64,
    /// Most messages per produced batch (`batch.num.messages`, default 10,000).
    pub batch_size: u32,
    /// Message key, which picks the partition: the record's `host` (default) or another
    /// top-level field of JSON bodies (see [`super::KafkaProducer`]).
    pub key_field: String,
    /// Message values: `raw` (default), `avro`, or for consumers also `json`.
    pub format: ValueFormat,
    /// Schema id written into (and expected in) Avro values. No schema registry is contacted:
    /// register `schemas/avro/raw_record.avsc` yourself and put its id here (default 1).
    pub schema_id: u32,
    /// How long a produced message may wait for the broker's confirmation, in milliseconds
    /// (`message.timeout.ms`, default 30,000): with the brokers down, a batch fails after this
    /// and HEC answers 503 code 9.
    pub message_timeout_ms: u64,
    /// Timeout of the consumer's blocking calls (commit, watermarks, committed offsets), in
    /// milliseconds (default 10,000).
    pub request_timeout_ms: u64,
    /// Longest time a worker's fetch waits at the broker for new messages, in milliseconds
    /// (`fetch.wait.max.ms`, default 100; librdkafka's own default, 500, showed up whole in the
    /// end-to-end latency against tansu).
    pub fetch_wait_ms: u32,
    /// A consumer starting at offset `n` fetches from `n − start_rewind` and drops what comes
    /// before `n` (default 10,000, the default `batch_size`; 0 fetches from `n`). Kafka itself
    /// returns the whole stored batch holding `n`, but tansu 0.6 answers a fetch from the
    /// middle of a batch with the *next* batch, so starting there would skip the rest of that
    /// batch. Keep it at least the producers' `batch_size`.
    pub start_rewind: u32,
    /// Partitions of the topic when `securewatch ingest` / `worker` create it because it does
    /// not exist yet (default 6; 0: never create it). An existing topic keeps its partitions.
    pub create_partitions: i32,
    /// Further librdkafka properties (`"security.protocol" = "ssl"` …), applied before the
    /// settings above. The delivery guarantees cannot be overridden here.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaBusConfig {
    fn default() -> Self {
        KafkaBusConfig {
            brokers: "127.0.0.1:9092".to_string(),
            topic: "securewatch.raw".to_string(),
            client_id: "securewatch".to_string(),
            group: "securewatch".to_string(),
            compression: Compression::Lz4,
            linger_ms: 20,
            batch_size: 10_000,
            key_field: "host".to_string(),
            format: ValueFormat::Raw,
            schema_id: 1,
            message_timeout_ms: 30_000,
            request_timeout_ms: 10_000,
            fetch_wait_ms: 100,
            start_rewind: 10_000,
            create_partitions: 6,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the bus sets itself: they carry its delivery guarantees.
const RESERVED: [&str; 8] = [
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "transactional.id",
    "bootstrap.servers",
    "group.id",
];

impl KafkaBusConfig {
    /// Checks the values a typo would make useless.
    pub fn validate(&self) -> Result<(), KafkaBusError> {
        let invalid = |reason: String| Err(KafkaBusError::Config(reason));
        if self.brokers.split(',').any(|broker| broker.trim().is_empty()) {
            return invalid(format!("brokers {:?}: expected host:port[,host:port…]", self.brokers));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if self.topic.is_empty() || self.topic.len() > 249 || !self.topic.chars().all(legal) {
            return invalid(format!("topic {:?}: 1 to 249 of [a-zA-Z0-9._-]", self.topic));
        }
        if self.client_id.is_empty() || self.group.is_empty() {
            return invalid("client_id and group must not be empty".to_string());
        }
        if self.linger_ms > 900_000 {
            return invalid(format!("linger_ms {} is above librdkafka's 900,000", self.linger_ms));
        }
        if !(1..=1_000_000).contains(&self.batch_size) {
            return invalid(format!("batch_size {} is not within 1..=1,000,000", self.batch_size));
        }
        if self.fetch_wait_ms > 300_000 {
            return invalid(format!("fetch_wait_ms {} is above librdkafka's 300,000", self.fetch_wait_ms));
        }
        if self.message_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return invalid("message_timeout_ms and request_timeout_ms must be above 0".to_string());
        }
        if self.key_field.is_empty() {
            return invalid("key_field must not be empty".to_string());
        }
        if let Some(name) = self.properties.keys().find(|name| RESERVED.contains(&name.as_str())) {
            return invalid(format!("properties: {name:?} is set by the bus itself"));
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        for (name, value) in &self.properties {
            client.set(name, value);
        }
        client.set("bootstrap.servers", &self.brokers).set("client.id", &self.client_id);
        client
    }

    /// The idempotent producer's properties.
    pub(crate) fn producer_config(&self) -> Result<ClientConfig, KafkaBusError> {
        self.validate()?;
        if self.format == ValueFormat::Json {
            return Err(KafkaBusError::Config("format json is for consumers only".to_string()));
        }
        let mut client = self.client_config();
        client
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.codec", self.compression.as_str())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.num.messages", self.batch_size.to_string())
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        Ok(client)
    }

    /// The statically assigned consumer's properties: no auto-commit, nothing stored by itself.
    pub(crate) fn consumer_config(&self) -> Result<ClientConfig, KafkaBusError> {
        self.validate()?;
        let mut client = self.client_config();
        client
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", self.fetch_wait_ms.to_string());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_partial_config_and_keeps_defaults() {
        let config: KafkaBusConfig = toml::from_str(
            "brokers = \"10.0.0.5:9092,10.0.0.6:9092\"\ntopic = \"raw\"\ncompression = \"zstd\"\nformat = \"avro\"\n\
             schema_id = 42\n[properties]\n\"socket.keepalive.enable\" = \"true\"\n",
        )
        .unwrap();
        assert_eq!(config.brokers, "10.0.0.5:9092,10.0.0.6:9092");
        assert_eq!(config.compression, Compression::Zstd);
        assert_eq!(config.format, ValueFormat::Avro);
        assert_eq!(config.schema_id, 42);
        assert_eq!(config.key_field, "host");
        assert_eq!(config.linger_ms, 20);
        assert_eq!(config.properties["socket.keepalive.enable"], "true");
        config.validate().unwrap();
        let producer = config.producer_config().unwrap();
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("compression.codec"), Some("zstd"));
        assert_eq!(producer.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(config.consumer_config().unwrap().get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<KafkaBusConfig>("broker = \"x:1\"").is_err());
        assert!(toml::from_str::<KafkaBusConfig>("compression = \"brotli\"").is_err());
        let cases = [
            KafkaBusConfig { brokers: "a:1,,b:2".into(), ..KafkaBusConfig::default() },
            KafkaBusConfig { topic: "raw events".into(), ..KafkaBusConfig::default() },
            KafkaBusConfig { batch_size: 0, ..KafkaBusConfig::default() },
            KafkaBusConfig { linger_ms: 1_000_000, ..KafkaBusConfig::default() },
            KafkaBusConfig { message_timeout_ms: 0, ..KafkaBusConfig::default() },
            KafkaBusConfig {
                properties: [("enable.auto.commit".to_string(), "true".to_string())].into(),
                ..KafkaBusConfig::default()
            },
        ];
        for config in cases {
            assert!(matches!(config.validate(), Err(KafkaBusError::Config(_))), "{config:?} passed");
        }
        let json = KafkaBusConfig { format: ValueFormat::Json, ..KafkaBusConfig::default() };
        assert!(json.consumer_config().is_ok());
        assert!(json.producer_config().is_err());
    }
}
