//! The read side of the sinks: one interface over the stores, so a caller never asks which is
//! configured.
//!
//! Events, dead letters and enrichment tags are read from the embedded SQLite store, which every
//! write reaches; dashboards and alerts from PostgreSQL when it is configured (its continuous
//! aggregates or dashboard counts answer long ranges), else from SQLite.

mod alerts;
mod dashboards;
mod enrichment;
mod events;

use std::sync::Arc;
use std::time::Duration;

use securewatch_schemas::{Alert, Event, EventId};

pub use alerts::AlertQuery;
pub use dashboards::{BucketWidth, Point, Series, SeriesBy, TimeseriesQuery, TopEntry, TopField, TopQuery, HOUR_MS, MINUTE_MS};
pub use enrichment::{AssetTag, EnrichmentLookup, EventEnrichment, GeoTag, NetworkTag};
pub use events::{EventQuery, StoredDeadLetter, StoredEvent};

use super::opensearch::OpenSearchSink;
use super::postgres::{PostgresError, PostgresSink};
use super::sqlite::{SqliteStore, StoreError};

/// How long a store may take to answer a health check.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The embedded store failed.
    #[error("SQLite store: {0}")]
    Sqlite(#[from] StoreError),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] PostgresError),
}

/// Whether one store answered its health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// `sqlite`, `postgres` or `opensearch`.
    pub name: &'static str,
    /// `Ok` when it answered, else why not.
    pub state: Result<(), String>,
}

/// Reads over the configured stores. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StoreReader {
    sqlite: SqliteStore,
    postgres: Option<Arc<PostgresSink>>,
    opensearch: Option<OpenSearchSink>,
}

impl StoreReader {
    /// A reader over the embedded store and the optional external sinks.
    pub fn new(sqlite: SqliteStore, postgres: Option<Arc<PostgresSink>>, opensearch: Option<OpenSearchSink>) -> Self {
        StoreReader { sqlite, postgres, opensearch }
    }

    /// Events, newest first, by the filters of `query`.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, ReadError> {
        Ok(self.sqlite.events(query).await?)
    }

    /// The enrichment tags of each event of `lookups`, in the same order.
    pub async fn event_enrichment(&self, lookups: &[EnrichmentLookup]) -> Result<Vec<EventEnrichment>, ReadError> {
        Ok(self.sqlite.event_enrichment(lookups).await?)
    }

    /// The newest `limit` dead letters.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<StoredDeadLetter>, ReadError> {
        Ok(self.sqlite.dead_letters(limit).await?)
    }

    /// Event counts over time from the rollups.
    pub async fn timeseries(&self, query: &TimeseriesQuery) -> Result<Vec<Series>, ReadError> {
        match &self.postgres {
            Some(postgres) => Ok(postgres.timeseries(query).await?),
            None => Ok(self.sqlite.timeseries(query).await?),
        }
    }

    /// The top values of a rolled-up dimension over a range.
    pub async fn top(&self, query: &TopQuery) -> Result<Vec<TopEntry>, ReadError> {
        match &self.postgres {
            Some(postgres) => Ok(postgres.top(query).await?),
            None => Ok(self.sqlite.top(query).await?),
        }
    }

    /// Alerts by the filters of `query`, newest `last_seen` first.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, ReadError> {
        match &self.postgres {
            Some(postgres) => Ok(postgres.alerts(query).await?),
            None => Ok(self.sqlite.alerts(query).await?),
        }
    }

    /// One alert with its evidence events, when it exists.
    pub async fn alert(&self, id: EventId) -> Result<Option<(Alert, Vec<Event>)>, ReadError> {
        match &self.postgres {
            Some(postgres) => Ok(postgres.alert(id).await?),
            None => Ok(self.sqlite.alert(id).await?),
        }
    }

    /// Whether each configured store answers within [`HEALTH_TIMEOUT`]; SQLite first.
    pub async fn health(&self) -> Vec<StoreHealth> {
        let sqlite = within_timeout(self.sqlite.ping());
        let postgres = async {
            match &self.postgres {
                Some(postgres) => Some(within_timeout(postgres.ping()).await),
                None => None,
            }
        };
        let opensearch = async {
            match &self.opensearch {
                Some(opensearch) => Some(within_timeout(opensearch.ping()).await),
                None => None,
            }
        };
        let (sqlite, postgres, opensearch) = tokio::join!(sqlite, postgres, opensearch);
        let mut health = vec![StoreHealth { name: "sqlite", state: sqlite }];
        health.extend(postgres.map(|state| StoreHealth { name: "postgres", state }));
        health.extend(opensearch.map(|state| StoreHealth { name: "opensearch", state }));
        health
    }
}

/// `Ok` or why the check failed or took longer than [`HEALTH_TIMEOUT`].
async fn within_timeout<E: std::fmt::Display>(check: impl std::future::Future<Output = Result<(), E>>) -> Result<(), String> {
    match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
    }
}
