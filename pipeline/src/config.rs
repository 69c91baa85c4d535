//! The TOML configuration: one file, unknown keys rejected with file and line, env overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use securewatch_connectors::enrichment::EnrichmentConfig;
use securewatch_connectors::http_listener::HttpSettings;
use securewatch_connectors::settings::SettingError;
use securewatch_connectors::tls::TlsConfig;

use crate::access::config::{AuthConfig, AuthMode};
use crate::rules::DetectionConfig;
use securewatch_connectors::sinks::opensearch::OpenSearchConfig;
use securewatch_connectors::sinks::postgres::PostgresConfig;
use securewatch_connectors::sinks::sqlite::SqliteConfig;
use securewatch_connectors::sources::hec::{HecConfig, HecTokenConfig};
use securewatch_connectors::sources::syslog::SyslogConfig;
use securewatch_connectors::sources::wazuh::WazuhConfig;
use serde::{Deserialize, Serialize};

use crate::jobs::config::JobsConfig;
use crate::runtime::DataflowConfig;
use crate::intake::journal::JournalConfig;
use crate::intake::BusConfig;

/// Prefix of environment overrides: `SECUREWATCH_API__LISTEN=0.0.0.0:8080` sets `api.listen`.
pub const ENV_PREFIX: &str = "SECUREWATCH_";
/// Separator of key path segments in environment override names.
const ENV_PATH_SEPARATOR: &str = "__";

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the store, the HEC token and file positions (default `./data`).
    pub data_dir: Option<PathBuf>,
    /// The HTTP API.
    pub api: ApiConfig,
    /// The in-process ingest queue.
    pub queue: QueueConfig,
    /// The embedded SQLite store.
    pub store: SqliteConfig,
    /// Logging.
    pub log: LogConfig,
    /// Ingestion sources.
    pub sources: SourcesConfig,
    /// The dataflow engine: workers, epochs, lateness, retention, cluster.
    pub dataflow: DataflowConfig,
    /// Enrichment reference files (asset inventory, IP/CIDR lists), reloaded on change.
    pub enrichment: EnrichmentConfig,
    /// Sigma detection rules, reloaded on change.
    pub detection: DetectionConfig,
    /// External sinks written besides the embedded store.
    pub sinks: SinksConfig,
    /// The message bus between `securewatch ingest` and `securewatch worker`.
    pub bus: BusConfig,
    /// The embedded bus of `securewatch run`: a journal of accepted batches.
    pub journal: JournalConfig,
    /// Asynchronous jobs (searches): concurrency, row cap, keep-alive, results space.
    pub jobs: JobsConfig,
}

/// `[sinks.*]`: external stores every completed run of epochs is written to (before the
/// embedded SQLite store, which is always written). Each is on with `enabled = true`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// PostgreSQL / TimescaleDB; the API's dashboards and alerts then read from it.
    pub postgres: Option<PostgresConfig>,
    /// OpenSearch (off unless `enabled = true`).
    pub opensearch: OpenSearchConfig,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address of the API and `/metrics`.
    pub listen: SocketAddr,
    /// HTTPS on `listen` (`[api.tls]`): certificate, key, client certificates; plain HTTP
    /// without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Most connections open at once (default 256, at most 65536; also bounded by the
    /// open-files limit at start). Past it a new connection closes the one idle longest, or is
    /// refused when every one has a request in flight.
    pub max_connections: usize,
    /// Milliseconds for a request's headers to arrive, from the connection's opening or its
    /// previous answer (default 15000); also how long an idle keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// Milliseconds for a request body to arrive (default 30000), extended by one second for
    /// every `body_min_bytes_per_sec` bytes received.
    pub body_read_timeout_ms: u64,
    /// Body bytes that earn one more second (default 16384).
    pub body_min_bytes_per_sec: u64,
    /// `Host` names served besides the loopback ones (on a loopback address only those are
    /// served otherwise; on other addresses, when set, only these).
    pub allowed_hosts: Vec<String>,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest sum of request header bytes accepted.
    pub max_header_bytes: usize,
    /// Access control.
    pub auth: AuthConfig,
}

/// The HTTP defaults of `[api]`: 256 connections.
const API_HTTP_DEFAULTS: HttpSettings = HttpSettings::with_max_connections(256);

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            max_connections: API_HTTP_DEFAULTS.max_connections,
            header_read_timeout_ms: API_HTTP_DEFAULTS.header_read_timeout_ms,
            body_read_timeout_ms: API_HTTP_DEFAULTS.body_read_timeout_ms,
            body_min_bytes_per_sec: API_HTTP_DEFAULTS.body_min_bytes_per_sec,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            auth: AuthConfig::default(),
        }
    }
}

impl ApiConfig {
    /// The API listener's HTTP limits as configured.
    pub fn http_settings(&self) -> HttpSettings {
        HttpSettings {
            max_connections: self.max_connections,
            header_read_timeout_ms: self.header_read_timeout_ms,
            body_read_timeout_ms: self.body_read_timeout_ms,
            body_min_bytes_per_sec: self.body_min_bytes_per_sec,
        }
    }
}

/// `[queue]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most records in flight between the sources and the store; beyond it HEC answers 503
    /// code 9, syslog TCP and file tailers wait, syslog UDP drops (counted).
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { capacity: 200_000 }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `securewatch=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Human, level: "info".to_string() }
    }
}

impl LogConfig {
    /// Checks `level`: comma-separated directives, each a level (`trace`, `debug`, `info`,
    /// `warn`, `error`, `off`) or `target=level`. A bare word that is not a level would be
    /// taken by `tracing` as a target name and silence every other log line.
    pub fn validate(&self) -> Result<(), SettingError> {
        let invalid = || {
            let reason = format!(
                "{:?} is not valid: use one of trace, debug, info, warn, error, off, or per-target directives \
                 such as \"securewatch=debug,info\"",
                self.level
            );
            SettingError::invalid("level", reason)
        };
        for directive in self.level.split(',').map(str::trim) {
            let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
            if level.parse::<tracing_subscriber::filter::LevelFilter>().is_err() || level.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid());
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.level).map_err(|_| invalid())?;
        Ok(())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `[sources.*]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// Splunk-compatible HTTP Event Collector.
    pub hec: HecConfig,
    /// Syslog over UDP and TCP.
    pub syslog: SyslogConfig,
    /// Wazuh alerts.json tailer (off unless configured).
    pub wazuh: WazuhConfig,
}

/// A configuration error, located in its file where possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: String, line: usize, column: usize, message: String },
    #[error("{origin}: {message}")]
    Unlocated { origin: String, message: String },
}

impl SinksConfig {
    /// `[sinks.postgres]` when the sink is on (`enabled = true`, or the deprecated spelling: the
    /// table without `enabled`).
    pub fn postgres_in_force(&self) -> Option<&PostgresConfig> {
        self.postgres.as_ref().filter(|postgres| postgres.enabled != Some(false))
    }
}

impl Config {
    /// Reads `path` (or the defaults when `None`) and applies `SECUREWATCH_*` overrides from
    /// `environment`.
    pub fn load(
        path: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (origin, text) = match path {
            Some(path) => {
                let display = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: display.clone(), source })?;
                (display, text)
            }
            None => ("<defaults>".to_string(), String::new()),
        };
        let mut document: toml::Table = text.parse().map_err(|error: toml::de::Error| {
            located(&origin, &text, error.span(), error.message())
        })?;
        // Validate the file on its own first, so its errors carry its lines.
        toml::from_str::<Config>(&text)
            .map_err(|error| located(&origin, &text, error.span(), error.message()))?;
        let mut applied = Vec::new();
        for (name, value) in environment {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
            if !path.contains(ENV_PATH_SEPARATOR) && !ENV_TOP_LEVEL.contains(&path) {
                continue; // e.g. SECUREWATCH_HEC_TOKEN, handled elsewhere
            }
            let keys: Vec<String> =
                path.split(ENV_PATH_SEPARATOR).map(|key| key.to_ascii_lowercase()).collect();
            set_path(&mut document, &keys, parse_env_value(&value));
            applied.push(name);
        }
        let config = Config::deserialize(toml::Value::Table(document)).map_err(|error| {
            ConfigError::Unlocated {
                origin: format!("environment override ({})", applied.join(", ")),
                message: error.message().to_string(),
            }
        })?;
        config.validate(&origin)?;
        Ok(config)
    }

    /// Checks what the types cannot: each source's own rules (tokens, sizes, paths).
    /// HEC without configured tokens is checked as if the run-time token were present.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, message: String| ConfigError::Unlocated {
            origin: format!("{origin} [{section}]"),
            message,
        };
        self.api.http_settings().validate().map_err(|error| invalid("api", error.to_string()))?;
        if let Some(tls) = &self.api.tls {
            tls.validate().map_err(|error| invalid("api", error.to_string()))?;
        }
        let hec = &self.sources.hec;
        if hec.enabled {
            let mut checked = hec.clone();
            if checked.tokens.is_empty() {
                checked.tokens.push(HecTokenConfig { token: "runtime-token".into(), ..Default::default() });
            }
            checked.validate().map_err(|error| invalid("sources.hec", error.to_string()))?;
        }
        if self.sources.syslog.enabled {
            self.sources.syslog.validate().map_err(|error| invalid("sources.syslog", error.to_string()))?;
        }
        if self.sources.wazuh.enabled {
            self.sources.wazuh.validate().map_err(|error| invalid("sources.wazuh", error.to_string()))?;
        }
        self.log.validate().map_err(|error| invalid("log", error.to_string()))?;
        if self.queue.capacity == 0 {
            return Err(invalid("queue", "capacity must be above 0".into()));
        }
        self.dataflow.validate().map_err(|error| invalid("dataflow", error.to_string()))?;
        self.enrichment.validate().map_err(|error| invalid("enrichment", error.to_string()))?;
        self.bus.validate().map_err(|error| invalid("bus", error.to_string()))?;
        self.journal.validate().map_err(|error| invalid("journal", error.to_string()))?;
        self.detection.validate().map_err(|error| invalid("detection", error.to_string()))?;
        if let Some(postgres) = self.sinks.postgres_in_force() {
            postgres.validate().map_err(|error| invalid("sinks.postgres", error.to_string()))?;
        }
        if self.sinks.opensearch.enabled {
            self.sinks.opensearch.validate().map_err(|error| invalid("sinks.opensearch", error.to_string()))?;
        }
        self.store.validate().map_err(|error| invalid("store", error.to_string()))?;
        // Two buckets of margin beyond the longest a bucket stays open in the dataflow.
        let open_buckets = self.dataflow.lateness_secs + self.dataflow.retention_secs + 120;
        if self.store.retention_secs != 0 && self.store.retention_secs < open_buckets {
            let message = format!(
                "retention_secs = {} would delete rollup buckets the dataflow still updates: use at least {open_buckets} \
                 ([dataflow] lateness_secs + retention_secs + 120)",
                self.store.retention_secs
            );
            return Err(invalid("store", message));
        }
        self.api.auth.validate().map_err(|error| invalid("api.auth", error))?;
        if self.api.auth.mode == AuthMode::Off && !self.api.listen.ip().is_loopback() {
            let message = format!(
                "mode = \"off\" with [api] listen = {}: the API would answer anyone on the network; \
                 turn auth on or listen on a loopback address",
                self.api.listen
            );
            return Err(invalid("api.auth", message));
        }
        if self.api.max_body_bytes == 0 || self.api.max_header_bytes < 1024 {
            return Err(invalid("api", "max_body_bytes must be above 0 and max_header_bytes at least 1024".into()));
        }
        for origin in &self.api.cors_origins {
            if origin == "*" || !(origin.starts_with("https://") || origin.starts_with("http://")) {
                return Err(invalid("api", format!("cors_origins: {origin:?} is not an origin such as \"https://grafana.example\" (no wildcards)")));
            }
        }
        Ok(())
    }

    /// Warnings about deprecated spellings in force: logged at every start and printed by
    /// `config check`.
    pub fn deprecations(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self.detection.deprecation().into_iter().map(str::to_string).collect();
        if self.sinks.postgres.as_ref().is_some_and(|postgres| postgres.enabled.is_none()) {
            warnings.push("[sinks.postgres]: the table without `enabled = true` is deprecated; add `enabled = true`".into());
        }
        warnings
    }

    /// The data directory (default `./data`).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from("data"))
    }
}

/// Top-level keys settable without a `__` path (`SECUREWATCH_DATA_DIR`).
const ENV_TOP_LEVEL: [&str; 1] = ["DATA_DIR"];

fn parse_env_value(text: &str) -> toml::Value {
    // A TOML literal when it is one (numbers, booleans, arrays), a plain string otherwise.
    match format!("value = {text}").parse::<toml::Table>() {
        Ok(mut table) => table.remove("value").unwrap_or_else(|| toml::Value::String(text.into())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let Some((last, parents)) = keys.split_last() else { return };
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        current = entry.as_table_mut().expect("just made a table");
    }
    current.insert(last.clone(), value);
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |tail| tail.chars().count()) + 1;
    (line, column)
}

fn located(origin: &str, text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> ConfigError {
    let (line, column) = span.map_or((1, 1), |span| line_column(text, span.start));
    ConfigError::Invalid { path: origin.to_string(), line, column, message: message.trim().to_string() }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
