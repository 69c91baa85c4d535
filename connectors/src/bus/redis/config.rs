//! Configuration of the Redis Streams bus (`[bus.redis]`), shared by the producer (ingest) and
//! the consumer (worker).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RedisBusError;

/// `[bus.redis]`: where records go and how workers read them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisBusConfig {
    /// Server URL, `redis://[user:password@]host:port[/db]` (default `redis://127.0.0.1:6379`).
    pub url: String,
    /// Stream key (default `securewatch:raw`).
    pub stream: String,
    /// Approximate cap on the stream's length: every `XADD` carries `MAXLEN ~ max_len`, so Redis
    /// trims whole macro nodes and the length may exceed the cap by up to one node
    /// (`stream-node-max-entries`, 100 by default). 0 disables trimming (default 1,000,000).
    /// Entries trimmed before a worker acknowledged them are lost to it: size this to cover the
    /// longest outage of the workers.
    pub max_len: u64,
    /// Consumer group of the workers (default `securewatch`).
    pub group: String,
    /// This worker's consumer name, unique in the group and stable across restarts, so that a
    /// restarted worker finds its own pending entries first (default `worker-<hostname>`).
    pub consumer: String,
    /// Most entries per `XREADGROUP` / `XAUTOCLAIM` (default 1000).
    pub batch_size: usize,
    /// How long `XREADGROUP` blocks waiting for new entries, in milliseconds (default 1000).
    pub block_ms: u64,
    /// Entries pending in another consumer for longer than this (milliseconds) are claimed
    /// with `XAUTOCLAIM`: that consumer is taken to be dead (default 60,000). Keep it well above
    /// the time from delivery to durable commit.
    pub claim_min_idle_ms: u64,
    /// How often the consumer runs `XAUTOCLAIM`, in milliseconds (default 5,000).
    pub claim_interval_ms: u64,
    /// Time allowed for one command's answer beyond any `BLOCK`, in milliseconds
    /// (default 5,000). Past it the command fails and the batch is not acknowledged.
    pub response_timeout_ms: u64,
    /// Time allowed to (re)connect, in milliseconds (default 2,000).
    pub connect_timeout_ms: u64,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        RedisBusConfig {
            url: "redis://127.0.0.1:6379".to_string(),
            stream: "securewatch:raw".to_string(),
            max_len: 1_000_000,
            group: "securewatch".to_string(),
            consumer: default_consumer_name(),
            batch_size: 1000,
            block_ms: 1000,
            claim_min_idle_ms: 60_000,
            claim_interval_ms: 5_000,
            response_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
        }
    }
}

/// `worker-<hostname>`, or `worker` when the host name is unknown.
fn default_consumer_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .map_or_else(|| "worker".to_string(), |name| format!("worker-{name}"))
}

impl RedisBusConfig {
    /// Checks the values a typo would make useless.
    pub fn validate(&self) -> Result<(), RedisBusError> {
        let invalid = |reason: &str| Err(RedisBusError::Config(reason.to_string()));
        if self.stream.is_empty() {
            return invalid("stream must not be empty");
        }
        if self.group.is_empty() || self.consumer.is_empty() {
            return invalid("group and consumer must not be empty");
        }
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1");
        }
        if self.claim_min_idle_ms == 0 {
            return invalid("claim_min_idle_ms must be above 0 (0 would steal live consumers' entries)");
        }
        ::redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|error| RedisBusError::Config(format!("url: {error}")))
    }

    pub(crate) fn block(&self) -> Duration {
        Duration::from_millis(self.block_ms)
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_partial_config_and_keeps_defaults() {
        let config: RedisBusConfig =
            toml::from_str("url = \"redis://10.0.0.5:6380/2\"\nstream = \"raw\"\nmax_len = 5000\n").unwrap();
        assert_eq!(config.url, "redis://10.0.0.5:6380/2");
        assert_eq!(config.stream, "raw");
        assert_eq!(config.max_len, 5000);
        assert_eq!(config.group, "securewatch");
        assert_eq!(config.batch_size, 1000);
        config.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<RedisBusConfig>("maxlen = 5").is_err());
        let bad_url = RedisBusConfig { url: "http://nowhere".into(), ..RedisBusConfig::default() };
        assert!(matches!(bad_url.validate(), Err(RedisBusError::Config(reason)) if reason.starts_with("url")));
        let no_batch = RedisBusConfig { batch_size: 0, ..RedisBusConfig::default() };
        assert!(no_batch.validate().is_err());
        let steal = RedisBusConfig { claim_min_idle_ms: 0, ..RedisBusConfig::default() };
        assert!(steal.validate().is_err());
    }
}
