//! `[bus]`: which message bus `securewatch ingest` publishes to and `securewatch worker` reads.

use securewatch_connectors::bus::kafka::{KafkaBusConfig, KafkaBusError};
use securewatch_connectors::bus::redis::{RedisBusConfig, RedisBusError};
use securewatch_connectors::settings::SettingError;
use serde::{Deserialize, Serialize};

/// Why `[bus]` cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BusConfigError {
    /// A setting of `[bus]` itself.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// A setting of `[bus.kafka]`.
    #[error(transparent)]
    Kafka(#[from] KafkaBusError),
    /// A setting of `[bus.redis]`.
    #[error(transparent)]
    Redis(#[from] RedisBusError),
}

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
    pub fn validate(&self) -> Result<(), BusConfigError> {
        SettingError::positive("publishers", self.publishers as u64)?;
        SettingError::positive("read_batch", self.read_batch as u64)?;
        match self.kind {
            BusKind::None => Ok(()),
            BusKind::Kafka => Ok(self.kafka.validate()?),
            BusKind::Redis => Ok(self.redis.validate()?),
        }
    }
}
