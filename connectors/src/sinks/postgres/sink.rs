//! The PostgreSQL / TimescaleDB sink itself: connect, flavour, migrations and start-up work, pool, health check, close, and [`PostgresError`].

use std::str::FromStr;
use std::sync::Mutex;

use chrono::NaiveDate;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::AssertSqlSafe;

use super::config::{PgSslMode, PostgresConfig, TimescaleMode};
use super::rows::CREATE_STAGING;

/// Sink failures.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The connection to PostgreSQL could not be opened.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    /// A `[sinks.postgres]` setting is refused.
    #[error("invalid [sinks.postgres] setting: {0}")]
    Config(String),
    /// The schema migrations failed.
    #[error("cannot migrate the PostgreSQL schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Setting up TimescaleDB or its policies failed, or the schema does not match the
    /// `timescale` setting.
    #[error("TimescaleDB: {0}")]
    Timescale(String),
    /// A query failed.
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    /// A value could not be serialised to JSON.
    #[error("cannot encode as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which events table a schema holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Natively partitioned by day; rollups as tables (and views under the aggregate names).
    Plain,
    /// A TimescaleDB hypertable with continuous aggregates.
    Timescale,
}

impl Flavour {
    fn as_str(self) -> &'static str {
        match self {
            Flavour::Plain => "plain",
            Flavour::Timescale => "timescale",
        }
    }
}

/// `options` with the `sslmode`, CA, client certificate and password of `config` applied.
fn with_tls_and_password(mut options: PgConnectOptions, config: &PostgresConfig) -> Result<PgConnectOptions, PostgresError> {
    use sqlx::postgres::PgSslMode as Mode;
    if let Some(mode) = config.sslmode {
        options = options.ssl_mode(match mode {
            PgSslMode::Disable => Mode::Disable,
            PgSslMode::Prefer => Mode::Prefer,
            PgSslMode::Require => Mode::Require,
            PgSslMode::VerifyCa => Mode::VerifyCa,
            PgSslMode::VerifyFull => Mode::VerifyFull,
        });
    }
    if let Some(path) = &config.ssl_root_cert_file {
        options = options.ssl_root_cert(path);
    }
    if let (Some(cert), Some(key)) = (&config.ssl_client_cert_file, &config.ssl_client_key_file) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    let password = crate::secret::resolve("password_env", config.password_env.as_deref(), "password_file", config.password_file.as_deref())
        .map_err(|error| PostgresError::Config(error.to_string()))?;
    if let Some(password) = password {
        options = options.password(&password);
    }
    Ok(options)
}

/// The PostgreSQL / TimescaleDB sink. Cheap to share (`Arc`) across tasks: writes take a pooled
/// connection each.
#[derive(Debug)]
pub struct PostgresSink {
    pub(super) pool: PgPool,
    pub(super) config: PostgresConfig,
    pub(super) flavour: Flavour,
    /// The UTC day partitions were last created ahead from (plain flavour).
    pub(super) partitions_day: Mutex<Option<NaiveDate>>,
}

impl PostgresSink {
    /// Connects, picks the flavour (see [`TimescaleMode`]), applies the migrations and then the
    /// flavour's start-up work: daily partitions ahead (plain) or the policies (TimescaleDB).
    pub async fn connect(config: &PostgresConfig) -> Result<PostgresSink, PostgresError> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(PostgresError::Connect)?
            .statement_cache_capacity(config.statement_cache_capacity);
        let options = with_tls_and_password(options, config)?;
        // Set per connection rather than as a start-up parameter, which some servers ignore
        // (PGlite's socket server). `public` stays on the path: TimescaleDB's functions live there.
        let search_path = match &config.schema {
            Some(schema) if !is_identifier(schema) => {
                return Err(PostgresError::Config(format!(
                    "schema {schema:?}: use lowercase letters, digits and '_' (not first a digit)"
                )))
            }
            Some(schema) => Some(format!("SET search_path TO {schema}, public")),
            None => None,
        };
        let shared_backend = config.statement_cache_capacity == 0;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .after_connect(move |connection, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if shared_backend {
                        sqlx::raw_sql("DEALLOCATE ALL").execute(&mut *connection).await?;
                    }
                    if let Some(search_path) = search_path {
                        // Only a checked identifier reaches the SQL.
                        sqlx::raw_sql(AssertSqlSafe(search_path)).execute(&mut *connection).await?;
                    }
                    // Room for a batch of staged rows in memory (the default is 8 MB). Only
                    // possible before the session's first temporary table: a shared backend
                    // (PGlite) may have one already, and keeps its setting.
                    if let Err(error) = sqlx::raw_sql("SET temp_buffers = '64MB'").execute(&mut *connection).await {
                        tracing::debug!(%error, "temp_buffers left as it is.");
                    }
                    sqlx::raw_sql(CREATE_STAGING).execute(&mut *connection).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(PostgresError::Connect)?;
        if let Some(schema) = &config.schema {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).execute(&pool).await?;
        }
        let flavour = choose_flavour(&pool, config.timescale).await?;
        let mut common = sqlx::migrate!("../schemas/sql/postgres/common");
        common.set_ignore_missing(true);
        common.run(&pool).await?;
        let mut events = match flavour {
            Flavour::Plain => sqlx::migrate!("../schemas/sql/postgres/plain"),
            Flavour::Timescale => sqlx::migrate!("../schemas/sql/postgres/timescale"),
        };
        events.set_ignore_missing(true);
        events.run(&pool).await?;
        let sink = PostgresSink { pool, config: config.clone(), flavour, partitions_day: Mutex::new(None) };
        match flavour {
            Flavour::Plain => sink.maintain_partitions().await?,
            Flavour::Timescale => sink.apply_timescale_policies().await?,
        }
        tracing::info!(flavour = flavour.as_str(), "PostgreSQL sink ready.");
        Ok(sink)
    }

    /// The connection pool (queries, tests, benchmarks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the server answers a trivial query (the health check).
    pub async fn ping(&self) -> Result<(), PostgresError> {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// The rollup tables searches may be answered from.
    pub fn rollup_store(&self) -> crate::sinks::read::search::RollupStore {
        match self.flavour {
            Flavour::Plain => crate::sinks::read::search::RollupStore::PostgresPlain,
            Flavour::Timescale => crate::sinks::read::search::RollupStore::Timescale,
        }
    }

    /// The flavour chosen at start-up.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }


    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

/// The schema's recorded flavour, else the configured one (`auto`: TimescaleDB when its
/// extension can be created).
async fn choose_flavour(pool: &PgPool, mode: TimescaleMode) -> Result<Flavour, PostgresError> {
    let recorded: Option<String> = if sqlx::query_scalar::<_, bool>("SELECT to_regclass('store_flavour') IS NOT NULL")
        .fetch_one(pool)
        .await?
    {
        sqlx::query_scalar("SELECT flavour FROM store_flavour").fetch_optional(pool).await?
    } else {
        None
    };
    let recorded = recorded.map(|flavour| if flavour == "timescale" { Flavour::Timescale } else { Flavour::Plain });
    match (recorded, mode) {
        (Some(Flavour::Plain), TimescaleMode::On) => {
            return Err(PostgresError::Timescale("timescale = \"on\" but this schema holds plain PostgreSQL tables".into()))
        }
        (Some(Flavour::Timescale), TimescaleMode::Off) => {
            return Err(PostgresError::Timescale("timescale = \"off\" but this schema holds TimescaleDB tables".into()))
        }
        (Some(flavour), _) => return Ok(flavour),
        (None, TimescaleMode::Off) => return Ok(Flavour::Plain),
        (None, _) => {}
    }
    match sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public").execute(pool).await {
        Ok(_) => Ok(Flavour::Timescale),
        Err(sqlx::Error::Database(error)) if mode == TimescaleMode::Auto => {
            tracing::info!(reason = %error, "TimescaleDB is not available: plain PostgreSQL tables.");
            Ok(Flavour::Plain)
        }
        Err(error) => Err(PostgresError::Timescale(format!("cannot create the timescaledb extension: {error}"))),
    }
}
