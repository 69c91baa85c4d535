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
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_without_a_file() {
        let config = Config::load(None, []).unwrap();
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir(), PathBuf::from("data"));
    }

    #[test]
    fn unknown_key_reports_file_and_line() {
        let file = write("[api]\nlisten = \"127.0.0.1:9000\"\n\n[queue]\ncapacity = 10\nbogus = 1\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(&format!("{}:6:", file.path().display())), "{error}");
        assert!(error.contains("bogus"), "{error}");
    }

    /// The shipped example documents every key with its default value.
    #[test]
    fn example_config_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/securewatch.example.toml");
        let example = Config::load(Some(&path), []).unwrap();
        let defaults = Config { data_dir: Some(PathBuf::from("data")), ..Config::default() };
        assert_eq!(example, defaults);
    }

    #[test]
    fn source_rules_are_checked() {
        let file = write("[sources.hec]\nmax_body_bytes = 0\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[sources.hec]") && error.contains("max_body_bytes"), "{error}");
        let file = write("[[sources.hec.tokens]]\nname = \"a\"\ntoken = \"x\"\n[[sources.hec.tokens]]\nname = \"a\"\ntoken = \"y\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("used twice"), "{error}");
    }

    #[test]
    fn enrichment_section_parses_and_is_checked() {
        let file = write(
            "[enrichment]\nassets = \"assets.csv\"\npoll_interval_ms = 250\n\
             [[enrichment.networks]]\nname = \"internal\"\npath = \"internal.txt\"\n",
        );
        let config = Config::load(Some(file.path()), []).unwrap();
        assert_eq!(config.enrichment.assets, Some(PathBuf::from("assets.csv")));
        assert_eq!(config.enrichment.networks[0].name, "internal");
        assert_eq!(config.enrichment.poll_interval_ms, 250);
        assert!(config.enrichment.ip_fields.iter().any(|field| field == "data.srcip"), "default fields");
        let file = write("[[enrichment.networks]]\nname = \"a b\"\npath = \"x.txt\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[enrichment]") && error.contains("a b"), "{error}");
        let file = write("[[enrichment.networks]]\nname = \"a\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(":1:") && error.contains("path"), "{error}");
    }

    #[test]
    fn optional_components_are_switched_by_enabled_and_old_spellings_warn() {
        let config = Config::load(None, []).unwrap();
        assert!(config.sinks.postgres_in_force().is_none() && config.detection.rules_dir_in_force().is_none());
        assert!(config.deprecations().is_empty());

        let file = write("[detection]\nenabled = true\nrules_dir = \"rules\"\n\n[sinks.postgres]\nenabled = true\n");
        let config = Config::load(Some(file.path()), []).unwrap();
        assert_eq!(config.detection.rules_dir_in_force(), Some(Path::new("rules")));
        assert!(config.sinks.postgres_in_force().is_some());
        assert!(config.deprecations().is_empty(), "{:?}", config.deprecations());

        let file = write("[detection]\nenabled = false\nrules_dir = \"rules\"\n\n[sinks.postgres]\nenabled = false\n");
        let config = Config::load(Some(file.path()), []).unwrap();
        assert!(config.detection.rules_dir_in_force().is_none() && config.sinks.postgres_in_force().is_none());
        assert!(config.deprecations().is_empty());

        // The spellings before the convention keep working for one release, with a warning each.
        let file = write("[detection]\nrules_dir = \"rules\"\n\n[sinks.postgres]\nurl = \"postgres://sw@db/sw\"\n");
        let config = Config::load(Some(file.path()), []).unwrap();
        assert_eq!(config.detection.rules_dir_in_force(), Some(Path::new("rules")));
        assert!(config.sinks.postgres_in_force().is_some());
        let warnings = config.deprecations();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("[detection]") && warnings[1].starts_with("[sinks.postgres]"), "{warnings:?}");

        let file = write("[detection]\nenabled = true\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[detection]") && error.contains("rules_dir: must be set when enabled = true"), "{error}");
    }

    #[test]
    fn sinks_parse_are_checked_and_take_environment_overrides() {
        let config = Config::load(None, []).unwrap();
        assert!(config.sinks.postgres.is_none() && !config.sinks.opensearch.enabled, "both off by default");
        let file = write("[sinks.postgres]\nurl = \"postgres://sw@db:5432/sw\"\nschema = \"events_a\"\n");
        let config = Config::load(Some(file.path()), []).unwrap();
        let postgres = config.sinks.postgres.unwrap();
        assert_eq!((postgres.url.as_str(), postgres.schema.as_deref()), ("postgres://sw@db:5432/sw", Some("events_a")));
        let file = write("[sinks.postgres]\npool_size = 0\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[sinks.postgres]") && error.contains("pool_size"), "{error}");
        let file = write("[sinks.postgres]\nurl = \"http://db\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[sinks.postgres]") && error.contains("url"), "{error}");
        let file = write("[sinks.postgres]\nbogus = 1\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(":2:") && error.contains("bogus"), "{error}");
        let file = write("[sinks.opensearch]\nenabled = true\nurls = [\"ftp://x\"]\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[sinks.opensearch]") && error.contains("ftp://x"), "{error}");
        let env = [
            ("SECUREWATCH_SINKS__POSTGRES__URL".to_string(), "postgres://env@db/sw".to_string()),
            ("SECUREWATCH_SINKS__POSTGRES__POOL_SIZE".to_string(), "3".to_string()),
            ("SECUREWATCH_SINKS__OPENSEARCH__ENABLED".to_string(), "true".to_string()),
            ("SECUREWATCH_SINKS__OPENSEARCH__URLS".to_string(), "[\"http://os:9200\"]".to_string()),
        ];
        let config = Config::load(None, env).unwrap();
        let postgres = config.sinks.postgres.unwrap();
        assert_eq!((postgres.url.as_str(), postgres.pool_size), ("postgres://env@db/sw", 3));
        assert!(config.sinks.opensearch.enabled);
        assert_eq!(config.sinks.opensearch.urls, ["http://os:9200"]);
        let bad = [("SECUREWATCH_SINKS__POSTGRES__BATCH_ROWS".to_string(), "0".to_string())];
        let error = Config::load(None, bad).unwrap_err().to_string();
        assert!(error.contains("[sinks.postgres]") && error.contains("batch_rows"), "{error}");
    }

    #[test]
    fn log_level_is_checked_with_the_valid_forms() {
        for good in ["info", "DEBUG", "securewatch=debug,info", "warn,securewatch_connectors=trace", "off"] {
            let file = write(&format!("[log]\nlevel = \"{good}\"\n"));
            Config::load(Some(file.path()), []).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
        for bad in ["loud", "", "securewatch=loud", "info,,debug", "3"] {
            let file = write(&format!("[log]\nlevel = \"{bad}\"\n"));
            let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
            assert!(error.contains("[log]") && error.contains("trace, debug, info, warn, error, off"), "{bad}: {error}");
        }
    }

    #[test]
    fn syslog_with_nothing_to_listen_on_is_refused() {
        let file = write("[sources.syslog]\nudp_listen = \"off\"\ntcp_listen = \"off\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[sources.syslog]") && error.contains("nothing to listen on"), "{error}");
        let file = write("[sources.syslog]\nenabled = false\nudp_listen = \"off\"\ntcp_listen = \"off\"\n");
        Config::load(Some(file.path()), []).unwrap();
    }

    #[test]
    fn what_cannot_run_is_refused() {
        // Issue 24 finding 6: each of these passed `config check`.
        let cases = [
            ("[dataflow]\nworkers = 10000\n", "[dataflow]", "workers (10000) must be at most 64"),
            ("[sources.syslog]\nmax_connections = 1000000\n", "[sources.syslog]", "max_connections (1000000) must be at most 65536"),
            ("[journal]\nsegment_mib = 100000\n", "[journal]", "segment_mib (100000) must be at most 1024"),
            ("[store]\nfile = \"../../x.db\"\n", "[store]", "inside the data directory"),
            ("[store]\nfile = \"/tmp/x.db\"\n", "[store]", "inside the data directory"),
            ("[api]\nmax_connections = 100000\n", "[api]", "max_connections (100000) must be at most 65536"),
            ("[api]\nheader_read_timeout_ms = 0\n", "[api]", "header_read_timeout_ms must be at least 1"),
            ("[sources.hec]\nbody_min_bytes_per_sec = 0\n", "[sources.hec]", "body_min_bytes_per_sec must be at least 1"),
        ];
        for (text, section, message) in cases {
            let error = Config::load(Some(write(text).path()), []).unwrap_err().to_string();
            assert!(error.contains(section) && error.contains(message), "{text}: {error}");
        }
        let limits = "[dataflow]\nworkers = 64\n[sources.syslog]\nmax_connections = 65536\n[journal]\nsegment_mib = 1024\n[store]\nfile = \"db/sw.db\"\n";
        Config::load(Some(write(limits).path()), []).unwrap();
    }

    #[test]
    fn wrong_type_and_syntax_errors_are_located() {
        let file = write("[queue]\ncapacity = \"many\"\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(":2:"), "{error}");
        let file = write("[api\n");
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(":1:"), "{error}");
    }

    #[test]
    fn environment_overrides_apply_and_are_checked() {
        let env = [
            ("SECUREWATCH_API__LISTEN".to_string(), "127.0.0.1:9999".to_string()),
            ("SECUREWATCH_QUEUE__CAPACITY".to_string(), "42".to_string()),
            ("SECUREWATCH_DATA_DIR".to_string(), "/tmp/sw".to_string()),
            ("SECUREWATCH_HEC_TOKEN".to_string(), "ignored-here".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.api.listen.port(), 9999);
        assert_eq!(config.queue.capacity, 42);
        assert_eq!(config.data_dir(), PathBuf::from("/tmp/sw"));
        let zero = [("SECUREWATCH_QUEUE__CAPACITY".to_string(), "0".to_string())];
        let error = Config::load(None, zero).unwrap_err().to_string();
        assert!(error.contains("[queue]") && error.contains("capacity"), "{error}");
        let bad = [("SECUREWATCH_QUEUE__NOPE".to_string(), "1".to_string())];
        let error = Config::load(None, bad).unwrap_err().to_string();
        assert!(error.contains("SECUREWATCH_QUEUE__NOPE") && error.contains("nope"), "{error}");
    }
}
