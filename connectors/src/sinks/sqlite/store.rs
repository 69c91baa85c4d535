//! The SQLite store itself (opening, pools, checkpoints, closing) and its event and dead-letter inserts.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::str::FromStr;

use securewatch_schemas::{Event, EventId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Sqlite, SqliteConnection};

use super::config::{SqliteConfig, Synchronous};
use crate::CancellationToken;
use crate::sinks::{DeadLetter, WriteSummary};

/// Rows per multi-row INSERT statement (13 bound values each, below SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 2000;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened.
    #[error("cannot open the event store at {path}: {source}")]
    Open {
        /// The database file's path.
        path: String,
        /// The underlying error.
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("cannot migrate the event store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("event store: {0}")]
    Sql(#[from] sqlx::Error),
    /// A store file failed SQLite's integrity check.
    #[error("the store {path} is damaged: {problems}")]
    Damaged {
        /// The database file's path.
        path: String,
        /// What `PRAGMA integrity_check` reported.
        problems: String,
    },
    /// Fields could not be serialised to JSON.
    #[error("cannot encode fields as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The SQLite event store. Cheap to clone (connection pools).
///
/// Writes go through one dedicated connection, so its page cache stays warm and SQLite's single
/// writer never waits on a lock; reads (the API) use a separate pool and see committed data
/// through WAL without blocking the writer.
///
/// WAL checkpoints run on a third connection in the background after commits (at most one at a
/// time), instead of inside the writer's commit as SQLite's auto-checkpoint would do.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The single writer connection; `rollups` writes through it too.
    pub(super) writer: SqlitePool,
    checkpointer: SqlitePool,
    checkpointing: Arc<AtomicBool>,
    /// Cancelled by [`SqliteStore::close`]: background tasks (retention) end with it.
    closed: CancellationToken,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and applies the migrations.
    pub async fn open(data_dir: &Path, config: &SqliteConfig) -> Result<SqliteStore, StoreError> {
        let path = data_dir.join(&config.file);
        let open_error = |source| StoreError::Open { path: path.display().to_string(), source };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(std::time::Duration::from_secs(10))
            // 64 MiB page cache per connection (SQLite's default is 2 MiB): the unique index on
            // random 128-bit ids otherwise thrashes once it outgrows the cache.
            .pragma("cache_size", "-65536");
        let single = || SqlitePoolOptions::new().max_connections(1);
        // The writer never checkpoints by itself below 256 MiB of WAL (a safety net only).
        let writer_options = options.clone().pragma("wal_autocheckpoint", "65536");
        let writer = single().connect_with(writer_options).await.map_err(open_error)?;
        let checkpointer = single().connect_with(options.clone()).await.map_err(open_error)?;
        sqlx::migrate!("../schemas/sql/sqlite").run(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).with_regexp()) // `REGEXP`: the search language's `has`, `matches regex`
            .await
            .map_err(open_error)?;
        let checkpointing = Arc::new(AtomicBool::new(false));
        Ok(SqliteStore { pool, writer, checkpointer, checkpointing, closed: CancellationToken::new() })
    }

    /// The read-only connection pool, for queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Whether the store answers a trivial query (the health check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Starts a passive WAL checkpoint unless one is running: it copies committed pages into
    /// the database file without blocking the writer, keeping the WAL short.
    pub(super) fn checkpoint_in_background(&self) {
        if self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (checkpointer, running) = (self.checkpointer.clone(), Arc::clone(&self.checkpointing));
        tokio::spawn(async move {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&checkpointer).await {
                tracing::warn!(%error, "WAL checkpoint failed.");
            }
            running.store(false, Ordering::Release);
        });
    }

    /// Whether [`SqliteStore::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Completes when [`SqliteStore::close`] is called.
    pub(super) async fn closing(&self) {
        self.closed.cancelled().await
    }

    /// Closes the pools after a final WAL checkpoint.
    pub async fn close(&self) {
        self.closed.cancel();
        self.pool.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.writer).await;
        self.writer.close().await;
        self.checkpointer.close().await;
    }
}

/// Inserts events, skipping those whose (time, id) is stored already.
///
/// Statements of [`ROWS_PER_STATEMENT`] rows run on SQLite's worker thread while this task
/// encodes the arguments of the next one, so encoding and inserting overlap.
pub(super) async fn insert_events(connection: &mut SqliteConnection, events: &[Event]) -> Result<(WriteSummary, Vec<EventId>), StoreError> {
    let mut summary = WriteSummary::default();
    let mut duplicates = Vec::new();
    let full_sql = insert_events_sql(ROWS_PER_STATEMENT);
    let mut chunks = events.chunks(ROWS_PER_STATEMENT).peekable();
    let Some(first) = chunks.next() else { return Ok((summary, duplicates)) };
    let mut current = (first.len(), event_arguments(first)?);
    let mut offset = 0;
    loop {
        let (rows, arguments) = current;
        let chunk = &events[offset..offset + rows];
        offset += rows;
        // Built here from counts only: no data in the SQL text.
        let sql = if rows == ROWS_PER_STATEMENT { full_sql.clone() } else { insert_events_sql(rows) };
        let execution = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments).execute(&mut *connection);
        let next = chunks.next();
        let (inserted, next) = tokio::join!(execution, async { next.map(|chunk| Ok::<_, StoreError>((chunk.len(), event_arguments(chunk)?))) });
        let inserted = inserted?.rows_affected();
        summary.written += inserted;
        summary.duplicates += rows as u64 - inserted;
        if inserted < rows as u64 {
            duplicates.extend(stored_before(connection, chunk, inserted).await?);
        }
        match next {
            Some(next) => current = next?,
            None => return Ok((summary, duplicates)),
        }
    }
}

/// The ids of `chunk`'s events that were stored before the INSERT that just stored `inserted`
/// of them: the new rows took the `inserted` highest `seq`s (SQLite gives each new row the
/// highest rowid + 1), so the older ones lie below those. Runs only for chunks with duplicates.
async fn stored_before(connection: &mut SqliteConnection, chunk: &[Event], inserted: u64) -> Result<Vec<EventId>, StoreError> {
    if inserted == 0 {
        return Ok(chunk.iter().map(|event| event.id).collect());
    }
    let last: i64 = sqlx::query_scalar("SELECT last_insert_rowid()").fetch_one(&mut *connection).await?;
    let newest_old = last - inserted as i64;
    let mut older = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for event in chunk {
        // The same event twice in one statement: stored once, the second is a duplicate.
        if !seen.insert(event.id) {
            older.push(event.id);
            continue;
        }
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM events WHERE time_us = ? AND id = ?")
            .bind(event.time.timestamp_micros())
            .bind(event.id.to_bytes().to_vec())
            .fetch_optional(&mut *connection)
            .await?;
        if seq.is_some_and(|seq| seq <= newest_old) {
            older.push(event.id);
        }
    }
    Ok(older)
}

/// `INSERT OR IGNORE` of `rows` events, 13 placeholders each.
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO events (id, time_us, received_us, source_kind, source_name, \
         peer, host, severity, category, message, fields, raw, tenant) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

/// The bound values of [`insert_events_sql`] for `events`, in column order.
fn event_arguments(events: &[Event]) -> Result<SqliteArguments, StoreError> {
    fn add<'q, T: sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite> + 'q>(
        arguments: &mut SqliteArguments,
        value: T,
    ) -> Result<(), StoreError> {
        arguments.add(value).map_err(|error| StoreError::Sql(sqlx::Error::Encode(error)))
    }
    let mut arguments = SqliteArguments::default();
    for event in events {
        add(&mut arguments, event.id.to_bytes().to_vec())?;
        add(&mut arguments, event.time.timestamp_micros())?;
        add(&mut arguments, event.received.timestamp_micros())?;
        add(&mut arguments, event.source.kind.as_str())?;
        add(&mut arguments, event.source.name.as_str())?;
        add(&mut arguments, event.source.peer.as_deref())?;
        add(&mut arguments, event.host.as_deref())?;
        add(&mut arguments, i64::from(event.severity.code()))?;
        add(&mut arguments, event.category.as_deref())?;
        add(&mut arguments, event.message.as_str())?;
        add(&mut arguments, serde_json::to_string(&event.fields)?)?;
        add(&mut arguments, event.raw.as_deref())?;
        add(&mut arguments, event.tenant.as_str())?;
    }
    Ok(arguments)
}

/// Inserts dead letters; returns how many.
pub(super) async fn insert_dead_letters(connection: &mut SqliteConnection, dead_letters: &[DeadLetter]) -> Result<u64, StoreError> {
    for letter in dead_letters {
        sqlx::query(
            "INSERT INTO dead_letters (received_us, source_kind, source_name, peer, reason, \
             detail, body, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(letter.record.received.timestamp_micros())
        .bind(letter.record.kind.as_str())
        .bind(&*letter.record.source_name)
        .bind(letter.record.peer.as_deref())
        .bind(letter.reason)
        .bind(&letter.detail)
        .bind(&letter.record.body)
        .bind(letter.record.tenant.as_str())
        .execute(&mut *connection)
        .await?;
    }
    Ok(dead_letters.len() as u64)
}
