//! Configuration of the Kafka bus (`[bus.kafka]`), shared by the producer (ingest) and the
//! consumer (worker), and the librdkafka properties it turns into.

use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl` (librdkafka's
    /// `security.protocol`). With TLS the brokers' names are checked against their certificates.
    pub security_protocol: SecurityProtocol,
    /// PEM file of the CA(s) the brokers' certificates chain to (`ssl.ca.location`; default:
    /// the system's trusted roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for brokers that authenticate clients by certificate.
    pub client_cert_file: Option<PathBuf>,
    /// PEM key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// SASL mechanism with `sasl_*` protocols: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// Environment variable holding the SASL password.
    pub sasl_password_env: Option<String>,
    /// File holding the SASL password, trailing line break ignored.
    pub sasl_password_file: Option<PathBuf>,
    /// Further librdkafka properties, applied before the settings above. The delivery
    /// guarantees cannot be overridden here, nor a password written (`sasl.password`).
    pub properties: BTreeMap<String, String>,
}

/// `security_protocol`: librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// Plain TCP.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP (the password crosses in clear with `PLAIN`).
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// `sasl_mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SaslMechanism {
    /// User name and password as they are (use it over TLS only).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
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
            security_protocol: SecurityProtocol::Plaintext,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password_env: None,
            sasl_password_file: None,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the bus sets itself: they carry its delivery guarantees or a secret.
const RESERVED: [&str; 9] = [
    "sasl.password",
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
            return invalid(format!("properties: {name:?} is set by the bus itself (passwords: sasl_password_env or sasl_password_file)"));
        }
        let protocol = self.security_protocol;
        if !protocol.tls() && (self.ca_file.is_some() || self.client_cert_file.is_some()) {
            return invalid("ca_file and client_cert_file need security_protocol = \"ssl\" or \"sasl_ssl\"".to_string());
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return invalid("set both client_cert_file and client_key_file, or neither".to_string());
        }
        let sasl_set = self.sasl_mechanism.is_some() || self.sasl_username.is_some();
        if protocol.sasl() != sasl_set || (protocol.sasl() && (self.sasl_mechanism.is_none() || self.sasl_username.is_none())) {
            return invalid("sasl_plaintext and sasl_ssl need sasl_mechanism and sasl_username; other protocols take neither".to_string());
        }
        if protocol.sasl() && self.sasl_password_env.is_none() && self.sasl_password_file.is_none() {
            return invalid("SASL needs sasl_password_env or sasl_password_file".to_string());
        }
        Ok(())
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The properties every client shares: brokers, id, security.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, KafkaBusError> {
        let mut client = ClientConfig::new();
        for (name, value) in &self.properties {
            client.set(name, value);
        }
        client.set("bootstrap.servers", &self.brokers).set("client.id", &self.client_id);
        if self.security_protocol != SecurityProtocol::Plaintext || !self.properties.contains_key("security.protocol") {
            client.set("security.protocol", self.security_protocol.as_str());
        }
        let path = |path: &PathBuf| path.display().to_string();
        if let Some(ca) = &self.ca_file {
            client.set("ssl.ca.location", path(ca));
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) {
            client.set("ssl.certificate.location", path(cert)).set("ssl.key.location", path(key));
        }
        if let (Some(mechanism), Some(user)) = (self.sasl_mechanism, &self.sasl_username) {
            let password = crate::secret::resolve(
                "sasl_password_env",
                self.sasl_password_env.as_deref(),
                "sasl_password_file",
                self.sasl_password_file.as_deref(),
            )
            .map_err(|error| KafkaBusError::Config(error.to_string()))?
            .unwrap_or_default();
            client.set("sasl.mechanism", mechanism.as_str()).set("sasl.username", user).set("sasl.password", password);
        }
        Ok(client)
    }

    /// The idempotent producer's properties.
    pub(crate) fn producer_config(&self) -> Result<ClientConfig, KafkaBusError> {
        self.validate()?;
        if self.format == ValueFormat::Json {
            return Err(KafkaBusError::Config("format json is for consumers only".to_string()));
        }
        let mut client = self.client_config()?;
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
        let mut client = self.client_config()?;
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
