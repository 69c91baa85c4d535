//! The embedded event store: SQLite through sqlx in the data directory (events, dead letters, rollups, enrichment tags, alerts).

mod alerts;
mod config;
mod enrichment;
mod query;
mod rollups;
mod store;

pub use alerts::{apply_alert_changes, AlertQuery};
pub use config::{SqliteConfig, Synchronous};
pub use enrichment::{apply_enrichment_changes, AssetTag, EnrichmentLookup, EventEnrichment, GeoTag, NetworkTag};
pub use query::{EventQuery, StoredDeadLetter, StoredEvent};
pub use rollups::{
    add_late_counts, apply_rollup_changes, BucketWidth, Point, Series, SeriesBy, TimeseriesQuery, TopEntry, TopField,
    TopQuery,
};
pub use store::{DeadLetter, EpochWrite, SqliteStore, StoreError, WriteSummary};
