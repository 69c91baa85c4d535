//! Enrichment tags in PostgreSQL: the dataflow's tag changes, netted per tag and applied.

use std::collections::BTreeMap;

use securewatch_schemas::EnrichmentRow;
use sqlx::PgConnection;

use super::sink::PostgresError;
use crate::sinks::rows::sql_ms;

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
