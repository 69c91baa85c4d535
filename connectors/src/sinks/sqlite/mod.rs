//! The embedded event store: SQLite through sqlx in the data directory (events, dead letters, rollups, enrichment tags, alerts), with optional retention.

mod alerts;
mod backup;
mod audit;
mod config;
mod enrichment;
mod history;
mod progress;
mod query;
mod retention;
#[cfg(test)]
mod retention_tests;
mod rollups;
mod store;
#[cfg(test)]
mod tenant_migration_tests;
mod transaction;

pub use alerts::apply_alert_changes;
pub use backup::{check_store, snapshot_store, StoreCounts};
pub use config::{SqliteConfig, Synchronous};
pub use enrichment::apply_enrichment_changes;
pub use retention::{Trimmed, RETENTION_DELETED};
pub use rollups::{add_late_counts, apply_rollup_changes};
pub use store::{SqliteStore, StoreError};
