//! Rollup summaries against real stores over five hours of events and a range that starts and
//! ends inside hours: the hour path, the minute path and scanning the events all count the same,
//! on SQLite, plain PostgreSQL and (when tests/run.sh started one) TimescaleDB.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use securewatch_schemas::query::compile;
use securewatch_schemas::{Event, TenantScope};
use serde_json::Value as Json;

use super::tests::{event, rollups, start, Rows};
use super::*;
use crate::sinks::postgres::tests::{server_url, sink_at};
use crate::sinks::postgres::{LoadMethod, PostgresSink, TimescaleMode};
use crate::sinks::read::StoreReader;
use crate::sinks::sqlite::{SqliteConfig, SqliteStore};
use crate::sinks::EpochWrite;

/// Summaries and the path each takes on SQLite and plain PostgreSQL, then on TimescaleDB.
const QUERIES: &[(&str, SearchPath, SearchPath)] = &[
    ("events | summarize count() by bin(time, 1h), severity", SearchPath::HourRollup, SearchPath::HourRollup),
    ("events | summarize count() by bin(time, 2h)", SearchPath::HourRollup, SearchPath::HourRollup),
    ("events | summarize count()", SearchPath::HourRollup, SearchPath::HourRollup),
    (r#"events | where host == "web-01" or host == "db-01" | summarize n = count() by host"#, SearchPath::HourRollup, SearchPath::HourRollup),
    ("events | summarize count() by bin(time, 1h), category", SearchPath::HourRollup, SearchPath::HourRollup),
    ("events | summarize count() by bin(time, 1h), source.kind", SearchPath::HourRollup, SearchPath::HourRollup),
    ("events | summarize count() by bin(time, 1h), host, severity", SearchPath::Rollup, SearchPath::HourRollup),
    ("events | summarize count() by bin(time, 30m), severity", SearchPath::Rollup, SearchPath::Rollup),
];

/// 400 events of `acme` (one every 47 s: 5 h 13 min) and 50 of `globex`.
fn data() -> EpochWrite {
    let events: Vec<Event> = (0..400).map(|n| event("acme", n)).chain((0..50).map(|n| event("globex", n))).collect();
    EpochWrite { rollups: rollups(&events), events, ..EpochWrite::default() }
}

/// From 0:17 to 5:03: both ends inside an hour, on whole minutes (as the rollups count).
fn range() -> (DateTime<Utc>, DateTime<Utc>) {
    (start() + Duration::minutes(17), start() + Duration::minutes(5 * 60 + 3))
}

/// The rows of `text` on `reader` (sorted) and its path; with `rollups: None`, from the events.
async fn rows(reader: &StoreReader, dialect: Dialect, rollups: Option<RollupStore>, text: &str, scope: &TenantScope) -> (Vec<String>, SearchPath) {
    let (from, to) = range();
    let plan = compile(text, to).unwrap_or_else(|error| panic!("{text}: {error}"));
    let compiled = match rollups {
        Some(_) => reader.compile_search(&plan, scope, from, to),
        None => compile_search(&plan, dialect, None, scope, from, to),
    };
    let mut sink = Rows::default();
    reader.search(&compiled, from, to, &mut sink).await.unwrap_or_else(|error| panic!("{text}: {error}\n{}", compiled.sql));
    let mut rows: Vec<String> = sink.rows.iter().map(|row| Json::Array(row.clone()).to_string()).collect();
    rows.sort();
    (rows, compiled.path)
}

/// Every query on `reader` gives the rows of the event scan, for one tenant and for all, by the
/// path expected; returns the rows for comparing stores.
async fn same_as_the_events(reader: &StoreReader, dialect: Dialect, store: RollupStore) -> Vec<Vec<String>> {
    let mut answers = Vec::new();
    for scope in [TenantScope::Only(vec!["acme".into()]), TenantScope::All] {
        for (text, path, timescale_path) in QUERIES {
            let expected_path = if store == RollupStore::Timescale { timescale_path } else { path };
            let (rolled_up, path) = rows(reader, dialect, Some(store), text, &scope).await;
            let (scanned, scan_path) = rows(reader, dialect, None, text, &scope).await;
            assert_eq!(scan_path, SearchPath::Scan, "{text}");
            assert_eq!(&path, expected_path, "{text}");
            assert!(!scanned.is_empty(), "{text}: no rows");
            assert_eq!(rolled_up, scanned, "{text} ({scope:?}): rollups and events disagree");
            answers.push(rolled_up);
        }
    }
    answers
}

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    store.write_epochs(&data()).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn sqlite_hour_counts_equal_the_events() {
    let (_dir, store) = sqlite().await;
    let reader = StoreReader::new(store.clone(), None, None);
    let (_, path) = rows(&reader, Dialect::Sqlite, Some(RollupStore::Sqlite), QUERIES[0].0, &TenantScope::All).await;
    assert_eq!(path, SearchPath::HourRollup);
    same_as_the_events(&reader, Dialect::Sqlite, RollupStore::Sqlite).await;
    // Writing the same epoch again (a replay) changes no count.
    store.write_epochs(&data()).await.unwrap();
    same_as_the_events(&reader, Dialect::Sqlite, RollupStore::Sqlite).await;
    store.close().await;
}

async fn postgres_same_as_sqlite(postgres: PostgresSink, store_kind: RollupStore) {
    let (_dir, store) = sqlite().await;
    let expected = same_as_the_events(&StoreReader::new(store.clone(), None, None), Dialect::Sqlite, RollupStore::Sqlite).await;
    if store_kind == RollupStore::Timescale {
        // Its continuous aggregates count the events; small writes, as PGlite's wire server
        // loses track of large statements.
        for events in data().events.chunks(50) {
            postgres.write_epochs(&EpochWrite { events: events.to_vec(), ..EpochWrite::default() }).await.unwrap();
        }
    } else {
        postgres.write_epochs(&data()).await.unwrap();
    }
    let reader = StoreReader::new(store.clone(), Some(Arc::new(postgres)), None);
    assert_eq!(same_as_the_events(&reader, Dialect::Postgres, store_kind).await, expected);
    store.close().await;
}

#[tokio::test]
async fn postgres_hour_counts_equal_the_events() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    postgres_same_as_sqlite(sink_at(&url, "search_hours", |_| {}).await, RollupStore::PostgresPlain).await;
}

#[tokio::test]
async fn timescale_hour_counts_equal_the_events() {
    let Some(url) = server_url("SECUREWATCH_TEST_TIMESCALE_URL", "SECUREWATCH_REQUIRE_TIMESCALE") else { return };
    let postgres = sink_at(&url, "search_hours_timescale", |config| {
        config.timescale = TimescaleMode::On;
        config.pool_size = 1;
        config.statement_cache_capacity = 0;
        config.load = LoadMethod::Insert;
    })
    .await;
    postgres_same_as_sqlite(postgres, RollupStore::Timescale).await;
}
