//! One write of completed epochs in one SQLite transaction: events, dead letters, rollups, late counts, tags, alerts, positions.

use std::time::Instant;

use securewatch_schemas::EventId;

use super::alerts::apply_alert_changes;
use super::enrichment::apply_enrichment_changes;
use super::progress::write_progress;
use super::rollups::{add_late_counts, apply_rollup_changes};
use super::store::{insert_dead_letters, insert_events, SqliteStore, StoreError};
use crate::sinks::{EpochWrite, WriteSummary};
use crate::telemetry;

impl SqliteStore {
    /// Writes everything a run of completed dataflow epochs produced in one transaction:
    /// events (once by id: an event whose (time, id) is stored already is skipped and counted as
    /// a duplicate), dead letters, rollup upserts, late counts and enrichment tags. Either all of it is
    /// stored or none, so a retried write never adds a late count twice.
    pub async fn write_epochs(&self, write: &EpochWrite) -> Result<WriteSummary, StoreError> {
        Ok(self.write_epochs_finding_duplicates(write).await?.0)
    }

    /// [`SqliteStore::write_epochs`], also returning the ids of the events that were stored
    /// already (delivered twice), so the dataflow can take them out of its rollups again.
    pub async fn write_epochs_finding_duplicates(&self, write: &EpochWrite) -> Result<(WriteSummary, Vec<EventId>), StoreError> {
        let started = Instant::now();
        let mut transaction = self.writer.begin().await?;
        let (mut summary, duplicates) = insert_events(&mut transaction, &write.events).await?;
        summary.dead_lettered = insert_dead_letters(&mut transaction, &write.dead_letters).await?;
        apply_rollup_changes(&mut transaction, &write.rollups).await?;
        add_late_counts(&mut transaction, &write.late).await?;
        apply_enrichment_changes(&mut transaction, &write.enrichment).await?;
        apply_alert_changes(&mut transaction, &write.alerts).await?;
        write_progress(&mut transaction, &write.progress).await?;
        transaction.commit().await?;
        self.checkpoint_in_background();
        metrics::histogram!(telemetry::STORE_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(telemetry::STORE_WRITTEN).increment(summary.written);
        metrics::counter!(telemetry::STORE_DUPLICATES).increment(summary.duplicates);
        Ok((summary, duplicates))
    }
}
