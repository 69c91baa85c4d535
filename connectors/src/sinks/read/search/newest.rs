//! SQLite's short cut for a sliced scan with a small `take`: read the rows stored last (the end
//! of the table, in `seq` order, no index) instead of walking the time index slice by slice and
//! looking each entry's row up, and use them only when the time index proves they are the newest
//! matches of the whole range by time.
//!
//! The events are stored roughly in time order, so the newest rows of a range sit at the end of
//! the table. Reading from the end costs one sequential pass over the rows examined; the time
//! index costs a B-tree seek per row examined. The answer is the same: when the read finds the
//! `remaining` rows the take needs, with `s` the smallest `seq` and `t` the oldest time among
//! them, and no stored row of `[t, high)` has a `seq` below `s` (an index-only check), then every
//! row of `[t, high)` was examined, so the rows found are the range's newest matches. Otherwise
//! (fewer found, or older-stored rows in that range: late or replayed events) the caller reads
//! the range slice by slice through the time index as always. The statement reads the table
//! `NOT INDEXED`, so the planner cannot trade the `seq` order for the time index and a sort.

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use super::expr::Param;
use super::bind::sqlite_arguments;
use super::sql::CompiledSearch;
use super::values::sqlite_values;

/// Rows examined from the end of the table at most: past it the time index reads the range.
const MOST_EXAMINED: i64 = 32_768;
/// Largest `take` the short cut serves (it holds the rows it found before they are checked).
pub(super) const MOST_ROWS: i64 = 1_000;

/// The newest `remaining` matches of the range `params` binds (it ends at `high`), newest first,
/// with the oldest time among them, when the rows stored last prove to hold them; `None`: read
/// the range as always.
pub(super) async fn newest_stored(
    pool: &SqlitePool,
    search: &CompiledSearch,
    params: &[Param],
    high: DateTime<Utc>,
    remaining: i64,
) -> Result<Option<(Vec<Vec<Json>>, DateTime<Utc>)>, sqlx::Error> {
    let Some(sql) = &search.newest_stored_sql else { return Ok(None) };
    let Some(last) = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM events").fetch_one(pool).await? else {
        return Ok(None);
    };
    let arguments = sqlite_arguments(params.iter().chain([&Param::Int(last - MOST_EXAMINED)]));
    let rows = sqlx::query_with(AssertSqlSafe(sql.clone()), arguments?).fetch_all(pool).await?;
    if (rows.len() as i64) < remaining {
        return Ok(None);
    }
    let (seq_at, time_at) = (search.columns.len(), search.columns.len() + 1);
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        found.push((row.try_get::<i64, _>(time_at)?, row.try_get::<i64, _>(seq_at)?, sqlite_values(row, &search.columns)?));
    }
    let (Some(oldest), Some(lowest_seq)) = (found.iter().map(|row| row.0).min(), found.iter().map(|row| row.1).min()) else {
        return Ok(None);
    };
    let stored_earlier: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE time_us >= ?1 AND time_us < ?2 AND seq < ?3)")
            .bind(oldest)
            .bind(high.timestamp_micros())
            .bind(lowest_seq)
            .fetch_one(pool)
            .await?;
    if stored_earlier {
        return Ok(None);
    }
    found.sort_by_key(|(time, seq, _)| (Reverse(*time), Reverse(*seq)));
    let oldest = DateTime::from_timestamp_micros(oldest).unwrap_or(high);
    Ok(Some((found.into_iter().map(|(_, _, values)| values).collect(), oldest)))
}
