//! The embedded store's per-dimension counts (`dashboard_1m`, `dashboard_1h`, see
//! `schemas/sql/sqlite/0012_dashboard_counts.sql`): kept up to date from each write's rollup
//! changes, as plain PostgreSQL keeps its own; searches read hour bins from them.

use std::collections::BTreeMap;

use securewatch_schemas::{RollupKey, Tenant};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::super::store::StoreError;
use crate::sinks::rows::sql_ms;

/// Rollup rows per stored-count query (6 bound values each, below SQLite's 32766 limit).
const ROWS_PER_QUERY: usize = 2000;
/// Count rows per upsert (5 bound values each).
const COUNTS_PER_STATEMENT: usize = 2000;
const HOUR_MS: i64 = 3_600_000;

/// `(dimension, bucket_start_ms, tenant, value)` → the difference to add.
type Differences = BTreeMap<(String, i64, String, String), i64>;

/// Adds to the dashboard counts, for each rollup row in `latest` (its count after the write,
/// 0 for a row about to be deleted), the difference to the row's stored count. Runs in the
/// write's transaction *before* the rollup rows are replaced; replaying a write finds no
/// difference and adds nothing.
pub(super) async fn add_differences(
    tx: &mut SqliteConnection,
    latest: &BTreeMap<(&Tenant, &RollupKey, u64), i64>,
) -> Result<(), StoreError> {
    let mut source = Vec::new();
    let mut category = Vec::new();
    for (&(tenant, key, bucket), &count) in latest {
        match key {
            RollupKey::Source { kind, host, severity } => {
                source.push((sql_ms(bucket), tenant.as_str(), kind.as_str(), host.as_deref().unwrap_or(""), i64::from(severity.code()), count));
            }
            RollupKey::Category(name) => category.push((sql_ms(bucket), tenant.as_str(), name.as_deref().unwrap_or(""), count)),
            RollupKey::DistinctHosts => {}
        }
    }
    // The stored counts are read back by position in the chunk and the differences summed
    // here: the same done in SQL (a grouped difference per dimension) cost six times as much.
    let mut differences = Differences::new();
    for chunk in source.chunks(ROWS_PER_QUERY) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("WITH input (n, bucket, tenant, kind, host, severity) AS (");
        builder.push_values(chunk.iter().enumerate(), |mut row, (n, (bucket, tenant, kind, host, severity, _))| {
            row.push_bind(n as i64).push_bind(*bucket).push_bind(*tenant).push_bind(*kind).push_bind(*host).push_bind(*severity);
        });
        builder.push(
            ") SELECT i.n, COALESCE(r.count, 0) FROM input i LEFT JOIN rollup_source r ON r.bucket_start_ms = i.bucket AND r.tenant = i.tenant \
             AND r.source_kind = i.kind AND r.host = i.host AND r.severity = i.severity",
        );
        let stored = stored_counts(builder.build().fetch_all(&mut *tx).await?, chunk.len())?;
        for ((bucket, tenant, kind, host, severity, count), stored) in chunk.iter().zip(stored) {
            let delta = count - stored;
            if delta != 0 {
                for (dimension, value) in [("source", (*kind).to_owned()), ("host", (*host).to_owned()), ("severity", severity.to_string())] {
                    *differences.entry((dimension.to_owned(), *bucket, (*tenant).to_owned(), value)).or_default() += delta;
                }
            }
        }
    }
    for chunk in category.chunks(ROWS_PER_QUERY) {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("WITH input (n, bucket, tenant, category) AS (");
        builder.push_values(chunk.iter().enumerate(), |mut row, (n, (bucket, tenant, name, _))| {
            row.push_bind(n as i64).push_bind(*bucket).push_bind(*tenant).push_bind(*name);
        });
        builder.push(
            ") SELECT i.n, COALESCE(r.count, 0) FROM input i LEFT JOIN rollup_category r ON r.bucket_start_ms = i.bucket AND r.tenant = i.tenant \
             AND r.category = i.category",
        );
        let stored = stored_counts(builder.build().fetch_all(&mut *tx).await?, chunk.len())?;
        for ((bucket, tenant, name, count), stored) in chunk.iter().zip(stored) {
            let delta = count - stored;
            if delta != 0 {
                *differences.entry(("category".to_owned(), *bucket, (*tenant).to_owned(), (*name).to_owned())).or_default() += delta;
            }
        }
    }
    let mut hours = Differences::new();
    for ((dimension, bucket, tenant, value), delta) in &differences {
        *hours.entry((dimension.clone(), bucket - bucket.rem_euclid(HOUR_MS), tenant.clone(), value.clone())).or_default() += delta;
    }
    add(tx, "dashboard_1m", &differences).await?;
    add(tx, "dashboard_1h", &hours).await
}

/// The stored count of each of `len` input rows from rows `(n, count)` (0 where none is stored).
fn stored_counts(rows: Vec<sqlx::sqlite::SqliteRow>, len: usize) -> Result<Vec<i64>, StoreError> {
    let mut counts = vec![0; len];
    for row in rows {
        let n: i64 = row.try_get(0)?;
        if let Some(count) = usize::try_from(n).ok().and_then(|n| counts.get_mut(n)) {
            *count = row.try_get(1)?;
        }
    }
    Ok(counts)
}

/// Adds each non-zero difference to its row of `table` (a fixed name).
async fn add(tx: &mut SqliteConnection, table: &str, differences: &Differences) -> Result<(), StoreError> {
    let rows: Vec<_> = differences.iter().filter(|(_, delta)| **delta != 0).collect();
    for chunk in rows.chunks(COUNTS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO {table} (dimension, bucket_start_ms, tenant, value, count) "));
        builder.push_values(chunk, |mut row, ((dimension, bucket, tenant, value), delta)| {
            row.push_bind(dimension.as_str()).push_bind(*bucket).push_bind(tenant.as_str()).push_bind(value.as_str()).push_bind(**delta);
        });
        builder.push(" ON CONFLICT (dimension, bucket_start_ms, tenant, value) DO UPDATE SET count = count + excluded.count");
        builder.build().execute(&mut *tx).await?;
    }
    Ok(())
}
