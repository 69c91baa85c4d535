//! Retention against a real SQLite store: old events, alerts with their links, dead letters and
//! rollup buckets go, recent ones stay, and the background task trims from its start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use securewatch_schemas::{
    AlertLevel, Event, EventId, Fields, RawRecord, RecordMeta, RollupChange, RollupKey, Severity, Source, SourceKind,
    TenantScope,
};

use super::{SqliteConfig, SqliteStore};
use crate::sinks::read::{AlertQuery, EventQuery};
use crate::sinks::rows::fixtures;
use crate::sinks::{DeadLetter, EpochWrite};

const HOUR_MS: i64 = 3_600_000;

fn event(n: u64, time_ms: i64) -> Event {
    Event {
        tenant: Default::default(),
        id: EventId::from_parts([&n.to_be_bytes()[..]]),
        time: DateTime::from_timestamp_millis(time_ms).unwrap(),
        received: Utc::now(),
        source: Source { kind: SourceKind::Syslog, name: "syslog".into(), peer: None },
        host: Some("web-1".into()),
        severity: Severity::Notice,
        category: None,
        message: format!("event {n}"),
        fields: Fields::new(),
        raw: None,
    }
}

fn dead_letter(received_ms: i64) -> DeadLetter {
    let record = RawRecord {
        kind: SourceKind::Hec,
        source_name: "hec".into(),
        tenant: Default::default(),
        peer: None,
        received: DateTime::from_timestamp_millis(received_ms).unwrap(),
        body: b"{broken".to_vec(),
        meta: RecordMeta::None,
    };
    DeadLetter { record, reason: "invalid_json", detail: "EOF".into() }
}

fn rollup(bucket_start_ms: i64) -> RollupChange {
    let key = RollupKey::Source { kind: SourceKind::Syslog, host: Some("web-1".into()), severity: Severity::Notice };
    RollupChange { tenant: Default::default(), key, bucket_start_ms: (bucket_start_ms / 60_000 * 60_000) as u64, count: 3 }
}

/// 30 events three hours old and 20 from now, an alert over each group, a dead letter and a
/// rollup bucket of each age.
fn old_and_new(now_ms: i64) -> EpochWrite {
    let old: Vec<Event> = (0..30).map(|n| event(n, now_ms - 3 * HOUR_MS + n as i64)).collect();
    let new: Vec<Event> = (100..120).map(|n| event(n, now_ms - 60_000 + n as i64)).collect();
    let alert = |events: &[Event], rule: &str| fixtures::alert(rule, AlertLevel::High, &events.iter().collect::<Vec<_>>());
    EpochWrite {
        alerts: vec![(alert(&old, "old"), 1), (alert(&new, "new"), 1)],
        events: old.into_iter().chain(new).collect(),
        dead_letters: vec![dead_letter(now_ms - 3 * HOUR_MS), dead_letter(now_ms)],
        rollups: vec![rollup(now_ms - 3 * HOUR_MS), rollup(now_ms - 60_000)],
        ..EpochWrite::default()
    }
}

async fn count(store: &SqliteStore, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(store.pool()).await.unwrap()
}

#[tokio::test]
async fn rows_older_than_the_cutoff_go_and_newer_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let now_ms = Utc::now().timestamp_millis();
    store.write_epochs(&old_and_new(now_ms)).await.unwrap();
    assert_eq!((count(&store, "events").await, count(&store, "alert_events").await), (50, 50));

    let trimmed = store.trim_older_than(now_ms - HOUR_MS).await.unwrap();
    assert_eq!(trimmed.of("events"), 30);
    assert_eq!(trimmed.of("alerts"), 1);
    assert_eq!(trimmed.of("dead_letters"), 1);
    assert_eq!(trimmed.of("rollup_source"), 1);
    let events = store.events(&EventQuery { limit: 100, ..EventQuery::default() }, &TenantScope::All).await.unwrap();
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|event| event.message.starts_with("event 1")), "only the new ones are left");
    let alerts = store.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &TenantScope::All).await.unwrap();
    assert_eq!(alerts.iter().map(|alert| alert.rule_id.as_str()).collect::<Vec<_>>(), ["new"]);
    assert_eq!(count(&store, "alert_events").await, 20, "the old alert's links went with it");
    assert_eq!(count(&store, "dead_letters").await, 1);
    assert_eq!(count(&store, "rollup_source").await, 1);

    assert_eq!(store.trim_older_than(now_ms - HOUR_MS).await.unwrap().tables, [], "a second round finds nothing");
    store.close().await;
}

#[tokio::test]
async fn more_rows_than_a_batch_are_trimmed_in_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let old_ms = Utc::now().timestamp_millis() - 5 * HOUR_MS;
    let events: Vec<Event> = (0..12_345).map(|n| event(n, old_ms + n as i64)).collect();
    store.write_epochs(&EpochWrite { events, ..EpochWrite::default() }).await.unwrap();
    let trimmed = store.trim_older_than(old_ms + 12_000).await.unwrap();
    assert_eq!(trimmed.of("events"), 12_000);
    assert_eq!(count(&store, "events").await, 345);
    store.close().await;
}

#[tokio::test]
async fn the_background_task_trims_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    store.write_epochs(&old_and_new(Utc::now().timestamp_millis())).await.unwrap();
    store.start_retention(Duration::from_secs(3600));
    let mut left = count(&store, "events").await;
    for _ in 0..100 {
        if left == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = count(&store, "events").await;
    }
    assert_eq!(left, 20, "the first round ran at start");
    store.close().await;
}
