//! PostgreSQL / TimescaleDB sink: events by binary COPY through a staging table (exactly once by
//! `(time, id)`), dead letters, the dataflow's rollups, late counts, enrichment tags, alerts and
//! source positions, all of a write in one transaction. On plain PostgreSQL the events table is
//! partitioned by day; with TimescaleDB it is a hypertable with continuous aggregates.

mod alerts;
mod audit;
mod config;
mod dashboard;
mod enrichment;
mod events;
mod history;
mod partitions;
mod progress;
mod query;
mod rollups;
mod rows;
mod sink;
mod timescale;
mod transaction;

pub use config::{LoadMethod, PgSslMode, PostgresConfig, TimescaleMode};
pub use rows::REJECTED_REASON;
pub use alerts::apply_alert_changes;
pub use enrichment::apply_enrichment_changes;
pub use progress::{write_progress, SourceProgress};
pub use rollups::{add_late_counts, apply_rollup_changes};
pub use sink::{Flavour, PostgresError, PostgresSink};
pub use timescale::TimescaleJob;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tenant_migration_tests;
