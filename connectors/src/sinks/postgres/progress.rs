//! Source positions in PostgreSQL: committed with the results derived from them, and read back.

use sqlx::PgConnection;

use super::sink::{PostgresError, PostgresSink};
use crate::sinks::rows::{progress_of, sql_ms};
pub use crate::sinks::progress::SourceProgress;

impl PostgresSink {
    /// Stored positions of `source`, by partition.
    pub async fn progress(&self, source: &str) -> Result<Vec<SourceProgress>, PostgresError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT source, partition, position, epoch FROM source_progress WHERE source = $1 ORDER BY partition",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        Ok(progress_of(rows))
    }
}

/// Upserts source positions; a row at a newer epoch than the given one is left as it is.
pub async fn write_progress(connection: &mut PgConnection, progress: &[SourceProgress]) -> Result<(), PostgresError> {
    let latest = crate::sinks::progress::latest_per_partition(progress);
    if latest.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = latest.values().map(|row| row.source.as_str()).collect();
    let partitions: Vec<&str> = latest.values().map(|row| row.partition.as_str()).collect();
    let positions: Vec<&str> = latest.values().map(|row| row.position.as_str()).collect();
    let epochs: Vec<i64> = latest.values().map(|row| sql_ms(row.epoch)).collect();
    sqlx::query(
        "INSERT INTO source_progress (source, partition, position, epoch) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) \
         ON CONFLICT (source, partition) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, \
         updated = now() WHERE source_progress.epoch <= excluded.epoch",
    )
    .bind(&sources)
    .bind(&partitions)
    .bind(&positions)
    .bind(&epochs)
    .execute(&mut *connection)
    .await?;
    Ok(())
}
