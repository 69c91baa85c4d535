//! The dataflow's rollup rows and late counts in PostgreSQL, upserted (deleted at count 0) in the write's transaction.

use std::collections::BTreeMap;

use securewatch_schemas::{RollupChange, RollupKey};
use sqlx::PgConnection;

use super::sink::PostgresError;
use crate::sinks::rows::{latest_counts, sql_ms};

/// Applies rollup changes inside the caller's transaction: each row ends at its last count in
/// `changes`, upserted, or deleted when that count is zero. Idempotent. Returns rows touched.
pub async fn apply_rollup_changes(connection: &mut PgConnection, changes: &[RollupChange]) -> Result<u64, PostgresError> {
    let latest = latest_counts(changes);
    #[derive(Default)]
    struct Columns {
        bucket: Vec<i64>,
        tenant: Vec<String>,
        kind: Vec<&'static str>,
        text: Vec<String>,
        severity: Vec<i16>,
        count: Vec<i64>,
    }
    let (mut source, mut source_gone, mut category, mut category_gone, mut hosts, mut hosts_gone) =
        <(Columns, Columns, Columns, Columns, Columns, Columns)>::default();
    for ((tenant, key, bucket), count) in latest {
        let bucket = sql_ms(bucket);
        let tenant = tenant.to_string();
        match key {
            RollupKey::Source { kind, host, severity } => {
                let columns = if count == 0 { &mut source_gone } else { &mut source };
                columns.bucket.push(bucket);
                columns.tenant.push(tenant);
                columns.kind.push(kind.as_str());
                columns.text.push(host.clone().unwrap_or_default());
                columns.severity.push(i16::from(severity.code()));
                columns.count.push(count);
            }
            RollupKey::Category(name) => {
                let columns = if count == 0 { &mut category_gone } else { &mut category };
                columns.bucket.push(bucket);
                columns.tenant.push(tenant);
                columns.text.push(name.clone().unwrap_or_default());
                columns.count.push(count);
            }
            RollupKey::DistinctHosts => {
                let columns = if count == 0 { &mut hosts_gone } else { &mut hosts };
                columns.bucket.push(bucket);
                columns.tenant.push(tenant);
                columns.count.push(count);
            }
        }
    }
    let mut touched = 0;
    if !source.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_source (bucket_start_ms, source_kind, host, severity, count, tenant) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::text[]) \
             ON CONFLICT (bucket_start_ms, tenant, source_kind, host, severity) DO UPDATE SET count = excluded.count",
        )
        .bind(&source.bucket)
        .bind(&source.kind)
        .bind(&source.text)
        .bind(&source.severity)
        .bind(&source.count)
        .bind(&source.tenant)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !source_gone.bucket.is_empty() {
        touched += sqlx::query(
            "DELETE FROM rollup_source r USING UNNEST($1::bigint[], $2::text[], $3::text[], $4::smallint[], $5::text[]) \
             AS gone(bucket, kind, host, severity, tenant) WHERE r.bucket_start_ms = gone.bucket \
             AND r.tenant = gone.tenant AND r.source_kind = gone.kind AND r.host = gone.host AND r.severity = gone.severity",
        )
        .bind(&source_gone.bucket)
        .bind(&source_gone.kind)
        .bind(&source_gone.text)
        .bind(&source_gone.severity)
        .bind(&source_gone.tenant)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !category.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_category (bucket_start_ms, category, count, tenant) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[]) \
             ON CONFLICT (bucket_start_ms, tenant, category) DO UPDATE SET count = excluded.count",
        )
        .bind(&category.bucket)
        .bind(&category.text)
        .bind(&category.count)
        .bind(&category.tenant)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !category_gone.bucket.is_empty() {
        touched += sqlx::query(
            "DELETE FROM rollup_category r USING UNNEST($1::bigint[], $2::text[], $3::text[]) \
             AS gone(bucket, category, tenant) \
             WHERE r.bucket_start_ms = gone.bucket AND r.tenant = gone.tenant AND r.category = gone.category",
        )
        .bind(&category_gone.bucket)
        .bind(&category_gone.text)
        .bind(&category_gone.tenant)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !hosts.bucket.is_empty() {
        touched += sqlx::query(
            "INSERT INTO rollup_hosts (bucket_start_ms, distinct_hosts, tenant) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[]) \
             ON CONFLICT (bucket_start_ms, tenant) DO UPDATE SET distinct_hosts = excluded.distinct_hosts",
        )
        .bind(&hosts.bucket)
        .bind(&hosts.count)
        .bind(&hosts.tenant)
        .execute(&mut *connection)
        .await?
        .rows_affected();
    }
    if !hosts_gone.bucket.is_empty() {
        touched += sqlx::query(
            "DELETE FROM rollup_hosts r USING UNNEST($1::bigint[], $2::text[]) AS gone(bucket, tenant) \
             WHERE r.bucket_start_ms = gone.bucket AND r.tenant = gone.tenant",
        )
            .bind(&hosts_gone.bucket)
            .bind(&hosts_gone.tenant)
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
