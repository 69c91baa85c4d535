//! Reads: the dashboard queries (time series and top-N over the rollups or the continuous aggregates), rollup rows, late counts, events.

use securewatch_schemas::RollupKey;
use securewatch_schemas::{Event, Source, Tenant, TenantScope};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::dashboard;
use super::sink::{Flavour, PostgresError, PostgresSink};
use crate::sinks::rows::{
    bucket_of, id_from_bytes, none_if_empty, rows_to_series, rows_to_top, severity_of, source_kind_of, sql_ms, tenant_condition,
};
use crate::sinks::read::{BucketWidth, Series, SeriesBy, TimeseriesQuery, TopEntry, TopField, TopQuery};

impl PostgresSink {
    /// The rows a dashboard query reads, as `(bucket_start_ms, source_kind, host, severity,
    /// count)` or `(bucket_start_ms, category, count)` with '' for none, restricted to buckets in
    /// `[$2, $3)` ms. Plain PostgreSQL: the dataflow's rollup tables. TimescaleDB: the continuous
    /// aggregate of `width` (real-time, so the newest buckets are read from the events).
    fn rollup_relation(&self, category: bool, width: BucketWidth) -> String {
        match (self.flavour, category) {
            (Flavour::Plain, false) => "rollup_source".to_string(),
            (Flavour::Plain, true) => "rollup_category".to_string(),
            (Flavour::Timescale, false) => format!(
                "(SELECT (extract(epoch FROM time) * 1000)::bigint AS bucket_start_ms, source_kind, \
                 COALESCE(host, '') AS host, severity, count, tenant FROM rollup_{width} \
                 WHERE time >= to_timestamp($2 / 1000.0) AND time < to_timestamp($3 / 1000.0)) AS aggregate",
                width = width.as_str()
            ),
            (Flavour::Timescale, true) => format!(
                "(SELECT (extract(epoch FROM time) * 1000)::bigint AS bucket_start_ms, \
                 COALESCE(category, '') AS category, count, tenant FROM rollup_category_{width} \
                 WHERE time >= to_timestamp($2 / 1000.0) AND time < to_timestamp($3 / 1000.0)) AS aggregate",
                width = width.as_str()
            ),
        }
    }

    /// Event counts per point of `query.bucket` over the buckets starting in `[from_ms, to_ms)`,
    /// one series per value of `query.by`, in key order, points oldest first, zero points left
    /// out: the answer of `SqliteStore::timeseries`.
    /// Only rows of `scope`'s tenants count.
    pub async fn timeseries(&self, query: &TimeseriesQuery, scope: &TenantScope) -> Result<Vec<Series>, PostgresError> {
        let tenants = tenant_condition("tenant", scope);
        let (value, category) = match query.by {
            SeriesBy::Source => ("source_kind", false),
            SeriesBy::Host => ("host", false),
            SeriesBy::Severity => ("severity::text", false),
            SeriesBy::Category => ("category", true),
        };
        let rows = if self.flavour == Flavour::Plain {
            let dimension = dashboard::series_dimension(query.by);
            dashboard::series(&self.pool, dimension, query.bucket.millis(), query.from_ms, query.to_ms, &tenants).await?
        } else {
            let relation = self.rollup_relation(category, query.bucket);
            // Only fixed column names, relations and the checked tenant condition are
            // interpolated; values are bound.
            let sql = format!(
                "SELECT {value} COLLATE \"C\" AS value, bucket_start_ms - bucket_start_ms % $1 AS point_start_ms, \
                 SUM(count)::bigint AS total FROM {relation} WHERE bucket_start_ms >= $2 AND bucket_start_ms < $3 \
                 AND {tenants} GROUP BY 1, 2 HAVING SUM(count) <> 0 ORDER BY 1, 2"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(sql_ms(query.bucket.millis()))
                .bind(sql_ms(query.from_ms))
                .bind(sql_ms(query.to_ms))
                .fetch_all(&self.pool)
                .await?
        };
        rows_to_series(query.by, &rows, severity_code)
    }

    /// The `query.n` values of `query.field` with the most events in the minute buckets starting
    /// in `[from_ms, to_ms)`, most first, ties by value: the answer of `SqliteStore::top`.
    /// Only rows of `scope`'s tenants count.
    pub async fn top(&self, query: &TopQuery, scope: &TenantScope) -> Result<Vec<TopEntry>, PostgresError> {
        let tenants = tenant_condition("tenant", scope);
        let (value, category, present) = match query.field {
            TopField::Host => ("host", false, "host <> ''"),
            TopField::Category => ("category", true, "category <> ''"),
            TopField::Severity => ("severity::text", false, "true"),
            TopField::Source => ("source_kind", false, "true"),
        };
        let rows = if self.flavour == Flavour::Plain {
            let skip_empty = matches!(query.field, TopField::Host | TopField::Category);
            let dimension = dashboard::top_dimension(query.field);
            dashboard::top(&self.pool, dimension, query.from_ms, query.to_ms, query.n, skip_empty, &tenants).await?
        } else {
            let relation = self.rollup_relation(category, BucketWidth::Minute);
            let sql = format!(
                "SELECT {value} COLLATE \"C\" AS value, SUM(count)::bigint AS total FROM {relation} \
                 WHERE $1::bigint IS NOT NULL AND bucket_start_ms >= $2 AND bucket_start_ms < $3 AND {present} AND {tenants} \
                 GROUP BY 1 HAVING SUM(count) <> 0 ORDER BY 2 DESC, 1 LIMIT $4"
            );
            // $1 is unused here; it keeps the relation's range at $2 and $3 as in `timeseries`.
            sqlx::query(AssertSqlSafe(sql))
                .bind(0i64)
                .bind(sql_ms(query.from_ms))
                .bind(sql_ms(query.to_ms))
                .bind(i64::try_from(query.n).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?
        };
        rows_to_top(query.field, &rows, severity_code)
    }

    /// Every row of the dataflow's rollup tables as `(key, bucket_start_ms, count)`, sorted like
    /// `SqliteStore::rollup_rows`, so both stores can be compared.
    pub async fn rollup_rows(&self) -> Result<Vec<(RollupKey, u64, i64)>, PostgresError> {
        let mut rows = Vec::new();
        let source: Vec<(i64, String, String, i16, i64)> =
            sqlx::query_as("SELECT bucket_start_ms, source_kind, host, severity, count FROM rollup_source")
                .fetch_all(&self.pool)
                .await?;
        for (bucket, kind, host, severity, count) in source {
            let kind = source_kind_of(&kind)?;
            let key = RollupKey::Source { kind, host: none_if_empty(host), severity: severity_of(i64::from(severity))? };
            rows.push((key, bucket_of(bucket)?, count));
        }
        let category: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT bucket_start_ms, category, count FROM rollup_category").fetch_all(&self.pool).await?;
        for (bucket, category, count) in category {
            rows.push((RollupKey::Category(none_if_empty(category)), bucket_of(bucket)?, count));
        }
        let hosts: Vec<(i64, i64)> =
            sqlx::query_as("SELECT bucket_start_ms, distinct_hosts FROM rollup_hosts").fetch_all(&self.pool).await?;
        for (bucket, count) in hosts {
            rows.push((RollupKey::DistinctHosts, bucket_of(bucket)?, count));
        }
        rows.sort();
        Ok(rows)
    }

    /// Late-event counts of the buckets starting in `[from_ms, to_ms)`, oldest first.
    pub async fn late_counts(&self, from_ms: u64, to_ms: u64) -> Result<Vec<(u64, i64)>, PostgresError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT bucket_start_ms, count FROM rollup_late \
             WHERE bucket_start_ms >= $1 AND bucket_start_ms < $2 ORDER BY bucket_start_ms",
        )
        .bind(sql_ms(from_ms))
        .bind(sql_ms(to_ms))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|(bucket, count)| Ok((bucket_of(bucket)?, count))).collect()
    }

}

/// A severity's dashboard `value`: its code as text (a value not a number fails as out of range).
fn severity_code(row: &PgRow) -> Result<i64, sqlx::Error> {
    Ok(row.try_get::<String, _>("value")?.parse().unwrap_or(-1))
}

pub(super) fn row_to_event(row: &PgRow) -> Result<Event, PostgresError> {
    let kind: String = row.try_get("source_kind")?;
    let fields: String = row.try_get("fields")?;
    let severity: i16 = row.try_get("severity")?;
    Ok(Event {
        id: id_from_bytes(row.try_get("id")?)?,
        time: row.try_get("time")?,
        received: row.try_get("received")?,
        source: Source {
            kind: source_kind_of(&kind)?,
            name: row.try_get("source_name")?,
            peer: row.try_get("peer")?,
        },
        tenant: Tenant::from_stored(row.try_get("tenant")?),
        host: row.try_get("host")?,
        severity: severity_of(i64::from(severity))?,
        category: row.try_get("category")?,
        message: row.try_get("message")?,
        fields: serde_json::from_str(&fields)?,
        raw: row.try_get("raw")?,
    })
}

