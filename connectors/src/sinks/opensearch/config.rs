//! Configuration of the OpenSearch sink (`[sinks.opensearch]`) and its validation.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OpenSearchError;

/// `[sinks.opensearch]`: where and how events are indexed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenSearchConfig {
    /// Whether the sink runs (default `false`); the caller skips a disabled sink.
    pub enabled: bool,
    /// Base URLs of the cluster's nodes (`https://host:9200`). Requests go to the first; a
    /// connection failure moves on to the next. At least one is required.
    pub urls: Vec<String>,
    /// `daily` (one index per UTC day of the event time, `<index_prefix>-YYYY.MM.DD`) or
    /// `data_stream` (append to the data stream `data_stream`).
    pub index_mode: IndexMode,
    /// Prefix of daily index names, also the name of the index template and the ISM policy
    /// (default `securewatch-events`).
    pub index_prefix: String,
    /// Data stream name in `data_stream` mode (default `securewatch-events`).
    pub data_stream: String,
    /// How the `fields` map is mapped: `flat_object` (default, one field, no mapping growth)
    /// or `object` (every key its own keyword field).
    pub fields_mapping: FieldsMapping,
    /// Authentication.
    pub auth: AuthConfig,
    /// TLS for `https://` URLs.
    pub tls: TlsConfig,
    /// Most bytes of NDJSON in one `_bulk` request (default 5 MiB). A single document larger
    /// than this is sent alone.
    pub max_bytes: usize,
    /// Most documents in one `_bulk` request (default 5000).
    pub max_docs: usize,
    /// Retries of failed requests and of documents answered 429 / 5xx.
    pub retry: RetryConfig,
    /// Timeout of one HTTP request in seconds (default 30).
    pub request_timeout_secs: u64,
    /// Indices (or data stream backing indices) are deleted this many days after creation by
    /// an ISM policy installed at start-up; 0 installs no policy (default 30).
    pub retention_days: u32,
    /// Primary shards of new indices (default 1).
    pub shards: u32,
    /// Replicas of new indices (default 1).
    pub replicas: u32,
    /// One index (or data stream) per tenant (default `false`): `<index_prefix>-<tenant>-YYYY.MM.DD`
    /// or `<data_stream>-<tenant>`, so OpenSearch's own index permissions can keep tenants
    /// apart. Either way every document has a `tenant` keyword field.
    pub index_per_tenant: bool,
}

impl Default for OpenSearchConfig {
    fn default() -> Self {
        OpenSearchConfig {
            enabled: false,
            urls: vec!["http://127.0.0.1:9200".to_string()],
            index_mode: IndexMode::Daily,
            index_prefix: "securewatch-events".to_string(),
            data_stream: "securewatch-events".to_string(),
            fields_mapping: FieldsMapping::FlatObject,
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            max_bytes: 5 * 1024 * 1024,
            max_docs: 5000,
            retry: RetryConfig::default(),
            request_timeout_secs: 30,
            retention_days: 30,
            shards: 1,
            replicas: 1,
            index_per_tenant: false,
        }
    }
}

/// Where documents go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexMode {
    /// `<index_prefix>-YYYY.MM.DD` by the event's time (UTC).
    Daily,
    /// One data stream; OpenSearch rolls its backing indices over.
    DataStream,
}

/// Mapping of the `fields` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldsMapping {
    /// OpenSearch's `flat_object` (2.7+): the whole map is one field, values are searched as
    /// keywords by dotted path; the index mapping never grows with new source fields.
    FlatObject,
    /// A plain object whose every leaf is mapped as `keyword` by a dynamic template; each new
    /// key adds a field to the mapping (bounded by `index.mapping.total_fields.limit`).
    Object,
}

/// `[sinks.opensearch.auth]`: none, basic (`user` + password) or bearer (token). Secrets are
/// given inline or, better, by the name of an environment variable holding them.
#[derive(Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User name for basic authentication.
    pub user: Option<String>,
    /// Password for basic authentication.
    pub password: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        formatter
            .debug_struct("AuthConfig")
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("password_env", &self.password_env)
            .field("token", &redacted(&self.token))
            .field("token_env", &self.token_env)
            .finish()
    }
}

/// Credentials resolved from [`AuthConfig`] (secrets read from the environment).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    None,
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer …`.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => formatter.write_str("None"),
            Credentials::Basic { user, .. } => write!(formatter, "Basic({user}, <redacted>)"),
            Credentials::Bearer(_) => formatter.write_str("Bearer(<redacted>)"),
        }
    }
}

impl AuthConfig {
    /// The credentials, reading `*_env` variables through `env` (`std::env::var` in
    /// production, a map in tests).
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<Credentials, OpenSearchError> {
        self.check()?;
        let secret = |inline: &Option<String>, variable: &Option<String>| -> Result<String, OpenSearchError> {
            match (inline, variable) {
                (Some(value), _) => Ok(value.clone()),
                (None, Some(name)) => match env(name) {
                    Some(value) if !value.is_empty() => Ok(value),
                    _ => Err(OpenSearchError::MissingSecret { variable: name.clone() }),
                },
                (None, None) => unreachable!("checked: a secret is configured"),
            }
        };
        if let Some(user) = &self.user {
            let password = secret(&self.password, &self.password_env)?;
            return Ok(Credentials::Basic { user: user.clone(), password });
        }
        if self.token.is_some() || self.token_env.is_some() {
            return Ok(Credentials::Bearer(secret(&self.token, &self.token_env)?));
        }
        Ok(Credentials::None)
    }

    fn check(&self) -> Result<(), OpenSearchError> {
        let invalid = |message: &str| Err(OpenSearchError::InvalidConfig(format!("auth: {message}")));
        let password = self.password.is_some() || self.password_env.is_some();
        let token = self.token.is_some() || self.token_env.is_some();
        if self.password.is_some() && self.password_env.is_some() {
            return invalid("set `password` or `password_env`, not both");
        }
        if self.token.is_some() && self.token_env.is_some() {
            return invalid("set `token` or `token_env`, not both");
        }
        if token && (self.user.is_some() || password) {
            return invalid("basic (`user`, `password`) and bearer (`token`) cannot be combined");
        }
        if self.user.is_some() != password {
            return invalid("basic authentication needs both `user` and `password` (or `password_env`)");
        }
        if self.user.as_deref().is_some_and(|user| user.is_empty() || user.contains(':')) {
            return invalid("`user` must be non-empty and hold no `:`");
        }
        Ok(())
    }
}

/// `[sinks.opensearch.tls]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA (or CAs) that signed the cluster's certificate, trusted in addition
    /// to the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Accepts any certificate and host name. For tests against throw-away clusters only:
    /// it removes all protection against a man in the middle.
    pub accept_invalid_certs: bool,
}

/// `[sinks.opensearch.retry]`: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per request or document, the first included (default 8). When documents are
    /// still answered 429 / 5xx after the last one, the write fails.
    pub max_attempts: u32,
    /// Upper bound of the first backoff in milliseconds (default 100).
    pub initial_backoff_ms: u64,
    /// Cap of the backoff in milliseconds (default 10,000).
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig { max_attempts: 8, initial_backoff_ms: 100, max_backoff_ms: 10_000 }
    }
}

impl RetryConfig {
    /// The ceiling of the backoff before attempt `retry + 1` (`retry` ≥ 1):
    /// `min(max, initial · 2^(retry-1))`. The actual wait is uniform in `0..=ceiling` (full jitter).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u64.checked_shl(retry.saturating_sub(1).min(63)).unwrap_or(u64::MAX);
        Duration::from_millis(self.initial_backoff_ms.saturating_mul(factor).min(self.max_backoff_ms))
    }

    /// A random wait before attempt `retry + 1` (full jitter).
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry).as_millis() as u64;
        Duration::from_millis(rand::random_range(0..=ceiling))
    }
}

impl OpenSearchConfig {
    /// Checks what serde cannot: URLs, index and stream names, limits, auth combinations.
    pub fn validate(&self) -> Result<(), OpenSearchError> {
        let invalid = |message: String| Err(OpenSearchError::InvalidConfig(message));
        if self.urls.is_empty() {
            return invalid("at least one URL is required (`urls`)".into());
        }
        for url in &self.urls {
            match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
                Ok(_) => return invalid(format!("url `{url}` must be http:// or https:// with a host")),
                Err(error) => return invalid(format!("url `{url}` is not a URL: {error}")),
            }
        }
        match self.index_mode {
            IndexMode::Daily => check_index_name("index_prefix", &self.index_prefix)?,
            IndexMode::DataStream => check_index_name("data_stream", &self.data_stream)?,
        }
        if self.max_bytes < 1024 {
            return invalid(format!("max_bytes must be at least 1024, got {}", self.max_bytes));
        }
        if self.max_docs == 0 {
            return invalid("max_docs must be above 0".into());
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.max_attempts must be at least 1".into());
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return invalid("retry.max_backoff_ms must not be below retry.initial_backoff_ms".into());
        }
        if self.request_timeout_secs == 0 {
            return invalid("request_timeout_secs must be above 0".into());
        }
        if self.shards == 0 {
            return invalid("shards must be above 0".into());
        }
        self.auth.check()
    }

    /// The name of the index template and the ISM policy: the prefix or the stream name.
    pub fn base_name(&self) -> &str {
        match self.index_mode {
            IndexMode::Daily => &self.index_prefix,
            IndexMode::DataStream => &self.data_stream,
        }
    }
}

/// OpenSearch index naming rules: lower case, none of `\ / * ? " < > | , #`, spaces or `:`,
/// not starting with `_ - +`, not `.` or `..`, at most 255 bytes. Daily names add 11 bytes.
fn check_index_name(key: &str, name: &str) -> Result<(), OpenSearchError> {
    let invalid = |why: &str| Err(OpenSearchError::InvalidConfig(format!("{key} `{name}` {why}")));
    if name.is_empty() || name == "." || name == ".." {
        return invalid("is not a valid index name");
    }
    if name.len() > 200 {
        return invalid("is longer than 200 bytes");
    }
    if name.starts_with(['_', '-', '+']) {
        return invalid("must not start with `_`, `-` or `+`");
    }
    if let Some(bad) = name.chars().find(|c| c.is_uppercase() || "\\/*?\"<>|,#: ".contains(*c)) {
        return invalid(&format!("must be lower case without `{bad}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OpenSearchConfig {
        toml::from_str(text).unwrap()
    }

    fn error(config: &OpenSearchConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn example_parses_and_validates() {
        let config = parse(
            r#"
            enabled = true
            urls = ["https://os-1:9200", "https://os-2:9200"]
            index_mode = "data_stream"
            data_stream = "logs-siem"
            fields_mapping = "object"
            max_bytes = 1048576
            max_docs = 100
            retention_days = 7
            [auth]
            user = "securewatch"
            password_env = "OS_PASSWORD"
            [tls]
            ca_file = "/etc/securewatch/ca.pem"
            [retry]
            max_attempts = 3
            initial_backoff_ms = 10
            max_backoff_ms = 50
            "#,
        );
        config.validate().unwrap();
        assert_eq!(config.index_mode, IndexMode::DataStream);
        assert_eq!(config.base_name(), "logs-siem");
        assert_eq!(config.fields_mapping, FieldsMapping::Object);
        assert_eq!(config.tls.ca_file, Some(PathBuf::from("/etc/securewatch/ca.pem")));
        assert_eq!(config.retry.max_attempts, 3);
        let env = |name: &str| (name == "OS_PASSWORD").then(|| "s3cret".to_string());
        assert_eq!(
            config.auth.resolve(env).unwrap(),
            Credentials::Basic { user: "securewatch".into(), password: "s3cret".into() }
        );
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let config = parse("");
        config.validate().unwrap();
        assert!(!config.enabled);
        assert_eq!(config.max_bytes, 5 * 1024 * 1024);
        assert_eq!(config.max_docs, 5000);
        assert_eq!(config.index_mode, IndexMode::Daily);
        assert_eq!(config.auth.resolve(|_| None).unwrap(), Credentials::None);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let error = toml::from_str::<OpenSearchConfig>("url = \"http://x\"").unwrap_err().to_string();
        assert!(error.contains("unknown field `url`"), "{error}");
        let error = toml::from_str::<OpenSearchConfig>("[auth]\npasword = \"x\"").unwrap_err().to_string();
        assert!(error.contains("pasword"), "{error}");
    }

    #[test]
    fn bad_values_get_clear_errors() {
        let with = |edit: fn(&mut OpenSearchConfig)| {
            let mut config = OpenSearchConfig::default();
            edit(&mut config);
            error(&config)
        };
        assert!(with(|c| c.urls.clear()).contains("at least one URL"));
        assert!(with(|c| c.urls = vec!["localhost:9200".into()]).contains("http:// or https://"));
        assert!(with(|c| c.urls = vec!["not a url".into()]).contains("is not a URL"));
        assert!(with(|c| c.index_prefix = "Events".into()).contains("lower case"));
        assert!(with(|c| c.index_prefix = "_events".into()).contains("must not start"));
        assert!(with(|c| c.index_prefix = "a,b".into()).contains("without `,`"));
        let stream = with(|c| {
            c.index_mode = IndexMode::DataStream;
            c.data_stream = "logs siem".into();
        });
        assert!(stream.contains("data_stream `logs siem`"), "{stream}");
        assert!(with(|c| c.max_docs = 0).contains("max_docs"));
        assert!(with(|c| c.max_bytes = 10).contains("max_bytes"));
        assert!(with(|c| c.retry.max_attempts = 0).contains("max_attempts"));
        assert!(with(|c| c.retry.max_backoff_ms = 1).contains("max_backoff_ms"));
        assert!(with(|c| c.request_timeout_secs = 0).contains("request_timeout_secs"));
    }

    #[test]
    fn auth_combinations_are_checked() {
        let auth = |text: &str| toml::from_str::<AuthConfig>(text).unwrap();
        let check = |text: &str| auth(text).resolve(|_| None).unwrap_err().to_string();
        assert!(check("user = \"u\"").contains("needs both"));
        assert!(check("password = \"p\"").contains("needs both"));
        assert!(check("user = \"u\"\npassword = \"p\"\ntoken = \"t\"").contains("cannot be combined"));
        assert!(check("token = \"t\"\ntoken_env = \"T\"").contains("not both"));
        assert!(check("user = \"a:b\"\npassword = \"p\"").contains("`:`"));
        let missing = check("token_env = \"NOT_SET_ANYWHERE\"");
        assert!(missing.contains("NOT_SET_ANYWHERE"), "{missing}");
        assert_eq!(auth("token = \"t\"").resolve(|_| None).unwrap(), Credentials::Bearer("t".into()));
        let env = |name: &str| (name == "TOKEN").then(|| "from-env".to_string());
        assert_eq!(auth("token_env = \"TOKEN\"").resolve(env).unwrap(), Credentials::Bearer("from-env".into()));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = toml::from_str::<AuthConfig>("user = \"u\"\npassword = \"hunter2\"").unwrap();
        let credentials = config.resolve(|_| None).unwrap();
        let printed = format!("{config:?} {credentials:?}");
        assert!(!printed.contains("hunter2") && printed.contains("<redacted>"), "{printed}");
        let bearer = Credentials::Bearer("tok-123".into());
        assert!(!format!("{bearer:?}").contains("tok-123"));
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_full_jitter() {
        let retry = RetryConfig { max_attempts: 10, initial_backoff_ms: 100, max_backoff_ms: 1000 };
        let ceilings: Vec<u64> = (1..=6).map(|n| retry.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry.ceiling(200).as_millis(), 1000, "no overflow for large retry counts");
        let waits: Vec<u64> = (0..200).map(|_| retry.backoff(4).as_millis() as u64).collect();
        assert!(waits.iter().all(|&wait| wait <= 800));
        // Full jitter: the waits spread over the range instead of sitting at the ceiling.
        assert!(waits.iter().any(|&wait| wait < 400) && waits.iter().any(|&wait| wait >= 400));
    }
}
