//! `[bus]`: which message bus `securewatch ingest` publishes to and `securewatch worker` reads.

use securewatch_connectors::bus::kafka::KafkaBusConfig;
use securewatch_connectors::bus::redis::RedisBusConfig;
use serde::{Deserialize, Serialize};

/// The bus kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// No bus (`securewatch run`): sources feed the dataflow in-process.
    #[default]
    None,
    /// Apache Kafka (or any Kafka-API broker), `[bus.kafka]`.
    Kafka,
    /// Redis Streams, `[bus.redis]`.
    Redis,
}

/// `[bus]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `kafka` or `redis`; `ingest` and `worker` need one.
    pub kind: BusKind,
    /// Batches `ingest` publishes at the same time (default 64): each waits for the bus to
    /// confirm it (Kafka: about `linger_ms` plus a round trip), so this bounds the ingest rate.
    pub publishers: usize,
    /// Records per batch a worker reads from the bus (default 5,000).
    pub read_batch: usize,
    /// Kafka settings.
    pub kafka: KafkaBusConfig,
    /// Redis Streams settings.
    pub redis: RedisBusConfig,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            kind: BusKind::None,
            publishers: 64,
            read_batch: 5_000,
            kafka: KafkaBusConfig::default(),
            redis: RedisBusConfig::default(),
        }
    }
}

impl BusConfig {
    /// Checks the settings of the chosen bus.
    pub fn validate(&self) -> Result<(), String> {
        if self.publishers == 0 {
            return Err("publishers must be at least 1".into());
        }
        if self.read_batch == 0 {
            return Err("read_batch must be at least 1".into());
        }
        match self.kind {
            BusKind::None => Ok(()),
            BusKind::Kafka => self.kafka.validate().map_err(|error| error.to_string()),
            BusKind::Redis => self.redis.validate().map_err(|error| error.to_string()),
        }
    }
}
