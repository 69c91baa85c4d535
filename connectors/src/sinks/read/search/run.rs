//! Runs a compiled search on a pool: binds the parameters, streams rows one by one into the
//! caller's sink, and reports the share of the time range scanned.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde_json::Value as Json;
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

use super::bind::{postgres_arguments, sqlite_arguments};
use super::expr::Param;
use super::newest;
use super::sql::{CompiledSearch, SearchPath};
use super::values::{postgres_values, sqlite_values};

/// Time slices a sliced scan divides its range into: progress moves by this share.
pub const SLICES: u32 = 20;

/// Where the rows of a running search go.
pub trait SearchSink: Send {
    /// One result row, its values in column order. Answers `false` to stop reading.
    fn row(&mut self, row: Vec<Json>) -> bool;
    /// The share of the time range scanned so far (0–1).
    fn progress(&mut self, scanned: f64);
    /// Whether it wants the stored rows read counted ([`SearchSink::scanned`]): a count
    /// statement per slice read, so only jobs ask.
    fn wants_scanned(&self) -> bool {
        false
    }
    /// The stored rows read so far: the events (or rollup rows) in the time slices read.
    fn scanned(&mut self, _rows: u64) {}
}

/// How a search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchOutcome {
    /// Rows handed to the sink.
    pub rows: u64,
    /// The sink stopped the reading before the end.
    pub stopped: bool,
}

/// A pool to run on.
pub(in crate::sinks::read) enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// Runs `search` over `[from, to)`; a sliced scan reads newest slice first.
pub(in crate::sinks::read) async fn run(
    pool: Pool<'_>,
    search: &CompiledSearch,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sink: &mut dyn SearchSink,
) -> Result<SearchOutcome, sqlx::Error> {
    let mut outcome = SearchOutcome { rows: 0, stopped: false };
    if search.path != SearchPath::SlicedScan {
        read(&pool, search, &search.params, sink, &mut outcome).await?;
        if sink.wants_scanned() {
            let scanned = count_scanned(&pool, search, &search.params).await?;
            sink.scanned(scanned);
        }
        sink.progress(1.0);
        return Ok(outcome);
    }
    let mut params = search.params.clone();
    if let (Pool::Sqlite(sqlite), Some(take)) = (&pool, search.take) {
        if take as i64 <= newest::MOST_ROWS {
            params[0] = Param::Time(from);
            params[1] = Param::Time(to);
            *params.last_mut().expect("a sliced scan binds its limit last") = Param::Int(take as i64);
            if let Some((rows, oldest)) = newest::newest_stored(sqlite, search, &params, to, take as i64).await? {
                for row in rows {
                    outcome.rows += 1;
                    if !sink.row(row) {
                        outcome.stopped = true;
                        break;
                    }
                }
                if sink.wants_scanned() {
                    // The part of the range read: every stored row from the oldest found on.
                    params[0] = Param::Time(oldest);
                    let scanned = count_scanned(&pool, search, &params).await?;
                    sink.scanned(scanned);
                }
                sink.progress(1.0);
                return Ok(outcome);
            }
        }
    }
    let mut scanned = 0;
    let span = (to - from).num_microseconds().unwrap_or(i64::MAX).max(0);
    let slices = if span == 0 { 1 } else { SLICES };
    for slice in 0..slices {
        let remaining = search.take.map_or(i64::MAX, |take| take.saturating_sub(outcome.rows) as i64);
        if remaining == 0 {
            break;
        }
        let high = to - chrono::Duration::microseconds(span / i64::from(slices) * i64::from(slice));
        let low = if slice + 1 == slices { from } else { to - chrono::Duration::microseconds(span / i64::from(slices) * i64::from(slice + 1)) };
        params[0] = Param::Time(low);
        params[1] = Param::Time(high);
        *params.last_mut().expect("a sliced scan binds its limit last") = Param::Int(remaining);
        read(&pool, search, &params, sink, &mut outcome).await?;
        if sink.wants_scanned() {
            scanned += count_scanned(&pool, search, &params).await?;
            sink.scanned(scanned);
        }
        sink.progress(f64::from(slice + 1) / f64::from(slices));
        if outcome.stopped {
            break;
        }
    }
    sink.progress(1.0);
    Ok(outcome)
}

/// The stored rows `search` reads with `params` (see [`CompiledSearch::scanned_sql`]).
async fn count_scanned(pool: &Pool<'_>, search: &CompiledSearch, params: &[Param]) -> Result<u64, sqlx::Error> {
    let params = &params[..search.scanned_params.min(params.len())];
    let count: i64 = match pool {
        Pool::Sqlite(pool) => {
            let query = sqlx::query_scalar_with(AssertSqlSafe(search.scanned_sql.clone()), sqlite_arguments(params)?);
            query.fetch_one(*pool).await?
        }
        Pool::Postgres(pool) => {
            let query = sqlx::query_scalar_with(AssertSqlSafe(search.scanned_sql.clone()), postgres_arguments(params)?);
            query.fetch_one(*pool).await?
        }
    };
    Ok(count.max(0) as u64)
}

async fn read(
    pool: &Pool<'_>,
    search: &CompiledSearch,
    params: &[Param],
    sink: &mut dyn SearchSink,
    outcome: &mut SearchOutcome,
) -> Result<(), sqlx::Error> {
    match pool {
        Pool::Sqlite(pool) => {
            let query = sqlx::query_with(AssertSqlSafe(search.sql.clone()), sqlite_arguments(params)?);
            let mut rows = query.fetch(*pool);
            while let Some(row) = rows.try_next().await? {
                outcome.rows += 1;
                if !sink.row(sqlite_values(&row, &search.columns)?) {
                    outcome.stopped = true;
                    break;
                }
            }
        }
        Pool::Postgres(pool) => {
            let query = sqlx::query_with(AssertSqlSafe(search.sql.clone()), postgres_arguments(params)?);
            let mut rows = query.fetch(*pool);
            while let Some(row) = rows.try_next().await? {
                outcome.rows += 1;
                if !sink.row(postgres_values(&row, &search.columns)?) {
                    outcome.stopped = true;
                    break;
                }
            }
        }
    }
    Ok(())
}
