//! Plain PostgreSQL's dashboard counts (`dashboard_1m`, `dashboard_1h`, see
//! `schemas/sql/postgres/plain/0102_dashboard_counts.sql`): kept up to date from each write's
//! rollup changes, and read by the dashboard queries, whole hours from the hourly table.

use std::collections::BTreeMap;

use securewatch_operators::RollupKey;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::sink::{sql_ms, PostgresError};
use crate::sinks::sqlite::{SeriesBy, TopField};

const HOUR_MS: u64 = 3_600_000;

/// The end of a statement whose `per_value(dimension, bucket, value, delta)` holds the
/// differences to add: adds them to the minute and the hour counts.
const ADD_PER_VALUE: &str = "
    minutes AS (
        INSERT INTO dashboard_1m AS d (dimension, bucket_start_ms, value, count)
        SELECT dimension, bucket, value, SUM(delta)::bigint FROM per_value
        GROUP BY 1, 2, 3 HAVING SUM(delta) <> 0
        ON CONFLICT (dimension, bucket_start_ms, value) DO UPDATE SET count = d.count + excluded.count
    )
    INSERT INTO dashboard_1h AS d (dimension, bucket_start_ms, value, count)
    SELECT dimension, bucket - bucket % 3600000, value, SUM(delta)::bigint FROM per_value
    GROUP BY 1, 2, 3 HAVING SUM(delta) <> 0
    ON CONFLICT (dimension, bucket_start_ms, value) DO UPDATE SET count = d.count + excluded.count";

/// Adds to the dashboard counts, for each rollup row in `latest` (its count after the write),
/// the difference to the row's stored count. Runs in the write's transaction *before* the
/// rollup rows are replaced; replaying a write finds no difference and adds nothing.
pub(super) async fn add_differences(
    connection: &mut PgConnection,
    latest: &BTreeMap<(&RollupKey, u64), i64>,
) -> Result<(), PostgresError> {
    let (mut source_bucket, mut kinds, mut hosts, mut severities, mut source_counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut category_bucket, mut categories, mut category_counts) = (Vec::new(), Vec::new(), Vec::new());
    for (&(key, bucket), &count) in latest {
        match key {
            RollupKey::Source { kind, host, severity } => {
                source_bucket.push(sql_ms(bucket));
                kinds.push(kind.as_str());
                hosts.push(host.clone().unwrap_or_default());
                severities.push(i16::from(severity.code()));
                source_counts.push(count);
            }
            RollupKey::Category(name) => {
                category_bucket.push(sql_ms(bucket));
                categories.push(name.clone().unwrap_or_default());
                category_counts.push(count);
            }
            RollupKey::DistinctHosts => {}
        }
    }
    if !source_bucket.is_empty() {
        let sql = format!(
            "WITH input AS (
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[])
                    AS i(bucket, kind, host, severity, count)
            ), difference AS (
                SELECT i.bucket, i.kind, i.host, i.severity, i.count - COALESCE(r.count, 0) AS delta
                FROM input i LEFT JOIN rollup_source r ON r.bucket_start_ms = i.bucket
                    AND r.source_kind = i.kind AND r.host = i.host AND r.severity = i.severity
            ), per_value AS (
                SELECT 'source'::text AS dimension, bucket, kind AS value, delta FROM difference
                UNION ALL SELECT 'host', bucket, host, delta FROM difference
                UNION ALL SELECT 'severity', bucket, severity::text, delta FROM difference
            ), {ADD_PER_VALUE}"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&source_bucket)
            .bind(&kinds)
            .bind(&hosts)
            .bind(&severities)
            .bind(&source_counts)
            .execute(&mut *connection)
            .await?;
    }
    if !category_bucket.is_empty() {
        let sql = format!(
            "WITH input AS (
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) AS i(bucket, category, count)
            ), per_value AS (
                SELECT 'category'::text AS dimension, i.bucket, i.category AS value, i.count - COALESCE(r.count, 0) AS delta
                FROM input i LEFT JOIN rollup_category r ON r.bucket_start_ms = i.bucket AND r.category = i.category
            ), {ADD_PER_VALUE}"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&category_bucket)
            .bind(&categories)
            .bind(&category_counts)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// The `dimension` of a time series split by `by`.
pub(super) fn series_dimension(by: SeriesBy) -> &'static str {
    match by {
        SeriesBy::Source => "source",
        SeriesBy::Host => "host",
        SeriesBy::Severity => "severity",
        SeriesBy::Category => "category",
    }
}

/// The `dimension` a top-N of `field` ranks.
pub(super) fn top_dimension(field: TopField) -> &'static str {
    match field {
        TopField::Source => "source",
        TopField::Host => "host",
        TopField::Severity => "severity",
        TopField::Category => "category",
    }
}

/// A query's minute range `[from_ms, to_ms)` split into the whole hours inside it, read from
/// `dashboard_1h` when the answer's points are whole hours (`by_hours`), and the minutes
/// before and after them, read from `dashboard_1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    from_ms: u64,
    hours_from_ms: u64,
    hours_to_ms: u64,
    to_ms: u64,
}

impl Split {
    fn new(from_ms: u64, to_ms: u64, by_hours: bool) -> Split {
        let hours_from_ms = from_ms.div_ceil(HOUR_MS).saturating_mul(HOUR_MS);
        let hours_to_ms = to_ms - to_ms % HOUR_MS;
        if by_hours && hours_from_ms < hours_to_ms {
            Split { from_ms, hours_from_ms, hours_to_ms, to_ms }
        } else {
            Split { from_ms, hours_from_ms: to_ms, hours_to_ms: to_ms, to_ms }
        }
    }
}

/// `(value, bucket_start_ms, count)` rows of `dimension` ($1) over a [`Split`] ($2..$5).
const COUNTS: &str = "(
    SELECT value, bucket_start_ms, count FROM dashboard_1m
        WHERE dimension = $1 AND bucket_start_ms >= $2 AND bucket_start_ms < $3
    UNION ALL
    SELECT value, bucket_start_ms, count FROM dashboard_1h
        WHERE dimension = $1 AND bucket_start_ms >= $3 AND bucket_start_ms < $4
    UNION ALL
    SELECT value, bucket_start_ms, count FROM dashboard_1m
        WHERE dimension = $1 AND bucket_start_ms >= $4 AND bucket_start_ms < $5
) AS counts";

/// Rows `(value, point_start_ms, total)` of `dimension` over the minute buckets starting in
/// `[from_ms, to_ms)`, in points `width_ms` wide, zero totals left out, ordered by value (bytewise)
/// and point.
pub(super) async fn series(
    pool: &PgPool,
    dimension: &str,
    width_ms: u64,
    from_ms: u64,
    to_ms: u64,
) -> Result<Vec<PgRow>, PostgresError> {
    let split = Split::new(from_ms, to_ms, width_ms % HOUR_MS == 0);
    let sql = format!(
        "SELECT value COLLATE \"C\" AS value, bucket_start_ms - bucket_start_ms % $6 AS point_start_ms, \
         SUM(count)::bigint AS total FROM {COUNTS} GROUP BY 1, 2 HAVING SUM(count) <> 0 ORDER BY 1, 2"
    );
    Ok(bind_split(sqlx::query(AssertSqlSafe(sql)), dimension, split).bind(sql_ms(width_ms)).fetch_all(pool).await?)
}

/// Rows `(value, total)`: the `n` values of `dimension` with the highest totals over the minute
/// buckets starting in `[from_ms, to_ms)`, highest first, ties by value; `''` (none) left out
/// when `skip_empty`.
pub(super) async fn top(
    pool: &PgPool,
    dimension: &str,
    from_ms: u64,
    to_ms: u64,
    n: usize,
    skip_empty: bool,
) -> Result<Vec<PgRow>, PostgresError> {
    let split = Split::new(from_ms, to_ms, true);
    let present = if skip_empty { "value <> ''" } else { "true" };
    let sql = format!(
        "SELECT value COLLATE \"C\" AS value, SUM(count)::bigint AS total FROM {COUNTS} WHERE {present} \
         GROUP BY 1 HAVING SUM(count) <> 0 ORDER BY 2 DESC, 1 LIMIT $6"
    );
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    Ok(bind_split(sqlx::query(AssertSqlSafe(sql)), dimension, split).bind(n).fetch_all(pool).await?)
}

fn bind_split<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    dimension: &'q str,
    split: Split,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(dimension)
        .bind(sql_ms(split.from_ms))
        .bind(sql_ms(split.hours_from_ms))
        .bind(sql_ms(split.hours_to_ms))
        .bind(sql_ms(split.to_ms))
}

#[cfg(test)]
mod split_tests {
    use super::*;

    #[test]
    fn whole_hours_inside_the_range_come_from_the_hourly_counts() {
        let hour = HOUR_MS;
        // 00:17 .. 03:35 by hours: minutes 00:17..01:00, hours 01:00..03:00, minutes 03:00..03:35.
        let split = Split::new(17 * 60_000, 3 * hour + 35 * 60_000, true);
        assert_eq!((split.hours_from_ms, split.hours_to_ms), (hour, 3 * hour));
        // Aligned ends: everything from the hours.
        assert_eq!(Split::new(hour, 4 * hour, true), Split { from_ms: hour, hours_from_ms: hour, hours_to_ms: 4 * hour, to_ms: 4 * hour });
        // Inside one hour, or minute points: minutes only.
        let inside = Split::new(hour + 60_000, hour + 50 * 60_000, true);
        assert_eq!((inside.hours_from_ms, inside.hours_to_ms), (inside.to_ms, inside.to_ms));
        let minutes = Split::new(0, 5 * hour, false);
        assert_eq!((minutes.hours_from_ms, minutes.hours_to_ms), (5 * hour, 5 * hour));
    }
}
