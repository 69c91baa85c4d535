//! Source positions in SQLite: committed with the results derived from them, and read back.

use sqlx::SqliteConnection;

use super::store::{SqliteStore, StoreError};
use crate::sinks::progress::{latest_per_partition, SourceProgress};
use crate::sinks::rows::progress_of;

impl SqliteStore {
    /// Stored positions of `source`, by partition.
    pub async fn progress(&self, source: &str) -> Result<Vec<SourceProgress>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT source, partition, position, epoch FROM source_progress WHERE source = ? ORDER BY partition",
        )
        .bind(source)
        .fetch_all(self.pool())
        .await?;
        Ok(progress_of(rows))
    }
}

/// Upserts source positions; a row at a newer epoch than the given one is left as it is.
pub(super) async fn write_progress(connection: &mut SqliteConnection, progress: &[SourceProgress]) -> Result<(), StoreError> {
    let updated_ms = chrono::Utc::now().timestamp_millis();
    for row in latest_per_partition(progress).into_values() {
        sqlx::query(
            "INSERT INTO source_progress (source, partition, position, epoch, updated_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (source, partition) DO UPDATE SET position = excluded.position, epoch = excluded.epoch, \
             updated_ms = excluded.updated_ms WHERE source_progress.epoch <= excluded.epoch",
        )
        .bind(&row.source)
        .bind(&row.partition)
        .bind(&row.position)
        .bind(i64::try_from(row.epoch).unwrap_or(i64::MAX))
        .bind(updated_ms)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}
