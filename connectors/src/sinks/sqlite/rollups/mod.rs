//! Rollup tables: the dataflow's rollup changes and late counts written idempotently, and the dashboard queries over them.

use securewatch_schemas::{RollupChange, RollupKey, TenantScope};
use securewatch_schemas::{Severity, SourceKind};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqliteConnection};

mod dashboard;

use super::store::{SqliteStore, StoreError};
use crate::sinks::rows::{
    bucket_of, latest_counts, none_if_empty, rows_to_series, rows_to_top, severity_of, source_kind_of, sql_ms, tenant_condition,
};
use crate::sinks::read::{Series, SeriesBy, TimeseriesQuery, TopEntry, TopField, TopQuery};

/// Rows per multi-row INSERT (at most 5 bound values each, well below SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 2000;
/// Rows per multi-row DELETE. A DELETE is an OR of primary-key equalities, which SQLite answers
/// with one index seek per row (a row-value `IN (VALUES ...)` would scan the whole table); the
/// OR chain must stay well below SQLite's expression depth limit of 1000.
const DELETES_PER_STATEMENT: usize = 250;

/// Rollup changes by table, the last change of each row winning, as upserts and deletes.
/// Every row names its tenant (the second value).
#[derive(Default)]
struct ChangesByTable<'a> {
    source_upserts: Vec<(u64, &'a str, SourceKind, &'a str, Severity, i64)>,
    source_deletes: Vec<(u64, &'a str, SourceKind, &'a str, Severity)>,
    category_upserts: Vec<(u64, &'a str, &'a str, i64)>,
    category_deletes: Vec<(u64, &'a str, &'a str)>,
    hosts_upserts: Vec<(u64, &'a str, i64)>,
    hosts_deletes: Vec<(u64, &'a str)>,
}

impl<'a> ChangesByTable<'a> {
    fn new(changes: &'a [RollupChange]) -> Self {
        // Consolidate first, so that a row changed twice in `changes` ends at its last count
        // whichever statement (upsert or delete) runs first.
        let latest = latest_counts(changes);
        let mut split = ChangesByTable::default();
        for ((tenant, key, bucket), count) in latest {
            let tenant = tenant.as_str();
            match key {
                RollupKey::Source { kind, host, severity } => {
                    let host = host.as_deref().unwrap_or("");
                    if count == 0 {
                        split.source_deletes.push((bucket, tenant, *kind, host, *severity));
                    } else {
                        split.source_upserts.push((bucket, tenant, *kind, host, *severity, count));
                    }
                }
                RollupKey::Category(category) => {
                    let category = category.as_deref().unwrap_or("");
                    if count == 0 {
                        split.category_deletes.push((bucket, tenant, category));
                    } else {
                        split.category_upserts.push((bucket, tenant, category, count));
                    }
                }
                RollupKey::DistinctHosts => {
                    if count == 0 {
                        split.hosts_deletes.push((bucket, tenant));
                    } else {
                        split.hosts_upserts.push((bucket, tenant, count));
                    }
                }
            }
        }
        split
    }
}

/// Applies rollup changes inside the caller's transaction: upserts each row's count, deleting
/// rows whose count is zero. Idempotent: applying the same changes again leaves the tables as
/// they are. When a row changes more than once in `changes`, its last change wins. Returns the
/// number of rows upserted or deleted. The per-dimension counts follow (see [`dashboard`]).
pub async fn apply_rollup_changes(tx: &mut SqliteConnection, changes: &[RollupChange]) -> Result<u64, StoreError> {
    dashboard::add_differences(&mut *tx, &latest_counts(changes)).await?;
    let split = ChangesByTable::new(changes);
    let mut touched = 0;
    for chunk in split.source_upserts.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rollup_source (bucket_start_ms, tenant, source_kind, host, severity, count) ");
        builder.push_values(chunk, |mut row, (bucket, tenant, kind, host, severity, count)| {
            row.push_bind(sql_ms(*bucket))
                .push_bind(*tenant)
                .push_bind(kind.as_str())
                .push_bind(*host)
                .push_bind(i64::from(severity.code()))
                .push_bind(*count);
        });
        builder.push(
            " ON CONFLICT (bucket_start_ms, tenant, source_kind, host, severity) \
             DO UPDATE SET count = excluded.count",
        );
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in split.source_deletes.chunks(DELETES_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM rollup_source WHERE ");
        for (index, (bucket, tenant, kind, host, severity)) in chunk.iter().enumerate() {
            builder.push(if index == 0 { "(bucket_start_ms = " } else { " OR (bucket_start_ms = " });
            builder.push_bind(sql_ms(*bucket)).push(" AND tenant = ").push_bind(*tenant);
            builder.push(" AND source_kind = ").push_bind(kind.as_str());
            builder.push(" AND host = ").push_bind(*host);
            builder.push(" AND severity = ").push_bind(i64::from(severity.code())).push(")");
        }
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in split.category_upserts.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rollup_category (bucket_start_ms, tenant, category, count) ");
        builder.push_values(chunk, |mut row, (bucket, tenant, category, count)| {
            row.push_bind(sql_ms(*bucket)).push_bind(*tenant).push_bind(*category).push_bind(*count);
        });
        builder.push(" ON CONFLICT (bucket_start_ms, tenant, category) DO UPDATE SET count = excluded.count");
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in split.category_deletes.chunks(DELETES_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM rollup_category WHERE ");
        for (index, (bucket, tenant, category)) in chunk.iter().enumerate() {
            builder.push(if index == 0 { "(bucket_start_ms = " } else { " OR (bucket_start_ms = " });
            builder.push_bind(sql_ms(*bucket)).push(" AND tenant = ").push_bind(*tenant);
            builder.push(" AND category = ").push_bind(*category).push(")");
        }
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in split.hosts_upserts.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rollup_hosts (bucket_start_ms, tenant, distinct_hosts) ");
        builder.push_values(chunk, |mut row, (bucket, tenant, count)| {
            row.push_bind(sql_ms(*bucket)).push_bind(*tenant).push_bind(*count);
        });
        builder.push(" ON CONFLICT (bucket_start_ms, tenant) DO UPDATE SET distinct_hosts = excluded.distinct_hosts");
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in split.hosts_deletes.chunks(DELETES_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("DELETE FROM rollup_hosts WHERE ");
        for (index, (bucket, tenant)) in chunk.iter().enumerate() {
            builder.push(if index == 0 { "(bucket_start_ms = " } else { " OR (bucket_start_ms = " });
            builder.push_bind(sql_ms(*bucket)).push(" AND tenant = ").push_bind(*tenant).push(")");
        }
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    Ok(touched)
}

/// Adds late-event counts `(bucket_start_ms, count)` to `rollup_late` inside the caller's
/// transaction. Counts add up (the same bucket may appear several times), so unlike
/// [`apply_rollup_changes`] this is not idempotent: apply each batch of late events once.
pub async fn add_late_counts(tx: &mut SqliteConnection, late: &[(u64, i64)]) -> Result<(), StoreError> {
    let late: Vec<&(u64, i64)> = late.iter().filter(|(_, count)| *count != 0).collect();
    for chunk in late.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT INTO rollup_late (bucket_start_ms, count) ");
        builder.push_values(chunk, |mut row, (bucket, count)| {
            row.push_bind(sql_ms(*bucket)).push_bind(*count);
        });
        builder.push(" ON CONFLICT (bucket_start_ms) DO UPDATE SET count = rollup_late.count + excluded.count");
        builder.build().execute(&mut *tx).await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Applies rollup changes and adds late counts in one transaction of its own (see
    /// [`apply_rollup_changes`] and [`add_late_counts`]).
    pub async fn apply_rollups(&self, changes: &[RollupChange], late: &[(u64, i64)]) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        apply_rollup_changes(&mut transaction, changes).await?;
        add_late_counts(&mut transaction, late).await?;
        transaction.commit().await?;
        self.checkpoint_in_background();
        Ok(())
    }

    /// Event counts per bucket of `query.bucket` over the minute buckets starting in
    /// `[from_ms, to_ms)`, one series per value of `query.by`, series in key order (severities
    /// most severe first), points in time order. Hour points sum their minute buckets, so the
    /// first and last hour of a range not aligned to hours are partial. Zero points are left out.
    /// Only rows of `scope`'s tenants count.
    pub async fn timeseries(&self, query: &TimeseriesQuery, scope: &TenantScope) -> Result<Vec<Series>, StoreError> {
        let (value, table) = match query.by {
            SeriesBy::Source => ("source_kind", "rollup_source"),
            SeriesBy::Host => ("host", "rollup_source"),
            SeriesBy::Severity => ("severity", "rollup_source"),
            SeriesBy::Category => ("category", "rollup_category"),
        };
        let sql = format!(
            "SELECT {value} AS value, bucket_start_ms - bucket_start_ms % ?1 AS point_start_ms, \
             SUM(count) AS total FROM {table} WHERE bucket_start_ms >= ?2 AND bucket_start_ms < ?3 AND {tenants} \
             GROUP BY value, point_start_ms HAVING total <> 0 ORDER BY value, point_start_ms",
            tenants = tenant_condition("tenant", scope)
        );
        // Only the fixed column and table names and the checked tenant condition above are
        // interpolated; values are bound.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(sql_ms(query.bucket.millis()))
            .bind(sql_ms(query.from_ms))
            .bind(sql_ms(query.to_ms))
            .fetch_all(self.pool())
            .await?;
        rows_to_series(query.by, &rows, |row| row.try_get("value"))
    }

    /// The `query.n` values of `query.field` with the most events in the minute buckets starting
    /// in `[from_ms, to_ms)`, most first, ties by value (severities: most severe first). Events
    /// without a host or category are left out of those rankings; values whose events sum to
    /// zero are left out. For hosts this is the SQL form of `securewatch_schemas::top_hosts`.
    /// Only rows of `scope`'s tenants count.
    pub async fn top(&self, query: &TopQuery, scope: &TenantScope) -> Result<Vec<TopEntry>, StoreError> {
        let (value, table, present) = match query.field {
            TopField::Host => ("host", "rollup_source", "host <> ''"),
            TopField::Category => ("category", "rollup_category", "category <> ''"),
            TopField::Severity => ("severity", "rollup_source", "1 = 1"),
            TopField::Source => ("source_kind", "rollup_source", "1 = 1"),
        };
        let sql = format!(
            "SELECT {value} AS value, SUM(count) AS total FROM {table} \
             WHERE bucket_start_ms >= ?1 AND bucket_start_ms < ?2 AND {present} AND {tenants} \
             GROUP BY value HAVING total <> 0 ORDER BY total DESC, value LIMIT ?3",
            tenants = tenant_condition("tenant", scope)
        );
        // Only the fixed names and conditions above are interpolated; values are bound.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(sql_ms(query.from_ms))
            .bind(sql_ms(query.to_ms))
            .bind(i64::try_from(query.n).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows_to_top(query.field, &rows, |row| row.try_get("value"))
    }

    /// Every stored rollup row as `(key, bucket_start_ms, count)`, ordered like
    /// `securewatch_schemas::RollupTable::iter` (by key, then bucket), so the store can be
    /// compared with the in-memory table.
    pub async fn rollup_rows(&self) -> Result<Vec<(RollupKey, u64, i64)>, StoreError> {
        let mut rows = Vec::new();
        let source = sqlx::query("SELECT bucket_start_ms, source_kind, host, severity, count FROM rollup_source")
            .fetch_all(self.pool())
            .await?;
        for row in &source {
            let kind: String = row.try_get("source_kind")?;
            let kind = source_kind_of(&kind)?;
            let key = RollupKey::Source {
                kind,
                host: none_if_empty(row.try_get("host")?),
                severity: severity_of(row.try_get("severity")?)?,
            };
            rows.push((key, bucket_of(row.try_get("bucket_start_ms")?)?, row.try_get("count")?));
        }
        let category =
            sqlx::query("SELECT bucket_start_ms, category, count FROM rollup_category").fetch_all(self.pool()).await?;
        for row in &category {
            let key = RollupKey::Category(none_if_empty(row.try_get("category")?));
            rows.push((key, bucket_of(row.try_get("bucket_start_ms")?)?, row.try_get("count")?));
        }
        let hosts =
            sqlx::query("SELECT bucket_start_ms, distinct_hosts FROM rollup_hosts").fetch_all(self.pool()).await?;
        for row in &hosts {
            rows.push((RollupKey::DistinctHosts, bucket_of(row.try_get("bucket_start_ms")?)?, row.try_get("distinct_hosts")?));
        }
        rows.sort();
        Ok(rows)
    }

    /// Late-event counts `(bucket_start_ms, count)` of the buckets starting in `[from_ms, to_ms)`,
    /// oldest first.
    pub async fn late_counts(&self, from_ms: u64, to_ms: u64) -> Result<Vec<(u64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT bucket_start_ms, count FROM rollup_late \
             WHERE bucket_start_ms >= ? AND bucket_start_ms < ? ORDER BY bucket_start_ms",
        )
        .bind(sql_ms(from_ms))
        .bind(sql_ms(to_ms))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok((bucket_of(row.try_get("bucket_start_ms")?)?, row.try_get("count")?))).collect()
    }
}

#[cfg(test)]
mod tests;
