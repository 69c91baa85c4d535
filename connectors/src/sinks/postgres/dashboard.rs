//! Plain PostgreSQL's dashboard counts (`dashboard_1m`, `dashboard_1h`, see
//! `schemas/sql/postgres/plain/0102_dashboard_counts.sql`): kept up to date from each write's
//! rollup changes, and read by the dashboard queries, whole hours from the hourly table. The
//! counts are per tenant, like the rollups they come from; a read sums its scope's tenants.

use std::collections::BTreeMap;

use securewatch_schemas::{RollupKey, Tenant};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::sink::PostgresError;
use crate::sinks::rows::sql_ms;
use crate::sinks::read::{SeriesBy, TopField};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// The end of a statement whose `per_value(dimension, bucket, value, delta)` holds the
/// differences to add: adds them to the minute and the hour counts, locking rows in key order
/// (several workers' writes touch the same rows; one order means no deadlock between them).
const ADD_PER_VALUE: &str = "
    minutes AS (
        INSERT INTO dashboard_1m AS d (dimension, bucket_start_ms, tenant, value, count)
        SELECT dimension, bucket, tenant, value, SUM(delta)::bigint FROM per_value
        GROUP BY 1, 2, 3, 4 HAVING SUM(delta) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (dimension, bucket_start_ms, tenant, value) DO UPDATE SET count = d.count + excluded.count
    )
    INSERT INTO dashboard_1h AS d (dimension, bucket_start_ms, tenant, value, count)
    SELECT dimension, bucket - bucket % 3600000, tenant, value, SUM(delta)::bigint FROM per_value
    GROUP BY 1, 2, 3, 4 HAVING SUM(delta) <> 0 ORDER BY 1, 2, 3, 4
    ON CONFLICT (dimension, bucket_start_ms, tenant, value) DO UPDATE SET count = d.count + excluded.count";

/// Adds to the dashboard counts, for each rollup row in `latest` (its count after the write),
/// the difference to the row's stored count. Runs in the write's transaction *before* the
/// rollup rows are replaced; replaying a write finds no difference and adds nothing.
pub(super) async fn add_differences(
    connection: &mut PgConnection,
    latest: &BTreeMap<(&Tenant, &RollupKey, u64), i64>,
) -> Result<(), PostgresError> {
    let (mut source_bucket, mut kinds, mut hosts, mut severities, mut source_counts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut category_bucket, mut categories, mut category_counts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut source_tenants, mut category_tenants) = (Vec::new(), Vec::new());
    for (&(tenant, key, bucket), &count) in latest {
        match key {
            RollupKey::Source { kind, host, severity } => {
                source_tenants.push(tenant.as_str());
                source_bucket.push(sql_ms(bucket));
                kinds.push(kind.as_str());
                hosts.push(host.clone().unwrap_or_default());
                severities.push(i16::from(severity.code()));
                source_counts.push(count);
            }
            RollupKey::Category(name) => {
                category_tenants.push(tenant.as_str());
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
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::text[])
                    AS i(bucket, kind, host, severity, count, tenant)
            ), difference AS (
                SELECT i.bucket, i.tenant, i.kind, i.host, i.severity, i.count - COALESCE(r.count, 0) AS delta
                FROM input i LEFT JOIN rollup_source r ON r.bucket_start_ms = i.bucket AND r.tenant = i.tenant
                    AND r.source_kind = i.kind AND r.host = i.host AND r.severity = i.severity
            ), per_value AS (
                SELECT 'source'::text AS dimension, bucket, tenant, kind AS value, delta FROM difference
                UNION ALL SELECT 'host', bucket, tenant, host, delta FROM difference
                UNION ALL SELECT 'severity', bucket, tenant, severity::text, delta FROM difference
            ), {ADD_PER_VALUE}"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&source_bucket)
            .bind(&kinds)
            .bind(&hosts)
            .bind(&severities)
            .bind(&source_counts)
            .bind(&source_tenants)
            .execute(&mut *connection)
            .await?;
    }
    if !category_bucket.is_empty() {
        let sql = format!(
            "WITH input AS (
                SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[]) AS i(bucket, category, count, tenant)
            ), per_value AS (
                SELECT 'category'::text AS dimension, i.bucket, i.tenant, i.category AS value,
                    i.count - COALESCE(r.count, 0) AS delta
                FROM input i LEFT JOIN rollup_category r ON r.bucket_start_ms = i.bucket AND r.tenant = i.tenant
                    AND r.category = i.category
            ), {ADD_PER_VALUE}"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&category_bucket)
            .bind(&categories)
            .bind(&category_counts)
            .bind(&category_tenants)
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

/// Which counts table a [`Segment`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Minutes,
    Hours,
}

/// Rows of one table in `[from_ms, to_ms)`, added (`sign` 1) or taken away (-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    table: Table,
    from_ms: u64,
    to_ms: u64,
    sign: i8,
}

/// The segments whose signed sum counts the minute buckets starting in `[from_ms, to_ms)`. With
/// points of whole hours (`by_hours`), the whole hours inside the range come from the hourly
/// counts, and a partial hour at either end either from its minutes inside the range or, when
/// more than half of it is inside, from its hour less its minutes outside: at most half an
/// hour of minute rows per end.
fn segments(from_ms: u64, to_ms: u64, by_hours: bool) -> Vec<Segment> {
    let minutes = |from_ms, to_ms, sign| Segment { table: Table::Minutes, from_ms, to_ms, sign };
    let first_whole = from_ms.div_ceil(HOUR_MS).saturating_mul(HOUR_MS);
    let last_whole = to_ms - to_ms % HOUR_MS;
    if !by_hours || from_ms >= to_ms || first_whole > last_whole {
        return vec![minutes(from_ms, to_ms, 1)];
    }
    let mut segments = Vec::new();
    let (mut hours_from, mut hours_to) = (first_whole, last_whole);
    if from_ms < first_whole {
        if first_whole - from_ms > HOUR_MS / 2 {
            hours_from = first_whole - HOUR_MS;
            segments.push(minutes(hours_from, from_ms, -1));
        } else {
            segments.push(minutes(from_ms, first_whole, 1));
        }
    }
    if last_whole < to_ms {
        if to_ms - last_whole > HOUR_MS / 2 {
            hours_to = last_whole + HOUR_MS;
            segments.push(minutes(to_ms, hours_to, -1));
        } else {
            segments.push(minutes(last_whole, to_ms, 1));
        }
    }
    if hours_from < hours_to {
        segments.push(Segment { table: Table::Hours, from_ms: hours_from, to_ms: hours_to, sign: 1 });
    }
    segments
}

/// `counts(value, bucket_start_ms, count)` over `segments` for the dimension bound at $1 and
/// the rows that `tenants` (a checked tenant condition) keeps, each segment's range bound at
/// the next two placeholders. Only fixed fragments and that condition reach the text.
fn counts(segments: &[Segment], tenants: &str) -> String {
    let selects: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(index, segment)| {
            let table = match segment.table {
                Table::Minutes => "dashboard_1m",
                Table::Hours => "dashboard_1h",
            };
            let (from, to) = (2 + 2 * index, 3 + 2 * index);
            format!(
                "SELECT value, bucket_start_ms, count * {} AS count FROM {table} \
                 WHERE dimension = $1 AND bucket_start_ms >= ${from} AND bucket_start_ms < ${to} AND {tenants}",
                segment.sign
            )
        })
        .collect();
    format!("({}) AS counts", selects.join(" UNION ALL "))
}

/// Binds the dimension and the segments' ranges in the order [`counts`] numbers them.
fn bind_segments<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    dimension: &'q str,
    segments: &[Segment],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query = query.bind(dimension);
    for segment in segments {
        query = query.bind(sql_ms(segment.from_ms)).bind(sql_ms(segment.to_ms));
    }
    query
}

/// Rows `(value, point_start_ms, total)` of `dimension` over the minute buckets starting in
/// `[from_ms, to_ms)`, in points `width_ms` wide, zero totals left out, ordered by value (bytewise)
/// and point.
pub(super) async fn series(
    pool: &PgPool,
    dimension: &str,
    width_ms: u64,
    from_ms: u64,
    to_ms: u64,
    tenants: &str,
) -> Result<Vec<PgRow>, PostgresError> {
    if width_ms == MINUTE_MS {
        // One row per (tenant, value, minute): only the tenants are added up.
        let sql = format!(
            "SELECT value COLLATE \"C\" AS value, bucket_start_ms AS point_start_ms, SUM(count)::bigint AS total \
             FROM dashboard_1m WHERE dimension = $1 AND bucket_start_ms >= $2 AND bucket_start_ms < $3 \
             AND {tenants} GROUP BY 1, 2 HAVING SUM(count) <> 0 ORDER BY 1, 2"
        );
        let query = sqlx::query(AssertSqlSafe(sql)).bind(dimension).bind(sql_ms(from_ms)).bind(sql_ms(to_ms));
        return Ok(query.fetch_all(pool).await?);
    }
    let segments = segments(from_ms, to_ms, width_ms.is_multiple_of(HOUR_MS));
    let width = 2 + 2 * segments.len();
    let sql = format!(
        "SELECT value COLLATE \"C\" AS value, bucket_start_ms - bucket_start_ms % ${width} AS point_start_ms, \
         SUM(count)::bigint AS total FROM {} GROUP BY 1, 2 HAVING SUM(count) <> 0 ORDER BY 1, 2",
        counts(&segments, tenants)
    );
    let query = bind_segments(sqlx::query(AssertSqlSafe(sql)), dimension, &segments).bind(sql_ms(width_ms));
    Ok(query.fetch_all(pool).await?)
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
    tenants: &str,
) -> Result<Vec<PgRow>, PostgresError> {
    let segments = segments(from_ms, to_ms, true);
    let present = if skip_empty { "value <> ''" } else { "true" };
    let limit = 2 + 2 * segments.len();
    let sql = format!(
        "SELECT value COLLATE \"C\" AS value, SUM(count)::bigint AS total FROM {} WHERE {present} \
         GROUP BY 1 HAVING SUM(count) <> 0 ORDER BY 2 DESC, 1 LIMIT ${limit}",
        counts(&segments, tenants)
    );
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    Ok(bind_segments(sqlx::query(AssertSqlSafe(sql)), dimension, &segments).bind(n).fetch_all(pool).await?)
}

#[cfg(test)]
mod segment_tests {
    use super::*;

    const MINUTE: u64 = MINUTE_MS;

    /// The minutes `segments` counts, each with its total sign (hours spread over their minutes).
    fn coverage(segments: &[Segment]) -> BTreeMap<u64, i64> {
        let mut minutes = BTreeMap::new();
        for segment in segments {
            for minute in (segment.from_ms..segment.to_ms).step_by(MINUTE as usize) {
                *minutes.entry(minute).or_insert(0) += i64::from(segment.sign);
            }
        }
        minutes.retain(|_, sign| *sign != 0);
        minutes
    }

    #[test]
    fn segments_count_every_minute_of_the_range_once_and_nothing_else() {
        let hour = HOUR_MS;
        for (from, to) in [
            (17 * MINUTE, 3 * hour + 35 * MINUTE),
            (50 * MINUTE, 3 * hour + 10 * MINUTE),
            (hour, 4 * hour),
            (50 * MINUTE, hour + 10 * MINUTE),
            (hour + MINUTE, hour + 50 * MINUTE),
            (5 * MINUTE, 25 * hour + 55 * MINUTE),
        ] {
            for by_hours in [true, false] {
                let segments = segments(from, to, by_hours);
                let expected: BTreeMap<u64, i64> = (from..to).step_by(MINUTE as usize).map(|minute| (minute, 1)).collect();
                assert_eq!(coverage(&segments), expected, "{from}..{to} by hours {by_hours}: {segments:?}");
                let minute_rows: u64 = segments
                    .iter()
                    .filter(|segment| segment.table == Table::Minutes)
                    .map(|segment| (segment.to_ms - segment.from_ms) / MINUTE)
                    .sum();
                if by_hours && to - from >= 2 * hour {
                    assert!(minute_rows <= 60, "{from}..{to}: {minute_rows} minutes read: {segments:?}");
                }
            }
        }
        // Minute points never read hours; whole hours are read from the hourly counts.
        assert!(segments(0, 5 * hour, false).iter().all(|segment| segment.table == Table::Minutes));
        assert_eq!(segments(hour, 4 * hour, true), [Segment { table: Table::Hours, from_ms: hour, to_ms: 4 * hour, sign: 1 }]);
    }
}
