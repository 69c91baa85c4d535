//! One write of completed epochs in one PostgreSQL transaction: events, dead letters, rollups, late counts, tags, alerts, positions.

use std::time::Instant;

use chrono::Utc;

use super::alerts::apply_alert_changes;
use super::dashboard::add_differences;
use super::enrichment::apply_enrichment_changes;
use super::events::{insert_dead_letters, prepare_batch, store_event_batch};
use super::progress::write_progress;
use super::rollups::{add_late_counts, apply_rollup_changes};
use super::sink::{Flavour, PostgresError, PostgresSink};
use crate::sinks::progress::SourceProgress;
use crate::sinks::rows::latest_counts;
use crate::sinks::{EpochWrite, WriteSummary};
use crate::telemetry;

impl PostgresSink {
    /// Writes a run of completed epochs in one transaction (see [`PostgresSink::write_epochs_with_progress`]).
    pub async fn write_epochs(&self, write: &EpochWrite) -> Result<WriteSummary, PostgresError> {
        self.write_epochs_with_progress(write, &write.progress).await
    }

    /// Writes everything a run of completed dataflow epochs produced, and the source positions
    /// those epochs close, in ONE transaction: either all of it is stored or none.
    ///
    /// - Events are stored once by `(time, id)`: already stored ones count as duplicates.
    /// - Events PostgreSQL would refuse (NUL bytes, jsonb's `\u0000`, times before 4713 BC) go
    ///   to the dead letters with the reason; if a batch still fails in the server, its rows are
    ///   retried one by one to isolate the refused ones. One bad row never fails a write.
    /// - Rollups are upserted (deleted at count 0), late counts added, enrichment tags and alerts
    ///   applied as in the SQLite store.
    /// - `progress` rows are upserted, never moving a position back to an older epoch.
    pub async fn write_epochs_with_progress(
        &self,
        write: &EpochWrite,
        progress: &[SourceProgress],
    ) -> Result<WriteSummary, PostgresError> {
        let started = Instant::now();
        if self.flavour == Flavour::Plain {
            let today = Utc::now().date_naive();
            let due = *self.partitions_day.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) != Some(today);
            if due {
                self.maintain_partitions().await?;
            }
        }
        let mut rejected = Vec::new();
        let mut transaction = self.pool.begin().await?;
        let mut summary = WriteSummary::default();
        // Each batch is checked and encoded while the server stores the one before it.
        let mut chunks = write.events.chunks(self.config.batch_rows.max(1));
        let mut current = chunks.next().map(|chunk| prepare_batch(chunk, self.config.load));
        // COPY straight into `events` until a batch holds a stored event (a replay).
        let mut direct = true;
        while let Some((batch, refused)) = current {
            rejected.extend(refused);
            let next = chunks.next();
            let (stored, prepared) = tokio::join!(
                store_event_batch(&mut transaction, &batch, &mut direct, &mut summary, &mut rejected),
                async { next.map(|chunk| prepare_batch(chunk, self.config.load)) }
            );
            stored?;
            current = prepared;
        }
        summary.dead_lettered = insert_dead_letters(&mut transaction, write.dead_letters.iter().chain(&rejected)).await?;
        if self.flavour == Flavour::Plain {
            add_differences(&mut transaction, &latest_counts(&write.rollups)).await?;
        }
        apply_rollup_changes(&mut transaction, &write.rollups).await?;
        add_late_counts(&mut transaction, &write.late).await?;
        apply_enrichment_changes(&mut transaction, &write.enrichment).await?;
        apply_alert_changes(&mut transaction, &write.alerts).await?;
        write_progress(&mut transaction, progress).await?;
        transaction.commit().await?;
        metrics::histogram!(telemetry::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(telemetry::STORE_WRITTEN).increment(summary.written);
        metrics::counter!(telemetry::STORE_DUPLICATES).increment(summary.duplicates);
        if !rejected.is_empty() {
            tracing::warn!(rejected = rejected.len(), "PostgreSQL refused events; they are in the dead letters.");
        }
        Ok(summary)
    }
}
