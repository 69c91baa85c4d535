//! PostgreSQL / TimescaleDB sink: events by binary COPY through a staging table (exactly once by
//! `(time, id)`), dead letters, the dataflow's rollups, late counts, enrichment tags, alerts and
//! source positions, all of a write in one transaction. On plain PostgreSQL the events table is
//! partitioned by day; with TimescaleDB it is a hypertable with continuous aggregates.

mod config;
mod dashboard;
mod query;
mod rows;
mod sink;
mod timescale;

pub use config::{LoadMethod, PostgresConfig, TimescaleMode};
pub use rows::REJECTED_REASON;
pub use sink::{
    add_late_counts, apply_alert_changes, apply_enrichment_changes, apply_rollup_changes, write_progress, Flavour,
    PostgresError, PostgresSink, SourceProgress,
};
pub use timescale::TimescaleJob;

#[cfg(test)]
mod tests;
