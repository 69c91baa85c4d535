//! Configuration of the Redis Streams bus (`[bus.redis]`), shared by the producer (ingest) and
//! the consumer (worker).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RedisBusError;

/// `[bus.redis]`: where records go and how workers read them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisBusConfig {
    /// Server URL, `redis://[user:password@]host:port[/db]` (default `redis://127.0.0.1:6379`);
    /// `rediss://` for TLS.
    pub url: String,
    /// `rediss://`: PEM file of the CA(s) the server certificate must chain to (default: the
    /// system's trusted roots).
    pub ca_file: Option<PathBuf>,
    /// `rediss://`: PEM client certificate, for servers with `tls-auth-clients yes`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Environment variable holding the password (instead of writing it in `url`).
    pub password_env: Option<String>,
    /// File holding the password, trailing line break ignored.
    pub password_file: Option<PathBuf>,
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
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            password_env: None,
            password_file: None,
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
        let tls_files = self.ca_file.is_some() || self.client_cert_file.is_some();
        if tls_files && !self.url.starts_with("rediss://") {
            return invalid("ca_file and client_cert_file need a rediss:// url (TLS)");
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return invalid("set both client_cert_file and client_key_file, or neither");
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return invalid("set password_env or password_file, not both");
        }
        ::redis::Client::open(self.url.as_str())
            .map(drop)
            .map_err(|error| RedisBusError::Config(format!("url: {error}")))
    }

    /// A client for `url` with the password and TLS files applied.
    pub(crate) fn client(&self) -> Result<::redis::Client, RedisBusError> {
        use ::redis::IntoConnectionInfo;
        let mut info = self.url.as_str().into_connection_info()?;
        let password = crate::secret::resolve("password_env", self.password_env.as_deref(), "password_file", self.password_file.as_deref())
            .map_err(|error| RedisBusError::Config(error.to_string()))?;
        if let Some(password) = password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        if self.ca_file.is_none() && self.client_cert_file.is_none() {
            return Ok(::redis::Client::open(info)?);
        }
        let read = |key: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|error| RedisBusError::Config(format!("{key}: cannot read {}: {error}", path.display())))
        };
        let client_tls = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some(::redis::ClientTlsConfig {
                client_cert: read("client_cert_file", cert)?,
                client_key: read("client_key_file", key)?,
            }),
            _ => None,
        };
        let root_cert = self.ca_file.as_ref().map(|path| read("ca_file", path)).transpose()?;
        Ok(::redis::Client::build_with_tls(info, ::redis::TlsCertificates { client_tls, root_cert })?)
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
        let plain_with_ca = RedisBusConfig { ca_file: Some("ca.pem".into()), ..RedisBusConfig::default() };
        assert!(plain_with_ca.validate().unwrap_err().to_string().contains("need a rediss:// url"));
        let half = RedisBusConfig { url: "rediss://r:6380".into(), client_cert_file: Some("c.pem".into()), ..RedisBusConfig::default() };
        assert!(half.validate().unwrap_err().to_string().contains("client_key_file"));
    }
}
