//! Retention of the embedded store: what is older than `[store] retention_secs` is deleted in
//! short batches by a background task, so the store stops growing once the horizon passed.
//!
//! "Older" is by event time for events, alerts (their last event), rollup and enrichment
//! buckets, and by arrival for dead letters. The audit log is kept: it answers to its own
//! retention rules. Deleted pages are reused by new rows; the file does not shrink.

use std::time::Duration;

use sqlx::SqlitePool;

use super::store::{SqliteStore, StoreError};

/// Counter: rows deleted by the retention task, by `table`.
pub const RETENTION_DELETED: &str = "securewatch_store_retention_deleted_total";
/// Rows per delete statement: each one is a short write transaction the epoch writer can
/// slip between.
const ROWS_PER_BATCH: i64 = 5_000;
/// The longest pause between two rounds.
const MAX_ROUND_INTERVAL: Duration = Duration::from_secs(60);

/// The tables a round trims besides the alerts, each with the statement that deletes one batch
/// of rows older than the cutoff (`?1`: microseconds, `?2`: milliseconds; at most `?3` rows, or
/// one bucket of a rollup).
const TRIMS: &[(&str, &str)] = &[
    (
        "events",
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE time_us < ?1 ORDER BY time_us LIMIT ?3)",
    ),
    (
        "dead_letters",
        "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters WHERE received_us < ?1 ORDER BY seq LIMIT ?3)",
    ),
    (
        "rollup_source",
        "DELETE FROM rollup_source WHERE bucket_start_ms IN \
         (SELECT DISTINCT bucket_start_ms FROM rollup_source WHERE bucket_start_ms < ?2 ORDER BY bucket_start_ms LIMIT 1)",
    ),
    (
        "rollup_category",
        "DELETE FROM rollup_category WHERE bucket_start_ms IN \
         (SELECT DISTINCT bucket_start_ms FROM rollup_category WHERE bucket_start_ms < ?2 ORDER BY bucket_start_ms LIMIT 1)",
    ),
    ("rollup_hosts", "DELETE FROM rollup_hosts WHERE bucket_start_ms < ?2"),
    // The per-dimension counts: minutes before the cutoff, and hours that end by it.
    ("dashboard_1m", "DELETE FROM dashboard_1m WHERE bucket_start_ms < ?2"),
    ("dashboard_1h", "DELETE FROM dashboard_1h WHERE bucket_start_ms <= ?2 - 3600000"),
    ("rollup_late", "DELETE FROM rollup_late WHERE bucket_start_ms < ?2"),
    (
        "enrichment_tags",
        "DELETE FROM enrichment_tags WHERE bucket_start_ms IN \
         (SELECT DISTINCT bucket_start_ms FROM enrichment_tags WHERE bucket_start_ms < ?2 ORDER BY bucket_start_ms LIMIT 1)",
    ),
];

/// Rows one [`SqliteStore::trim_older_than`] call deleted, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trimmed {
    /// `(table, rows)` for every table that lost rows.
    pub tables: Vec<(&'static str, u64)>,
}

impl Trimmed {
    /// The rows deleted from `table`.
    pub fn of(&self, table: &str) -> u64 {
        self.tables.iter().filter(|(name, _)| *name == table).map(|(_, rows)| rows).sum()
    }
}

impl SqliteStore {
    /// Deletes everything older than `cutoff_ms` (ms since the Unix epoch), batch by batch,
    /// through the writer connection (so it queues behind epoch writes instead of contending).
    pub async fn trim_older_than(&self, cutoff_ms: i64) -> Result<Trimmed, StoreError> {
        let mut trimmed = Trimmed::default();
        let alerts = trim_alerts(&self.writer, cutoff_ms).await?;
        if alerts > 0 {
            metrics::counter!(RETENTION_DELETED, "table" => "alerts").increment(alerts);
            trimmed.tables.push(("alerts", alerts));
        }
        for (table, statement) in TRIMS {
            let deleted = trim_table(&self.writer, statement, cutoff_ms).await?;
            if deleted > 0 {
                metrics::counter!(RETENTION_DELETED, "table" => *table).increment(deleted);
                trimmed.tables.push((table, deleted));
            }
        }
        Ok(trimmed)
    }

    /// Starts the background task that keeps the store within `retention`: a round at once,
    /// then every quarter of the retention (at most a minute); it ends when the store closes.
    pub fn start_retention(&self, retention: Duration) {
        let store = self.clone();
        let interval = (retention / 4).min(MAX_ROUND_INTERVAL).max(Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                let cutoff = chrono::Utc::now().timestamp_millis().saturating_sub(retention.as_millis() as i64);
                match store.trim_older_than(cutoff).await {
                    Ok(trimmed) if !trimmed.tables.is_empty() => {
                        tracing::debug!(cutoff_ms = cutoff, tables = ?trimmed.tables, "Retention: deleted old rows.")
                    }
                    Ok(_) => {}
                    Err(_) if store.is_closed() => return,
                    Err(error) => tracing::warn!(%error, "Retention round failed; the next round tries again."),
                }
                tokio::select! {
                    () = store.closing() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
    }
}

/// Runs `statement` until it deletes fewer than a batch; the rows deleted in all.
async fn trim_table(writer: &SqlitePool, statement: &'static str, cutoff_ms: i64) -> Result<u64, StoreError> {
    let mut deleted = 0;
    loop {
        let result = sqlx::query(statement)
            .bind(cutoff_ms.saturating_mul(1000))
            .bind(cutoff_ms)
            .bind(ROWS_PER_BATCH)
            .execute(writer)
            .await?;
        deleted += result.rows_affected();
        if result.rows_affected() == 0 {
            return Ok(deleted);
        }
    }
}

/// Deletes the alerts whose last event is older than `cutoff_ms` with their evidence links, a
/// batch per transaction; the alerts deleted in all.
async fn trim_alerts(writer: &SqlitePool, cutoff_ms: i64) -> Result<u64, StoreError> {
    const LINKS: &str = "DELETE FROM alert_events WHERE alert_id IN \
                         (SELECT id FROM alerts WHERE last_seen_ms < ?1 ORDER BY last_seen_ms LIMIT ?2)";
    const ALERTS: &str = "DELETE FROM alerts WHERE id IN \
                          (SELECT id FROM alerts WHERE last_seen_ms < ?1 ORDER BY last_seen_ms LIMIT ?2)";
    let mut deleted = 0;
    loop {
        let mut transaction = writer.begin().await?;
        sqlx::query(LINKS)
            .bind(cutoff_ms)
            .bind(ROWS_PER_BATCH)
            .execute(&mut *transaction)
            .await?;
        let result = sqlx::query(ALERTS)
            .bind(cutoff_ms)
            .bind(ROWS_PER_BATCH)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        deleted += result.rows_affected();
        if result.rows_affected() == 0 {
            return Ok(deleted);
        }
    }
}
