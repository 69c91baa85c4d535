//! The PostgreSQL / TimescaleDB sink: connection, migrations, and `write_epochs`, which stores a
//! run of completed dataflow epochs (events, dead letters, rollups, late counts, enrichment tags,
//! alerts and source positions) in one transaction.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use securewatch_schemas::{EnrichmentRow, RollupChange, RollupKey};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};

use super::config::{LoadMethod, PostgresConfig, TimescaleMode};
use securewatch_schemas::Event;

use super::rows::{check_event, copy_header, copy_row, copy_trailer, rejected_event, storable_text, storable_time, EventRow};
use crate::sinks::{DeadLetter, EpochWrite, WriteSummary};
use securewatch_schemas::{Alert, AlertLevel};
use crate::telemetry;

/// Rows per multi-row INSERT into the staging table (12 bound values each; PostgreSQL allows 65535).
const INSERT_ROWS_PER_STATEMENT: usize = 2000;
/// Rows per multi-row INSERT of dead letters (7 bound values each).
const DEAD_LETTERS_PER_STATEMENT: usize = 1000;

/// Sink failures.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("invalid [sinks.postgres] setting: {0}")]
    Config(String),
    #[error("cannot migrate the PostgreSQL schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("TimescaleDB: {0}")]
    Timescale(String),
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
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

pub use crate::sinks::progress::SourceProgress;

/// The PostgreSQL / TimescaleDB sink. Cheap to share (`Arc`) across tasks: writes take a pooled
/// connection each.
#[derive(Debug)]
pub struct PostgresSink {
    pub(super) pool: PgPool,
    pub(super) config: PostgresConfig,
    pub(super) flavour: Flavour,
    /// The UTC day partitions were last created ahead from (plain flavour).
    partitions_day: Mutex<Option<NaiveDate>>,
}

impl PostgresSink {
    /// Connects, picks the flavour (see [`TimescaleMode`]), applies the migrations and then the
    /// flavour's start-up work: daily partitions ahead (plain) or the policies (TimescaleDB).
    pub async fn connect(config: &PostgresConfig) -> Result<PostgresSink, PostgresError> {
        let options = PgConnectOptions::from_str(&config.url)
            .map_err(PostgresError::Connect)?
            .statement_cache_capacity(config.statement_cache_capacity);
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

    /// The flavour chosen at start-up.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// Writes a run of completed epochs in one transaction (see [`PostgresSink::write_epochs_with_progress`]).
    pub async fn write_epochs(&self, write: &EpochWrite) -> Result<WriteSummary, PostgresError> {
        self.write_epochs_with_progress(write, &write.progress).await
    }

    /// Writes everything a run of completed dataflow epochs produced, and the source positions
    /// those epochs close, in ONE transaction: either all of it is stored or none.
    ///
    /// - Events are stored once by `(time, id)`: already stored ones count as duplicates.
    /// - Events PostgreSQL would refuse (NUL bytes, jsonb's `\u0000`, times before 4713 BC) go
    ///   to the dead letters with the reason; if a batch still fails in the server, its rows are
    ///   retried one by one to isolate the refused ones. One bad row never fails a write.
    /// - Rollups are upserted (deleted at count 0), late counts added, enrichment tags and alerts
    ///   applied as in the SQLite store.
    /// - `progress` rows are upserted, never moving a position back to an older epoch.
    pub async fn write_epochs_with_progress(
        &self,
        write: &EpochWrite,
        progress: &[SourceProgress],
    ) -> Result<WriteSummary, PostgresError> {
        let started = Instant::now();
        if self.flavour == Flavour::Plain {
            let today = Utc::now().date_naive();
            let due = *self.partitions_day.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) != Some(today);
            if due {
                self.maintain_partitions().await?;
            }
        }
        let mut rejected = Vec::new();
        let mut transaction = self.pool.begin().await?;
        let mut summary = WriteSummary::default();
        // Each batch is checked and encoded while the server stores the one before it.
        let mut chunks = write.events.chunks(self.config.batch_rows.max(1));
        let mut current = chunks.next().map(|chunk| prepare_batch(chunk, self.config.load));
        // COPY straight into `events` until a batch holds a stored event (a replay).
        let mut direct = true;
        while let Some((batch, refused)) = current {
            rejected.extend(refused);
            let next = chunks.next();
            let (stored, prepared) = tokio::join!(
                store_event_batch(&mut transaction, &batch, &mut direct, &mut summary, &mut rejected),
                async { next.map(|chunk| prepare_batch(chunk, self.config.load)) }
            );
            stored?;
            current = prepared;
        }
        summary.dead_lettered = insert_dead_letters(&mut transaction, write.dead_letters.iter().chain(&rejected)).await?;
        if self.flavour == Flavour::Plain {
            super::dashboard::add_differences(&mut transaction, &latest_counts(&write.rollups)).await?;
        }
        apply_rollup_changes(&mut transaction, &write.rollups).await?;
        add_late_counts(&mut transaction, &write.late).await?;
        apply_enrichment_changes(&mut transaction, &write.enrichment).await?;
        apply_alert_changes(&mut transaction, &write.alerts).await?;
        write_progress(&mut transaction, progress).await?;
        transaction.commit().await?;
        metrics::histogram!(telemetry::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(telemetry::STORE_WRITTEN).increment(summary.written);
        metrics::counter!(telemetry::STORE_DUPLICATES).increment(summary.duplicates);
        if !rejected.is_empty() {
            tracing::warn!(rejected = rejected.len(), "PostgreSQL refused events; they are in the dead letters.");
        }
        Ok(summary)
    }

    /// Stored positions of `source`, by partition.
    pub async fn progress(&self, source: &str) -> Result<Vec<SourceProgress>, PostgresError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT source, partition, position, epoch FROM source_progress WHERE source = $1 ORDER BY partition",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(source, partition, position, epoch)| SourceProgress {
                source,
                partition,
                position,
                epoch: u64::try_from(epoch).unwrap_or(0),
            })
            .collect())
    }

    /// Plain flavour: creates the daily partitions from `partitions_behind_days` before today to
    /// `partitions_ahead_days` after it. No-op on TimescaleDB (chunks are created by it).
    pub async fn maintain_partitions(&self) -> Result<(), PostgresError> {
        if self.flavour != Flavour::Plain {
            return Ok(());
        }
        let today = Utc::now().date_naive();
        let from = today - chrono::Days::new(u64::from(self.config.partitions_behind_days));
        let to = today + chrono::Days::new(u64::from(self.config.partitions_ahead_days));
        self.ensure_partitions(from, to).await?;
        *self.partitions_day.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(today);
        Ok(())
    }

    /// Plain flavour: makes sure the daily partitions of `from..=to` (UTC days) exist. Events of
    /// a day without a partition sit in `events_default`; creating the day's partition moves
    /// them into it. Returns the partitions created.
    pub async fn ensure_partitions(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<String>, PostgresError> {
        let mut created = Vec::new();
        if self.flavour != Flavour::Plain {
            return Ok(created);
        }
        for day in from.iter_days().take_while(|day| *day <= to) {
            let name = partition_name(day);
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&self.pool)
                .await?;
            if exists {
                continue;
            }
            let next = day + chrono::Days::new(1);
            let mut transaction = self.pool.begin().await?;
            // One partition maker at a time across sinks sharing the database.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('securewatch_partitions'))").execute(&mut *transaction).await?;
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&name)
                .fetch_one(&mut *transaction)
                .await?;
            if exists {
                continue;
            }
            // Names and bounds come from dates only: no outside text reaches the SQL.
            let (lower, upper) = (format!("{day} 00:00:00+00"), format!("{next} 00:00:00+00"));
            sqlx::raw_sql(AssertSqlSafe(format!(
                "LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;
                 CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                 WITH moved AS (DELETE FROM events_default WHERE time >= '{lower}' AND time < '{upper}' RETURNING *)
                 INSERT INTO {name} SELECT * FROM moved;
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}');"
            )))
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            created.push(name);
        }
        Ok(created)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `events_pYYYYMMDD`.
pub(super) fn partition_name(day: NaiveDate) -> String {
    format!("events_p{}", day.format("%Y%m%d"))
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

/// A batch of checked events, with its binary COPY data when loading by COPY.
struct Batch<'a> {
    rows: Vec<EventRow<'a>>,
    copy: Option<Vec<u8>>,
}

/// Checks `events` (those PostgreSQL would refuse become dead letters) and encodes the rest.
fn prepare_batch(events: &[Event], load: LoadMethod) -> (Batch<'_>, Vec<DeadLetter>) {
    let mut rows = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for event in events {
        match check_event(event) {
            Ok(row) => rows.push(row),
            Err(detail) => rejected.push(rejected_event(event, detail)),
        }
    }
    let copy = (load == LoadMethod::Copy).then(|| {
        let mut buffer = Vec::with_capacity(rows.len() * 512 + 32);
        copy_header(&mut buffer);
        for row in &rows {
            copy_row(&mut buffer, row);
        }
        copy_trailer(&mut buffer);
        buffer
    });
    (Batch { rows, copy }, rejected)
}

/// Stores one batch of checked events through the staging table, counting written and
/// duplicate rows. If the server refuses the batch, retries it row by row (each under a
/// savepoint) and dead-letters the rows it refuses.
async fn store_event_batch(
    connection: &mut PgConnection,
    batch: &Batch<'_>,
    direct: &mut bool,
    summary: &mut WriteSummary,
    rejected: &mut Vec<DeadLetter>,
) -> Result<(), PostgresError> {
    let rows = batch.rows.as_slice();
    if rows.is_empty() {
        return Ok(());
    }
    if let (Some(copy), true) = (&batch.copy, *direct) {
        // Optimistic: one COPY into `events` itself, which a stored (time, id) aborts; then the
        // batch goes the staging way, and so does the rest of the write.
        sqlx::raw_sql("SAVEPOINT securewatch_direct").execute(&mut *connection).await?;
        match copy_rows(connection, "events", copy).await {
            Ok(()) => {
                sqlx::raw_sql("RELEASE SAVEPOINT securewatch_direct").execute(&mut *connection).await?;
                summary.written += rows.len() as u64;
                return Ok(());
            }
            Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_direct; RELEASE SAVEPOINT securewatch_direct")
                    .execute(&mut *connection)
                    .await?;
                *direct = false;
            }
            Err(error) => return Err(error.into()),
        }
    }
    sqlx::raw_sql("SAVEPOINT securewatch_batch").execute(&mut *connection).await?;
    let attempt = async {
        match &batch.copy {
            Some(copy) => copy_rows(connection, "events_staging", copy).await?,
            None => insert_into_staging(connection, rows).await?,
        }
        let moved = sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO events ({EVENT_COLUMN_LIST}) SELECT {EVENT_COLUMN_LIST} FROM events_staging \
             ON CONFLICT (time, id) DO NOTHING"
        )))
        .execute(&mut *connection)
        .await?;
        // Emptied for the next batch of the same transaction (cheaper than deleting the rows).
        sqlx::raw_sql("TRUNCATE events_staging").execute(&mut *connection).await?;
        Ok::<u64, sqlx::Error>(moved.rows_affected())
    }
    .await;
    match attempt {
        Ok(written) => {
            sqlx::raw_sql("RELEASE SAVEPOINT securewatch_batch").execute(&mut *connection).await?;
            summary.written += written;
            summary.duplicates += rows.len() as u64 - written;
            Ok(())
        }
        Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
            tracing::warn!(%error, rows = rows.len(), "PostgreSQL refused a batch of events; storing them one by one.");
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_batch; RELEASE SAVEPOINT securewatch_batch")
                .execute(&mut *connection)
                .await?;
            for row in rows {
                sqlx::raw_sql("SAVEPOINT securewatch_row").execute(&mut *connection).await?;
                let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(INSERT_EVENTS_INTO_EVENTS);
                push_event_values(&mut builder, std::slice::from_ref(row));
                builder.push(" ON CONFLICT (time, id) DO NOTHING");
                match builder.build().execute(&mut *connection).await {
                    Ok(done) => {
                        sqlx::raw_sql("RELEASE SAVEPOINT securewatch_row").execute(&mut *connection).await?;
                        summary.written += done.rows_affected();
                        summary.duplicates += 1 - done.rows_affected();
                    }
                    Err(sqlx::Error::Database(error)) if refuses_data(&*error) => {
                        sqlx::raw_sql("ROLLBACK TO SAVEPOINT securewatch_row; RELEASE SAVEPOINT securewatch_row")
                            .execute(&mut *connection)
                            .await?;
                        rejected.push(rejected_event(row.event, format!("PostgreSQL refused the event: {error}")));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether a server error is about the data (SQLSTATE class 22, data exception, or 23,
/// integrity constraint violation): then the row, not the server, is at fault. Anything else
/// (connection, disk, permissions) fails the whole write, to be retried.
fn refuses_data(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

/// The events table's columns, in the order of the binary COPY rows and the staging table.
const EVENT_COLUMN_LIST: &str =
    "time, id, received, source_kind, source_name, peer, host, severity, category, message, fields, raw";

/// Creates the connection's staging table: the events table's columns without its constraints
/// (PostgreSQL checks those when rows move into `events`), emptied at each commit.
const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS events_staging (\
     time timestamptz NOT NULL, id bytea NOT NULL, received timestamptz NOT NULL, source_kind text NOT NULL, \
     source_name text NOT NULL, peer text, host text, severity smallint NOT NULL, category text, \
     message text NOT NULL, fields jsonb NOT NULL, raw text) ON COMMIT DELETE ROWS";

/// Binary COPY of the rows in `buffer` (a whole COPY stream) into `table` (a fixed name).
async fn copy_rows(connection: &mut PgConnection, table: &str, buffer: &[u8]) -> Result<(), sqlx::Error> {
    let mut copy = connection
        .copy_in_raw(&format!("COPY {table} ({EVENT_COLUMN_LIST}) FROM STDIN WITH (FORMAT binary)"))
        .await?;
    // Sent in 1 MiB pieces: each becomes one CopyData message.
    for piece in buffer.chunks(1 << 20) {
        if let Err(error) = copy.send(piece).await {
            let _ = copy.abort("sending failed").await;
            return Err(error);
        }
    }
    copy.finish().await?;
    Ok(())
}

const INSERT_EVENTS_INTO_STAGING: &str = "INSERT INTO events_staging (time, id, received, source_kind, source_name, \
     peer, host, severity, category, message, fields, raw) ";
const INSERT_EVENTS_INTO_EVENTS: &str = "INSERT INTO events (time, id, received, source_kind, source_name, \
     peer, host, severity, category, message, fields, raw) ";

fn push_event_values(builder: &mut QueryBuilder<Postgres>, rows: &[EventRow<'_>]) {
    builder.push_values(rows, |mut values, row| {
        let event = row.event;
        values
            .push_bind(event.time)
            .push_bind(event.id.to_bytes().to_vec())
            .push_bind(event.received)
            .push_bind(event.source.kind.as_str())
            .push_bind(event.source.name.clone())
            .push_bind(event.source.peer.clone())
            .push_bind(event.host.clone())
            .push_bind(i16::from(event.severity.code()))
            .push_bind(event.category.clone())
            .push_bind(event.message.clone())
            .push_bind(row.fields.clone())
            .push_unseparated("::jsonb")
            .push_bind(event.raw.clone());
    });
}

async fn insert_into_staging(connection: &mut PgConnection, rows: &[EventRow<'_>]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(INSERT_ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(INSERT_EVENTS_INTO_STAGING);
        push_event_values(&mut builder, chunk);
        builder.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// Inserts dead letters (text made storable: NUL bytes replaced; the body keeps every byte).
async fn insert_dead_letters<'a>(
    connection: &mut PgConnection,
    letters: impl Iterator<Item = &'a DeadLetter>,
) -> Result<u64, PostgresError> {
    let letters: Vec<&DeadLetter> = letters.collect();
    for chunk in letters.chunks(DEAD_LETTERS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO dead_letters (received, source_kind, source_name, peer, reason, detail, body) ",
        );
        builder.push_values(chunk, |mut values, letter| {
            values
                .push_bind(storable_time(letter.record.received))
                .push_bind(letter.record.kind.as_str())
                .push_bind(storable_text(&letter.record.source_name).into_owned())
                .push_bind(letter.record.peer.as_deref().map(|peer| storable_text(peer).into_owned()))
                .push_bind(letter.reason)
                .push_bind(storable_text(&letter.detail).into_owned())
                .push_bind(letter.record.body.clone());
        });
        builder.build().execute(&mut *connection).await?;
    }
    Ok(letters.len() as u64)
}

/// Milliseconds as PostgreSQL's bigint (saturating; no real time comes near the limit).
pub(super) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Each changed rollup row's count after `changes` (the last change of a row wins).
pub(super) fn latest_counts(changes: &[RollupChange]) -> BTreeMap<(&RollupKey, u64), i64> {
    changes.iter().map(|change| ((&change.key, change.bucket_start_ms), change.count)).collect()
}

/// Applies rollup changes inside the caller's transaction: each row ends at its last count in
/// `changes`, upserted, or deleted when that count is zero. Idempotent. Returns rows touched.
pub async fn apply_rollup_changes(connection: &mut PgConnection, changes: &[RollupChange]) -> Result<u64, PostgresError> {
    let latest = latest_counts(changes);
    #[derive(Default)]
    struct Columns {
        bucket: Vec<i64>,
        kind: Vec<&'static str>,
        text: Vec<String>,
        severity: Vec<i16>,
        count: Vec<i64>,
    }
    let (mut source, mut source_gone, mut category, mut category_gone, mut hosts, mut hosts_gone) =
        <(Columns, Columns, Columns, Columns, Columns, Columns)>::default();
    for ((key, bucket), count) in latest {
        let bucket = sql_ms(bucket);
        match key {
            RollupKey::Source { kind, host, severity } => {
                let columns = if count == 0 { &mut source_gone } else { &mut source };
                columns.bucket.push(bucket);
                columns.kind.push(kind.as_str());
                columns.text.push(host.clone().unwrap_or_default());
                columns.severity.push(i16::from(severity.code()));
                columns.count.push(count);
            }
            RollupKey::Category(name) => {
                let columns = if count == 0 { &mut category_gone } else { &mut category };
                columns.bucket.push(bucket);
                columns.text.push(name.clone().unwrap_or_default());
                columns.count.push(count);
            }
            RollupKey::DistinctHosts => {
                let columns = if count == 0 { &mut hosts_gone } else { &mut hosts };
                columns.bucket.push(bucket);
                columns.count.push(count);
            }
        }
    }
    let mut touched = 0;
    if !source.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_source (bucket_start_ms, source_kind, host, severity, count) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[]) \
             ON CONFLICT (bucket_start_ms, source_kind, host, severity) DO UPDATE SET count = excluded.count",
        )
        .bind(&source.bucket)
        .bind(&source.kind)
        .bind(&source.text)
        .bind(&source.severity)
        .bind(&source.count)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !source_gone.bucket.is_empty() {
        touched += sqlx::query(
            "DELETE FROM rollup_source r USING UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[]) \
             AS gone(bucket, kind, host, severity) WHERE r.bucket_start_ms = gone.bucket \
             AND r.source_kind = gone.kind AND r.host = gone.host AND r.severity = gone.severity",
        )
        .bind(&source_gone.bucket)
        .bind(&source_gone.kind)
        .bind(&source_gone.text)
        .bind(&source_gone.severity)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !category.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_category (bucket_start_ms, category, count) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) \
             ON CONFLICT (bucket_start_ms, category) DO UPDATE SET count = excluded.count",
        )
        .bind(&category.bucket)
        .bind(&category.text)
        .bind(&category.count)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !category_gone.bucket.is_empty() {
        touched += sqlx::query(
            "DELETE FROM rollup_category r USING UNNEST($1::bigint[], $2::text[]) AS gone(bucket, category) \
             WHERE r.bucket_start_ms = gone.bucket AND r.category = gone.category",
        )
        .bind(&category_gone.bucket)
        .bind(&category_gone.text)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !hosts.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_hosts (bucket_start_ms, distinct_hosts) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) \
             ON CONFLICT (bucket_start_ms) DO UPDATE SET distinct_hosts = excluded.distinct_hosts",
        )
        .bind(&hosts.bucket)
        .bind(&hosts.count)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !hosts_gone.bucket.is_empty() {
        touched += sqlx::query("DELETE FROM rollup_hosts WHERE bucket_start_ms = ANY($1::bigint[])")
            .bind(&hosts_gone.bucket)
            .execute(&mut *connection)
            .await?
            .rows_affected();
    }
    Ok(touched)
}

/// Adds late-event counts per bucket (they add up: apply each batch once).
pub async fn add_late_counts(connection: &mut PgConnection, late: &[(u64, i64)]) -> Result<(), PostgresError> {
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for (bucket, count) in late {
        *sums.entry(sql_ms(*bucket)).or_default() += count;
    }
    sums.retain(|_, count| *count != 0);
    if sums.is_empty() {
        return Ok(());
    }
    let (buckets, counts): (Vec<i64>, Vec<i64>) = sums.into_iter().unzip();
    sqlx::query(
        "INSERT INTO rollup_late (bucket_start_ms, count) SELECT * FROM UNNEST($1::bigint[], $2::bigint[]) \
         ON CONFLICT (bucket_start_ms) DO UPDATE SET count = rollup_late.count + excluded.count",
    )
    .bind(&buckets)
    .bind(&counts)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Applies enrichment tag updates (`+1` insert, `-1` delete; net per tag).
pub async fn apply_enrichment_changes(
    connection: &mut PgConnection,
    rows: &[(EnrichmentRow, isize)],
) -> Result<(), PostgresError> {
    let mut net: BTreeMap<(i64, String, String), (isize, &'static str)> = BTreeMap::new();
    for (row, diff) in rows {
        let kind = match &row.tag {
            securewatch_schemas::Tag::Asset(_) => "asset",
            securewatch_schemas::Tag::Network { .. } => "network",
            securewatch_schemas::Tag::Geo(_) => "geo",
        };
        let id = (sql_ms(row.bucket_start_ms), row.key.to_string(), serde_json::to_string(&row.tag)?);
        net.entry(id).or_insert((0, kind)).0 += diff;
    }
    let (mut add, mut gone) = (Vec::new(), Vec::new());
    for ((bucket, key, tag), (diff, kind)) in net {
        if diff > 0 {
            add.push((bucket, key, kind, tag));
        } else if diff < 0 {
            gone.push((bucket, key, tag));
        }
    }
    if !add.is_empty() {
        let buckets: Vec<i64> = add.iter().map(|row| row.0).collect();
        let keys: Vec<&str> = add.iter().map(|row| row.1.as_str()).collect();
        let kinds: Vec<&str> = add.iter().map(|row| row.2).collect();
        let tags: Vec<&str> = add.iter().map(|row| row.3.as_str()).collect();
        sqlx::query(
            "INSERT INTO enrichment_tags (bucket_start_ms, lookup_key, kind, tag) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(&buckets)
        .bind(&keys)
        .bind(&kinds)
        .bind(&tags)
        .execute(&mut *connection)
        .await?;
    }
    if !gone.is_empty() {
        let buckets: Vec<i64> = gone.iter().map(|row| row.0).collect();
        let keys: Vec<&str> = gone.iter().map(|row| row.1.as_str()).collect();
        let tags: Vec<&str> = gone.iter().map(|row| row.2.as_str()).collect();
        sqlx::query(
            "DELETE FROM enrichment_tags t USING UNNEST($1::bigint[], $2::text[], $3::text[]) AS gone(bucket, key, tag) \
             WHERE t.bucket_start_ms = gone.bucket AND t.lookup_key = gone.key AND t.tag = gone.tag",
        )
        .bind(&buckets)
        .bind(&keys)
        .bind(&tags)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Applies alert diffs in order: `+1` stores the alert (replacing its row and event list),
/// `-1` deletes it. Idempotent.
pub async fn apply_alert_changes(connection: &mut PgConnection, changes: &[(Alert, isize)]) -> Result<(), PostgresError> {
    let time = |ms: u64| storable_time(DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX)).unwrap_or_default());
    for (alert, diff) in changes {
        let id = alert.id.to_bytes().to_vec();
        sqlx::query("DELETE FROM alert_events WHERE alert_id = $1").bind(&id).execute(&mut *connection).await?;
        if *diff <= 0 {
            sqlx::query("DELETE FROM alerts WHERE id = $1").bind(&id).execute(&mut *connection).await?;
            continue;
        }
        sqlx::query(
            "INSERT INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start, window_end, \
             fired_at, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET rule_id = excluded.rule_id, title = excluded.title, \
             level = excluded.level, kind = excluded.kind, tags = excluded.tags, group_key = excluded.group_key, \
             window_start = excluded.window_start, window_end = excluded.window_end, fired_at = excluded.fired_at, \
             first_seen = excluded.first_seen, last_seen = excluded.last_seen",
        )
        .bind(&id)
        .bind(storable_text(&alert.rule_id).into_owned())
        .bind(storable_text(&alert.rule_title).into_owned())
        .bind(alert.level.map(AlertLevel::as_str))
        .bind(&alert.kind)
        .bind(serde_json::to_string(&alert.tags)?)
        .bind(serde_json::to_string(&alert.group_key)?)
        .bind(time(alert.window_start_ms))
        .bind(time(alert.window_end_ms))
        .bind(time(alert.fired_at_ms))
        .bind(time(alert.first_seen_ms))
        .bind(time(alert.last_seen_ms))
        .execute(&mut *connection)
        .await?;
        if !alert.event_ids.is_empty() {
            let ids: Vec<Vec<u8>> = alert.event_ids.iter().map(|event| event.to_bytes().to_vec()).collect();
            sqlx::query(
                "INSERT INTO alert_events (alert_id, event_id) SELECT $1, * FROM UNNEST($2::bytea[]) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&ids)
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

/// Upserts source positions; a row at a newer epoch than the given one is left as it is.
pub async fn write_progress(connection: &mut PgConnection, progress: &[SourceProgress]) -> Result<(), PostgresError> {
    let latest = crate::sinks::progress::latest_per_partition(progress);
    if latest.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = latest.values().map(|row| row.source.as_str()).collect();
    let partitions: Vec<&str> = latest.values().map(|row| row.partition.as_str()).collect();
    let positions: Vec<&str> = latest.values().map(|row| row.position.as_str()).collect();
    let epochs: Vec<i64> = latest.values().map(|row| sql_ms(row.epoch)).collect();
    sqlx::query(
        "INSERT INTO source_progress (source, partition, position, epoch) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) \
         ON CONFLICT (source, partition) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, \
         updated = now() WHERE source_progress.epoch <= excluded.epoch",
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&positions)
    .bind(&epochs)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
