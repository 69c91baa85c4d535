//! Configuration of the PostgreSQL / TimescaleDB sink (`[sinks.postgres]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// `[sinks.postgres]` in the config file. `Debug` shows the URL without its password.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `true` writes to PostgreSQL. Leaving it out while the table is present still turns the
    /// sink on, with a deprecation warning (the spelling before one on/off convention).
    pub enabled: Option<bool>,
    /// Connection URL, e.g. `postgres://securewatch@db:5432/securewatch`.
    pub url: String,
    /// Schema the tables live in (created if missing); `None`: the server's default search path.
    pub schema: Option<String>,
    /// Most connections in the pool (writers and dashboard queries).
    pub pool_size: u32,
    /// Prepared statements cached per connection. 0 also drops (`DEALLOCATE ALL`) the prepared
    /// statements an earlier session left when a connection opens: for servers whose sessions
    /// share one backend, such as PGlite served over TCP.
    pub statement_cache_capacity: usize,
    /// Events per COPY (or multi-row INSERT) round within one write.
    pub batch_rows: usize,
    /// How events are loaded into the staging table.
    pub load: LoadMethod,
    /// Whether to use TimescaleDB.
    pub timescale: TimescaleMode,
    /// Plain PostgreSQL: daily partitions created ahead of today.
    pub partitions_ahead_days: u32,
    /// Plain PostgreSQL: daily partitions created behind today at start-up.
    pub partitions_behind_days: u32,
    /// TimescaleDB: compress event chunks older than this many days (`None`: no compression).
    pub compress_after_days: Option<u32>,
    /// TimescaleDB: drop event chunks older than this many days (`None`: keep everything).
    pub retention_days: Option<u32>,
    /// TLS as libpq names it: `disable`, `prefer`, `require`, `verify-ca` or `verify-full`
    /// (default: the URL's `sslmode`, else `prefer`). `verify-*` check the server certificate
    /// against `ssl_root_cert_file` (else the public web roots); `verify-full` also its name.
    pub sslmode: Option<PgSslMode>,
    /// PEM file of the CA(s) the server certificate must chain to.
    pub ssl_root_cert_file: Option<PathBuf>,
    /// PEM client certificate, for servers that authenticate clients by certificate.
    pub ssl_client_cert_file: Option<PathBuf>,
    /// PEM key of `ssl_client_cert_file`.
    pub ssl_client_key_file: Option<PathBuf>,
    /// Environment variable holding the password (instead of writing it in `url`).
    pub password_env: Option<String>,
    /// File holding the password (e.g. a mounted secret), trailing line break ignored.
    pub password_file: Option<PathBuf>,
}

/// `sslmode`: how the sink protects its connections to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgSslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS, without checking the server certificate.
    Require,
    /// TLS with a server certificate that chains to a trusted CA.
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresConfig")
            .field("enabled", &self.enabled)
            .field("url", &redacted_url(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("batch_rows", &self.batch_rows)
            .field("load", &self.load)
            .field("timescale", &self.timescale)
            .field("partitions_ahead_days", &self.partitions_ahead_days)
            .field("partitions_behind_days", &self.partitions_behind_days)
            .field("compress_after_days", &self.compress_after_days)
            .field("retention_days", &self.retention_days)
            .field("sslmode", &self.sslmode)
            .field("ssl_root_cert_file", &self.ssl_root_cert_file)
            .field("ssl_client_cert_file", &self.ssl_client_cert_file)
            .field("ssl_client_key_file", &self.ssl_client_key_file)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// `url` with the password of its user part (`user:password@`) and of a `password=` query
/// parameter replaced by `<redacted>`.
pub fn redacted_url(url: &str) -> String {
    let mut redacted = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((user_part, host_part)) = rest.split_once('@') {
            if let Some((user, _)) = user_part.split_once(':') {
                redacted = format!("{scheme}://{user}:<redacted>@{host_part}");
            }
        }
    }
    if let Some(at) = redacted.find("password=") {
        let end = redacted[at..].find('&').map_or(redacted.len(), |end| at + end);
        redacted.replace_range(at + "password=".len()..end, "<redacted>");
    }
    redacted
}

/// `timescale = "auto" | "on" | "off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimescaleMode {
    /// Use TimescaleDB when `CREATE EXTENSION IF NOT EXISTS timescaledb` succeeds, else plain tables.
    Auto,
    /// Require TimescaleDB: start-up fails without it.
    On,
    /// Plain PostgreSQL tables even where TimescaleDB is available.
    Off,
}

/// `load = "copy" | "insert"`: how a batch reaches the staging table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMethod {
    /// Binary `COPY ... FROM STDIN` (fastest).
    Copy,
    /// Multi-row `INSERT` statements (for servers or proxies without COPY).
    Insert,
}

impl PostgresConfig {
    /// Checks what the types cannot; the message names the key (`url: ...`).
    pub fn validate(&self) -> Result<(), SettingError> {
        use std::str::FromStr;
        if let Err(error) = sqlx::postgres::PgConnectOptions::from_str(&self.url) {
            return Err(SettingError::invalid("url", format!("not a PostgreSQL connection URL ({error})")));
        }
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(SettingError::invalid("url", "expected postgres://... or postgresql://..."));
        }
        if let Some(schema) = &self.schema {
            let mut chars = schema.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') || schema.len() > 63 {
                let reason = format!("use lowercase letters, digits and '_' (not first a digit), got {schema:?}");
                return Err(SettingError::invalid("schema", reason));
            }
        }
        SettingError::positive("pool_size", u64::from(self.pool_size))?;
        SettingError::positive("batch_rows", self.batch_rows as u64)?;
        if self.retention_days == Some(0) {
            return Err(SettingError::invalid("retention_days", "must be above 0 (leave it out to keep everything)"));
        }
        if self.compress_after_days == Some(0) {
            return Err(SettingError::invalid("compress_after_days", "must be above 0 (leave it out for no compression)"));
        }
        if self.ssl_client_cert_file.is_some() != self.ssl_client_key_file.is_some() {
            return Err(SettingError::invalid("ssl_client_cert_file", "set both ssl_client_cert_file and ssl_client_key_file, or neither"));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err(SettingError::invalid("password_env", "set password_env or password_file, not both"));
        }
        Ok(())
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            enabled: None,
            url: "postgres://localhost/securewatch".to_string(),
            schema: None,
            pool_size: 8,
            statement_cache_capacity: 100,
            batch_rows: 10_000,
            load: LoadMethod::Copy,
            timescale: TimescaleMode::Auto,
            partitions_ahead_days: 3,
            partitions_behind_days: 1,
            compress_after_days: Some(7),
            retention_days: Some(30),
            sslmode: None,
            ssl_root_cert_file: None,
            ssl_client_cert_file: None,
            ssl_client_key_file: None,
            password_env: None,
            password_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_key() {
        assert_eq!(PostgresConfig::default().validate(), Ok(()));
        let with = |change: fn(&mut PostgresConfig)| {
            let mut config = PostgresConfig::default();
            change(&mut config);
            config.validate().unwrap_err().to_string()
        };
        assert!(with(|c| c.url = "mysql://x/y".into()).starts_with("url: "));
        assert!(with(|c| c.schema = Some("Bad-Name".into())).starts_with("schema: "));
        assert_eq!(with(|c| c.pool_size = 0), "pool_size must be at least 1");
        assert_eq!(with(|c| c.batch_rows = 0), "batch_rows must be at least 1");
        assert!(with(|c| c.retention_days = Some(0)).starts_with("retention_days: "));
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = PostgresConfig { url: "postgres://sw:s3cret@db:5432/sw?sslmode=require&password=also".into(), ..PostgresConfig::default() };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("also"), "{shown}");
        assert!(shown.contains("postgres://sw:<redacted>@db:5432/sw?sslmode=require&password=<redacted>"), "{shown}");
        assert_eq!(redacted_url("postgres://sw@db/sw"), "postgres://sw@db/sw");
    }
}
