//! The read side of the sinks: one interface over the stores, so a caller never asks which is
//! configured.
//!
//! Events, dead letters and enrichment tags are read from the embedded SQLite store, which every
//! write reaches; dashboards and alerts from PostgreSQL when it is configured (its continuous
//! aggregates or dashboard counts answer long ranges), else from SQLite.
//!
//! Every read takes the caller's [`TenantScope`] and returns only rows of its tenants: the
//! stores filter in SQL, so no handler filters by itself. Restores and backfills, which read
//! for the whole system, pass [`TenantScope::All`].

mod alerts;
mod dashboards;
mod enrichment;
mod events;
mod history;
pub mod search;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use securewatch_schemas::query::Plan;
use securewatch_schemas::{Alert, Event, EventId, TenantScope};
use tokio::sync::Semaphore;

pub use alerts::AlertQuery;
pub use dashboards::{BucketWidth, Point, Series, SeriesBy, TimeseriesQuery, TopEntry, TopField, TopQuery, HOUR_MS, MINUTE_MS};
pub use enrichment::{AssetTag, EnrichmentLookup, EventEnrichment, GeoTag, NetworkTag};
pub use events::{EventCursor, EventPage, EventQuery, StoredDeadLetter, StoredEvent};
pub use history::{HistoryCursor, HistoryQuery};

use super::audit::{AuditEntry, AuditQuery};
use super::opensearch::OpenSearchSink;
use super::postgres::{PostgresError, PostgresSink};
use super::sqlite::{SqliteStore, StoreError};

/// How long a store may take to answer a health check.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads of the embedded store running at once: its read pool has four connections, so one
/// always stays free for the health check; further reads wait for their turn.
pub const CONCURRENT_READS: usize = 3;

/// Longest a read may take, its wait for a turn included, before it answers
/// [`ReadError::OverBudget`].
pub const READ_BUDGET: Duration = Duration::from_secs(10);

/// Longest a read made while starting may take (restoring open buckets and windows): nothing
/// waits on it but the start, and a restart under load, when tens of thousands of events are read
/// back on a busy machine, is when it must not give up after an API read's budget.
pub const STARTUP_READ_BUDGET: Duration = Duration::from_secs(300);

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The embedded store failed.
    #[error("SQLite store: {0}")]
    Sqlite(#[from] StoreError),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] PostgresError),
    /// The read did not finish within its budget (other reads held the store); try again or
    /// narrow it.
    #[error("the read took longer than {seconds} s (the store is busy with other reads); narrow it or try again")]
    OverBudget {
        /// The budget in seconds.
        seconds: u64,
    },
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
    /// Turns of the reads ([`CONCURRENT_READS`]); health checks take none.
    turns: Arc<Semaphore>,
    budget: Duration,
}

impl StoreReader {
    /// A reader over the embedded store and the optional external sinks.
    pub fn new(sqlite: SqliteStore, postgres: Option<Arc<PostgresSink>>, opensearch: Option<OpenSearchSink>) -> Self {
        let turns = Arc::new(Semaphore::new(CONCURRENT_READS));
        StoreReader { sqlite, postgres, opensearch, turns, budget: READ_BUDGET }
    }

    /// The same reader with another read budget (tests).
    pub fn with_budget(self, budget: Duration) -> Self {
        StoreReader { budget, ..self }
    }

    /// The same reader for the reads a start makes before it serves: [`STARTUP_READ_BUDGET`].
    pub fn for_startup(&self) -> StoreReader {
        self.clone().with_budget(STARTUP_READ_BUDGET)
    }

    /// Runs `read` in a turn, within the budget.
    async fn in_turn<T, E: Into<ReadError>>(&self, read: impl Future<Output = Result<T, E>>) -> Result<T, ReadError> {
        let over_budget = ReadError::OverBudget { seconds: self.budget.as_secs() };
        let turn_and_read = async {
            let _turn = self.turns.acquire().await.expect("the turns are never closed");
            read.await.map_err(Into::into)
        };
        tokio::time::timeout(self.budget, turn_and_read).await.unwrap_or(Err(over_budget))
    }

    /// Events of `scope`'s tenants, newest first, by the filters of `query`.
    pub async fn events(&self, query: &EventQuery, scope: &TenantScope) -> Result<Vec<StoredEvent>, ReadError> {
        self.in_turn(self.sqlite.events(query, scope)).await
    }

    /// A page of events of `scope`'s tenants, newest first, ended early by `query.max_bytes`.
    pub async fn event_page(&self, query: &EventQuery, scope: &TenantScope) -> Result<EventPage, ReadError> {
        self.in_turn(self.sqlite.event_page(query, scope)).await
    }

    /// A chunk of `scope`'s stored events of a range in event-time order (backtests), from
    /// PostgreSQL when it is configured (as searches), else from the embedded store.
    pub async fn history(&self, query: &HistoryQuery, scope: &TenantScope) -> Result<Vec<Event>, ReadError> {
        match &self.postgres {
            Some(postgres) => self.in_turn(postgres.history(query, scope)).await,
            None => self.in_turn(self.sqlite.history(query, scope)).await,
        }
    }

    /// Which store [`StoreReader::history`] reads: `postgres` or `sqlite`.
    pub fn history_store(&self) -> &'static str {
        if self.postgres.is_some() { "postgres" } else { "sqlite" }
    }

    /// The enrichment tags of each event of `lookups`, in the same order.
    pub async fn event_enrichment(&self, lookups: &[EnrichmentLookup]) -> Result<Vec<EventEnrichment>, ReadError> {
        self.in_turn(self.sqlite.event_enrichment(lookups)).await
    }

    /// The newest `limit` dead letters of `scope`'s tenants.
    pub async fn dead_letters(&self, limit: u32, scope: &TenantScope) -> Result<Vec<StoredDeadLetter>, ReadError> {
        self.in_turn(self.sqlite.dead_letters(limit, scope)).await
    }

    /// Event counts of `scope`'s tenants over time from the rollups.
    pub async fn timeseries(&self, query: &TimeseriesQuery, scope: &TenantScope) -> Result<Vec<Series>, ReadError> {
        match &self.postgres {
            Some(postgres) => self.in_turn(postgres.timeseries(query, scope)).await,
            None => self.in_turn(self.sqlite.timeseries(query, scope)).await,
        }
    }

    /// The top values of a rolled-up dimension over a range, counting `scope`'s tenants.
    pub async fn top(&self, query: &TopQuery, scope: &TenantScope) -> Result<Vec<TopEntry>, ReadError> {
        match &self.postgres {
            Some(postgres) => self.in_turn(postgres.top(query, scope)).await,
            None => self.in_turn(self.sqlite.top(query, scope)).await,
        }
    }

    /// Alerts of `scope`'s tenants by the filters of `query`, newest `last_seen` first.
    pub async fn alerts(&self, query: &AlertQuery, scope: &TenantScope) -> Result<Vec<Alert>, ReadError> {
        match &self.postgres {
            Some(postgres) => self.in_turn(postgres.alerts(query, scope)).await,
            None => self.in_turn(self.sqlite.alerts(query, scope)).await,
        }
    }

    /// One alert with its evidence events, when it exists and is of `scope`'s tenants (an
    /// alert of another tenant reads as absent).
    pub async fn alert(&self, id: EventId, scope: &TenantScope) -> Result<Option<(Alert, Vec<Event>)>, ReadError> {
        match &self.postgres {
            Some(postgres) => self.in_turn(postgres.alert(id, scope)).await,
            None => self.in_turn(self.sqlite.alert(id, scope)).await,
        }
    }

    /// `plan` compiled for the store that answers searches (PostgreSQL when configured, else
    /// SQLite) over `[from, to)` and the tenants of `scope`: what [`StoreReader::search`] runs
    /// and `explain` shows.
    pub fn compile_search(&self, plan: &Plan, scope: &TenantScope, from: DateTime<Utc>, to: DateTime<Utc>) -> search::CompiledSearch {
        let (dialect, rollups) = match &self.postgres {
            Some(postgres) => (search::Dialect::Postgres, postgres.rollup_store()),
            None => (search::Dialect::Sqlite, search::RollupStore::Sqlite),
        };
        search::compile_search(plan, dialect, Some(rollups), scope, from, to)
    }

    /// Runs a search compiled by [`StoreReader::compile_search`] over `[from, to)`, streaming
    /// its rows into `sink`. It takes a read turn for as long as it runs (no read budget: jobs
    /// bound their own time and number).
    pub async fn search(
        &self,
        compiled: &search::CompiledSearch,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        sink: &mut dyn search::SearchSink,
    ) -> Result<search::SearchOutcome, ReadError> {
        let _turn = self.turns.acquire().await.expect("the turns are never closed");
        match &self.postgres {
            Some(postgres) => search::run(search::Pool::Postgres(postgres.pool()), compiled, from, to, sink)
                .await
                .map_err(|error| ReadError::Postgres(PostgresError::Sql(error))),
            None => search::run(search::Pool::Sqlite(self.sqlite.pool()), compiled, from, to, sink)
                .await
                .map_err(|error| ReadError::Sqlite(StoreError::Sql(error))),
        }
    }

    /// Audit log entries of the tenants of `scope`, newest first, from the embedded store (which
    /// every entry reaches).
    pub async fn audit(&self, scope: &TenantScope, query: &AuditQuery) -> Result<Vec<AuditEntry>, ReadError> {
        self.in_turn(self.sqlite.audit(scope, query)).await
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

#[cfg(test)]
mod tenant_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::sqlite::SqliteConfig;

    /// Issue 24 finding 3: long reads held every connection of the store, so health answered 503
    /// and a small read waited 30 s. Reads now take turns that leave a connection to health, and
    /// a read that cannot finish within its budget says so.
    #[tokio::test]
    async fn reads_take_turns_within_a_budget_and_leave_health_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let reader = StoreReader::new(store.clone(), None, None).with_budget(Duration::from_millis(300));
        assert!(reader.events(&EventQuery { limit: 10, ..EventQuery::default() }, &TenantScope::All).await.unwrap().is_empty());

        // Every turn taken by reads that run long: health still answers at once...
        let held: Vec<_> = (0..CONCURRENT_READS).map(|_| reader.turns.clone().try_acquire_owned().unwrap()).collect();
        let started = std::time::Instant::now();
        assert_eq!(reader.health().await, vec![StoreHealth { name: "sqlite", state: Ok(()) }]);
        assert!(started.elapsed() < Duration::from_secs(1), "health waited {:?}", started.elapsed());
        // ...and a further read answers within its budget that it could not run.
        let error = reader.dead_letters(10, &TenantScope::All).await.unwrap_err();
        assert!(matches!(error, ReadError::OverBudget { .. }), "{error}");
        drop(held);
        assert!(reader.dead_letters(10, &TenantScope::All).await.unwrap().is_empty(), "a turn free again: the read runs");
        store.close().await;
    }

    /// The fleet's worker-kill tests failed at load average 15-25: the restart's restore read
    /// waited longer than an API read's 10 s budget and the worker gave up starting.
    #[tokio::test]
    async fn a_start_up_read_waits_past_the_api_budget_for_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let reader = StoreReader::new(store.clone(), None, None).with_budget(Duration::from_millis(200));
        let held: Vec<_> = (0..CONCURRENT_READS).map(|_| reader.turns.clone().try_acquire_owned().unwrap()).collect();
        let query = EventQuery { limit: 10, ..EventQuery::default() };
        let error = reader.events(&query, &TenantScope::All).await.unwrap_err();
        assert!(matches!(error, ReadError::OverBudget { .. }), "an API read gives up: {error}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            drop(held);
        });
        let startup = reader.for_startup();
        assert!(startup.events(&query, &TenantScope::All).await.unwrap().is_empty(), "the start-up read waits for its turn");
        release.await.unwrap();
        store.close().await;
    }
}
