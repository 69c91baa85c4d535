//! Configuration of the Splunk-compatible HTTP Event Collector source (`[sources.hec]`).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

use securewatch_schemas::Tenant;
use serde::{Deserialize, Serialize};

use super::acks::HecAckConfig;
use super::HecError;
use crate::http_listener::HttpSettings;
use crate::tls::TlsConfig;

/// The HTTP defaults of `[sources.hec]`: 1024 connections.
const HTTP_DEFAULTS: HttpSettings = HttpSettings::with_max_connections(1024);

/// `[sources.hec]`: the HTTP Event Collector listener and its tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecConfig {
    /// Whether the source runs (default `true`); the caller skips a disabled source.
    pub enabled: bool,
    /// Source name in metrics labels and in `Event.source.name` (default `hec`).
    pub name: String,
    /// Listen address (default `127.0.0.1:8088`, Splunk's HEC port).
    pub listen: SocketAddr,
    /// HTTPS on `listen` (`[sources.hec.tls]`): certificate, key, client certificates; plain
    /// HTTP without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Accepted tokens (`Authorization: Splunk <token>`), each with its default metadata. At
    /// least one is required.
    pub tokens: Vec<HecTokenConfig>,
    /// Largest request body in bytes after gzip decompression (default 100 MiB); larger
    /// requests get 413. Decompression stops as soon as the cap is passed.
    pub max_body_bytes: usize,
    /// Most events (envelopes or raw lines) in one request (default 100,000); more gets 413.
    pub max_events_per_request: usize,
    /// Most connections open at once (default 1024, at most 65536; also bounded by the
    /// open-files limit at start). Past it a new connection closes the one idle longest, or is
    /// refused when every one has a request in flight.
    pub max_connections: usize,
    /// Milliseconds for a request's headers to arrive, from the connection's opening or its
    /// previous answer (default 15000); also how long an idle keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// Milliseconds for a request body to arrive (default 30000), extended by one second for
    /// every `body_min_bytes_per_sec` bytes received; a body that misses it gets 400 code 6.
    pub body_read_timeout_ms: u64,
    /// Body bytes that earn one more second (default 16384): a client sending at least this
    /// fast is never cut off.
    pub body_min_bytes_per_sec: u64,
    /// `[sources.hec.acks]`: bounds of indexer acknowledgement, for the tokens with `ack = true`.
    pub acks: HecAckConfig,
}

impl Default for HecConfig {
    fn default() -> Self {
        HecConfig {
            enabled: true,
            name: "hec".to_string(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            tls: None,
            tokens: Vec::new(),
            max_body_bytes: 100 * 1024 * 1024,
            max_events_per_request: 100_000,
            max_connections: HTTP_DEFAULTS.max_connections,
            header_read_timeout_ms: HTTP_DEFAULTS.header_read_timeout_ms,
            body_read_timeout_ms: HTTP_DEFAULTS.body_read_timeout_ms,
            body_min_bytes_per_sec: HTTP_DEFAULTS.body_min_bytes_per_sec,
            acks: HecAckConfig::default(),
        }
    }
}

/// `[[sources.hec.tokens]]`: one accepted token and the metadata it applies where a request
/// does not set its own. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecTokenConfig {
    /// Name used in logs, metrics and event ids, never the secret (default `default`).
    pub name: String,
    /// The secret clients send as `Authorization: Splunk <token>`; required, non-empty.
    pub token: String,
    /// Default `host` for events that name none (else the client's IP address).
    pub host: Option<String>,
    /// Default `source`.
    pub source: Option<String>,
    /// Default `sourcetype` (also the event category).
    pub sourcetype: Option<String>,
    /// Default `index`.
    pub index: Option<String>,
    /// The tenant of every event sent with this token (default `default`; 1–64 characters of
    /// `a-z 0-9 - _`, starting with a letter or digit).
    pub tenant: Tenant,
    /// Indexer acknowledgement (default `false`): requests must name a channel, answers carry
    /// an `ackId`, come once the batch is journaled, and `/services/collector/ack` tells when
    /// it is durable.
    pub ack: bool,
}

impl Default for HecTokenConfig {
    fn default() -> Self {
        HecTokenConfig {
            name: "default".to_string(),
            token: String::new(),
            host: None,
            source: None,
            sourcetype: None,
            index: None,
            tenant: Tenant::default(),
            ack: false,
        }
    }
}

impl fmt::Debug for HecTokenConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HecTokenConfig")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("host", &self.host)
            .field("source", &self.source)
            .field("sourcetype", &self.sourcetype)
            .field("index", &self.index)
            .field("tenant", &self.tenant)
            .field("ack", &self.ack)
            .finish()
    }
}

impl HecConfig {
    /// Checks what serde cannot: at least one token, no empty or whitespace-holding token, no
    /// token or token name used twice, non-zero limits that fit a record index (`u32`).
    pub fn validate(&self) -> Result<(), HecError> {
        let invalid = |message: String| Err(HecError::InvalidConfig(message));
        if self.tokens.is_empty() {
            return invalid("at least one token is required ([[sources.hec.tokens]])".into());
        }
        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        for token in &self.tokens {
            if token.token.is_empty() || token.token.contains(char::is_whitespace) {
                return invalid(format!(
                    "token `{}` must be non-empty, without spaces",
                    token.name
                ));
            }
            if !names.insert(token.name.as_str()) {
                return invalid(format!("token name `{}` is used twice", token.name));
            }
            if !secrets.insert(token.token.as_str()) {
                return invalid(format!("token `{}` repeats another token's secret", token.name));
            }
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes must be above 0".into());
        }
        if self.max_events_per_request == 0 || u32::try_from(self.max_events_per_request).is_err() {
            return invalid(format!("max_events_per_request must be in 1..={}", u32::MAX));
        }
        self.acks.validate().map_err(|error| HecError::InvalidConfig(error.to_string()))?;
        if let Some(tls) = &self.tls {
            tls.validate().map_err(|error| HecError::InvalidConfig(error.to_string()))?;
        }
        self.http_settings().validate().map_err(|error| HecError::InvalidConfig(error.to_string()))
    }

    /// The listener's HTTP limits as configured.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            max_connections: self.max_connections,
            header_read_timeout_ms: self.header_read_timeout_ms,
            body_read_timeout_ms: self.body_read_timeout_ms,
            body_min_bytes_per_sec: self.body_min_bytes_per_sec,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str) -> HecTokenConfig {
        HecTokenConfig { name: name.into(), token: secret.into(), ..HecTokenConfig::default() }
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let config: HecConfig = serde_json::from_str(r#"{"tokens":[{"token":"s3cret"}]}"#).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8088".parse().unwrap());
        assert_eq!(config.max_body_bytes, 104_857_600);
        assert_eq!(config.max_events_per_request, 100_000);
        assert_eq!(config.tokens[0].name, "default");
        config.validate().unwrap();
        assert!(serde_json::from_str::<HecConfig>(r#"{"listen_addr":"0.0.0.0:1"}"#).is_err());
        assert!(serde_json::from_str::<HecTokenConfig>(r#"{"token":"a","tenants":"x"}"#).is_err());
        assert!(config.tokens[0].tenant.is_default());
        assert!(!config.tokens[0].ack, "acks are off unless a token turns them on");
        let acme: HecTokenConfig = serde_json::from_str(r#"{"token":"a","tenant":"acme"}"#).unwrap();
        assert_eq!(acme.tenant.as_str(), "acme");
        let refused = serde_json::from_str::<HecTokenConfig>(r#"{"token":"a","tenant":"Acme Inc"}"#).unwrap_err();
        assert!(refused.to_string().contains("tenant name"), "{refused}");
    }

    #[test]
    fn validation_refuses_unusable_tokens_and_limits() {
        let with = |tokens: Vec<HecTokenConfig>| HecConfig { tokens, ..HecConfig::default() };
        assert!(with(vec![]).validate().is_err());
        assert!(with(vec![token("a", "")]).validate().is_err());
        assert!(with(vec![token("a", "has space")]).validate().is_err());
        assert!(with(vec![token("a", "x"), token("a", "y")]).validate().is_err());
        assert!(with(vec![token("a", "x"), token("b", "x")]).validate().is_err());
        with(vec![token("a", "x"), token("b", "y")]).validate().unwrap();
        let zero = HecConfig { max_body_bytes: 0, ..with(vec![token("a", "x")]) };
        assert!(zero.validate().is_err());
        let zero = HecConfig { max_events_per_request: 0, ..with(vec![token("a", "x")]) };
        assert!(zero.validate().is_err());
        let zero = HecConfig { header_read_timeout_ms: 0, ..with(vec![token("a", "x")]) };
        assert!(zero.validate().unwrap_err().to_string().contains("header_read_timeout_ms"));
        let many = HecConfig { max_connections: 100_000, ..with(vec![token("a", "x")]) };
        assert!(many.validate().unwrap_err().to_string().contains("max_connections (100000) must be at most 65536"));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let text = format!("{:?}", token("ops", "very-secret-value"));
        assert!(text.contains("ops"));
        assert!(!text.contains("very-secret-value"));
    }
}
