//! Alert upserts, retractions, replays and the alert queries against a real SQLite store.

use chrono::{DateTime, Utc};

use securewatch_schemas::{AlertLevel, Event, EventId, Fields, Severity, Source, SourceKind};

use super::*;
use crate::sinks::sqlite::SqliteConfig;
use crate::sinks::rows::fixtures::alert;
use crate::sinks::EpochWrite;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn event(seed: &str, seconds: i64) -> Event {
    Event {
        tenant: Default::default(),
        id: EventId::from_parts([seed.as_bytes()]),
        time: at(seconds),
        received: at(seconds),
        source: Source { kind: SourceKind::Wazuh, name: "wazuh".into(), peer: None },
        host: Some("dc-01".into()),
        severity: Severity::Warning,
        category: None,
        message: format!("event {seed}"),
        fields: Fields::new(),
        raw: None,
    }
}

#[tokio::test]
async fn alerts_are_stored_replaced_retracted_and_read_back_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let (a, b, c) = (event("a", 100), event("b", 160), event("c", 400));
    let brute = alert("brute", AlertLevel::High, &[&a, &b]);
    let single = alert("single", AlertLevel::Low, &[&c]);
    let write = EpochWrite {
        events: vec![a.clone(), b.clone(), c.clone()],
        alerts: vec![(brute.clone(), 1), (single.clone(), 1)],
        ..EpochWrite::default()
    };
    store.write_epochs(&write).await.unwrap();
    store.write_epochs(&write).await.unwrap(); // a replayed epoch changes nothing

    let newest = store.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &TenantScope::All).await.unwrap();
    assert_eq!(newest, vec![single.clone(), brute.clone()], "newest last-seen first, exactly as written");
    let high = AlertQuery { limit: 10, level: Some("high".into()), ..AlertQuery::default() };
    assert_eq!(store.alerts(&high, &TenantScope::All).await.unwrap(), vec![brute.clone()]);
    let window = AlertQuery { limit: 10, from: Some(at(150)), to: Some(at(300)), ..AlertQuery::default() };
    assert_eq!(store.alerts(&window, &TenantScope::All).await.unwrap(), vec![brute.clone()]);
    let by_rule = AlertQuery { limit: 10, rule_id: Some("single".into()), ..AlertQuery::default() };
    assert_eq!(store.alerts(&by_rule, &TenantScope::All).await.unwrap(), vec![single.clone()]);

    let (stored, events) = store.alert(brute.id, &TenantScope::All).await.unwrap().unwrap();
    assert_eq!(stored, brute);
    assert_eq!(events, vec![a.clone(), b.clone()], "contributing events, oldest first");

    // A late event extends the alert (same id, one more event), then late data retracts it.
    let d = event("d", 200);
    let extended = alert("brute", AlertLevel::High, &[&a, &b, &d]);
    assert_eq!(extended.id, brute.id);
    store
        .write_epochs(&EpochWrite { events: vec![d.clone()], alerts: vec![(brute.clone(), -1), (extended.clone(), 1)], ..EpochWrite::default() })
        .await
        .unwrap();
    let (stored, events) = store.alert(brute.id, &TenantScope::All).await.unwrap().unwrap();
    assert_eq!(stored.event_ids.len(), 3);
    assert_eq!(events, vec![a, b, d]);
    store.write_epochs(&EpochWrite { alerts: vec![(extended, -1)], ..EpochWrite::default() }).await.unwrap();
    assert!(store.alert(brute.id, &TenantScope::All).await.unwrap().is_none());
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_events").fetch_one(store.pool()).await.unwrap();
    assert_eq!(keys, 1, "only the remaining alert's event key is left");
}
