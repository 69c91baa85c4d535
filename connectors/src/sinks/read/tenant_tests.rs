//! Tenant isolation of every read, against a real SQLite store and a real PostgreSQL (plain and,
//! when tests/run.sh started one, TimescaleDB): a scope of one tenant never returns another's
//! events, alerts, dashboard counts or dead letters.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use securewatch_schemas::{
    Alert, AlertLevel, Event, EventId, Fields, RawRecord, RecordMeta, RollupChange, RollupKey, Severity, Source,
    SourceKind, Tenant, TenantScope,
};

use super::*;
use crate::sinks::postgres::tests::{server_url, sink_at};
use crate::sinks::postgres::{LoadMethod, TimescaleMode};
use crate::sinks::rows::fixtures;
use crate::sinks::sqlite::SqliteConfig;
use crate::sinks::{DeadLetter, EpochWrite};

/// One minute bucket, well inside any store's range.
const BUCKET_MS: u64 = 1_767_268_800_000;

fn tenant(name: &str) -> Tenant {
    Tenant::parse(name).unwrap()
}

fn only(name: &str) -> TenantScope {
    TenantScope::Only(vec![name.to_string()])
}

/// Event `n` of `tenant`, from that tenant's host, about user `alice` in both tenants.
fn event(tenant_name: &str, n: u64) -> Event {
    let mut fields = Fields::new();
    fields.insert("User".into(), "alice".into());
    Event {
        id: EventId::from_parts([tenant_name.as_bytes(), &n.to_be_bytes()]),
        time: DateTime::from_timestamp_millis((BUCKET_MS + n * 1_000) as i64).unwrap(),
        received: DateTime::from_timestamp_millis((BUCKET_MS + n * 1_000 + 5) as i64).unwrap(),
        source: Source { kind: SourceKind::Hec, name: format!("hec-{tenant_name}"), peer: Some("10.0.0.1:5000".into()) },
        tenant: tenant(tenant_name),
        host: Some(format!("{tenant_name}-web")),
        severity: Severity::Warning,
        category: Some("auth".into()),
        message: format!("failed login for alice at {tenant_name}"),
        fields,
        raw: None,
    }
}

/// The rollup rows the dataflow would write for `count` such events of `tenant_name`.
fn rollups(tenant_name: &str, count: i64) -> Vec<RollupChange> {
    let row = |key: RollupKey, count: i64| RollupChange { tenant: tenant(tenant_name), key, bucket_start_ms: BUCKET_MS, count };
    let source = RollupKey::Source { kind: SourceKind::Hec, host: Some(format!("{tenant_name}-web")), severity: Severity::Warning };
    vec![row(source, count), row(RollupKey::Category(Some("auth".into())), count), row(RollupKey::DistinctHosts, 1)]
}

/// A brute-force alert over `events` (all of one tenant), grouped by the same user in both.
fn alert(events: &[Event]) -> Alert {
    let refs: Vec<&Event> = events.iter().collect();
    let mut alert = fixtures::alert("brute", AlertLevel::High, &refs);
    alert.tenant = events[0].tenant.clone();
    alert.id = Alert::correlation_id(&alert.tenant, &alert.rule_id, &alert.group_key, alert.window_start_ms);
    alert
}

fn dead_letter(tenant_name: &str) -> DeadLetter {
    let record = RawRecord {
        kind: SourceKind::Hec,
        source_name: format!("hec-{tenant_name}").into(),
        tenant: tenant(tenant_name),
        peer: None,
        received: Utc::now(),
        body: format!("{{broken {tenant_name}").into_bytes(),
        meta: RecordMeta::None,
    };
    DeadLetter { record, reason: "invalid_json", detail: "EOF".into() }
}

/// Three events of `acme`, five of `globex`, an alert, rollups and a dead letter each; the
/// alert ids of both tenants' `acme` and `globex`.
fn two_tenants() -> (EpochWrite, EventId, EventId) {
    let acme: Vec<Event> = (0..3).map(|n| event("acme", n)).collect();
    let globex: Vec<Event> = (0..5).map(|n| event("globex", n)).collect();
    let (acme_alert, globex_alert) = (alert(&acme), alert(&globex));
    let ids = (acme_alert.id, globex_alert.id);
    assert_ne!(ids.0, ids.1, "the same group of two tenants is two alerts");
    let write = EpochWrite {
        events: acme.into_iter().chain(globex).collect(),
        dead_letters: vec![dead_letter("acme"), dead_letter("globex")],
        rollups: rollups("acme", 3).into_iter().chain(rollups("globex", 5)).collect(),
        alerts: vec![(acme_alert, 1), (globex_alert, 1)],
        ..EpochWrite::default()
    };
    (write, ids.0, ids.1)
}

fn tenants_of<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = names.map(str::to_string).collect();
    names.sort();
    names.dedup();
    names
}

/// Every read through `reader` under each scope.
async fn assert_isolated(reader: &StoreReader, acme_alert: EventId, globex_alert: EventId) {
    let events = EventQuery { limit: 100, ..EventQuery::default() };
    let (acme, globex, none) = (only("acme"), only("globex"), TenantScope::Only(Vec::new()));

    // Events and event pages.
    let read = reader.events(&events, &acme).await.unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!(tenants_of(read.iter().map(|event| event.tenant.as_str())), ["acme"]);
    assert_eq!(reader.events(&events, &globex).await.unwrap().len(), 5);
    assert_eq!(reader.events(&events, &TenantScope::All).await.unwrap().len(), 8);
    assert!(reader.events(&events, &none).await.unwrap().is_empty());
    let both = TenantScope::Only(vec!["acme".into(), "globex".into()]);
    assert_eq!(reader.events(&events, &both).await.unwrap().len(), 8);
    let by_user = EventQuery { q: Some("alice".into()), ..events.clone() };
    assert_eq!(reader.events(&by_user, &acme).await.unwrap().len(), 3, "a search stays inside the scope");
    let mut page_query = EventQuery { limit: 100, max_bytes: Some(1), ..EventQuery::default() };
    let mut paged = Vec::new();
    loop {
        let page = reader.event_page(&page_query, &acme).await.unwrap();
        paged.extend(page.events.into_iter().map(|event| event.tenant.to_string()));
        match page.next {
            Some(next) => page_query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ["acme", "acme", "acme"], "pages of one event each, all acme's");

    // History (backtests): chunks in event-time order, continuing after the last, in range.
    let from = DateTime::from_timestamp_millis(BUCKET_MS as i64).unwrap();
    let to = from + chrono::Duration::hours(1);
    for (scope, expected) in [(&acme, 3), (&globex, 5), (&TenantScope::All, 8), (&none, 0)] {
        let mut query = HistoryQuery { from, to, after: None, limit: 2 };
        let mut read: Vec<Event> = Vec::new();
        loop {
            let chunk = reader.history(&query, scope).await.unwrap();
            let Some(last) = chunk.last() else { break };
            query.after = Some(HistoryCursor { time_us: last.time.timestamp_micros(), id: last.id });
            read.extend(chunk);
        }
        assert_eq!(read.len(), expected, "{scope:?}");
        assert!(read.windows(2).all(|pair| (pair[0].time, pair[0].id) < (pair[1].time, pair[1].id)), "(time, id) order");
        if let TenantScope::Only(tenants) = scope {
            assert!(read.iter().all(|event| tenants.contains(&event.tenant.to_string())));
        }
    }
    let later = HistoryQuery { from: from + chrono::Duration::seconds(1), to: from + chrono::Duration::seconds(2), after: None, limit: 10 };
    let read = reader.history(&later, &TenantScope::All).await.unwrap();
    assert_eq!(read.len(), 2, "the events of second 1 of both tenants, none before `from` nor at `to`");

    // Dead letters.
    let letters = reader.dead_letters(10, &acme).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].tenant.as_str(), letters[0].body.as_str()), ("acme", "{broken acme"));
    assert_eq!(reader.dead_letters(10, &TenantScope::All).await.unwrap().len(), 2);
    assert!(reader.dead_letters(10, &none).await.unwrap().is_empty());

    // Alerts: the list, one by id (another tenant's reads as absent), its evidence.
    let alerts = reader.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &acme).await.unwrap();
    assert_eq!(alerts.iter().map(|alert| (alert.id, alert.tenant.as_str())).collect::<Vec<_>>(), [(acme_alert, "acme")]);
    assert_eq!(reader.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &TenantScope::All).await.unwrap().len(), 2);
    assert!(reader.alert(globex_alert, &acme).await.unwrap().is_none(), "globex's alert is not acme's to see");
    let (alert, evidence) = reader.alert(acme_alert, &acme).await.unwrap().expect("acme's own alert");
    assert_eq!(alert.event_ids.len(), 3);
    assert_eq!(evidence.len(), 3);
    assert_eq!(tenants_of(evidence.iter().map(|event| event.tenant.as_str())), ["acme"]);
    let (_, evidence) = reader.alert(globex_alert, &TenantScope::All).await.unwrap().unwrap();
    assert_eq!(tenants_of(evidence.iter().map(|event| event.tenant.as_str())), ["globex"]);

    // Dashboards: counts of the scope's tenants only.
    let range = (BUCKET_MS - 3_600_000, BUCKET_MS + 3_600_000);
    let top = |field| TopQuery { field, from_ms: range.0, to_ms: range.1, n: 10 };
    let entries = |entries: Vec<TopEntry>| entries.into_iter().map(|entry| (entry.value, entry.count)).collect::<Vec<_>>();
    assert_eq!(entries(reader.top(&top(TopField::Host), &acme).await.unwrap()), [("acme-web".to_string(), 3)]);
    assert_eq!(entries(reader.top(&top(TopField::Category), &acme).await.unwrap()), [("auth".to_string(), 3)]);
    assert_eq!(entries(reader.top(&top(TopField::Category), &globex).await.unwrap()), [("auth".to_string(), 5)]);
    assert_eq!(entries(reader.top(&top(TopField::Category), &TenantScope::All).await.unwrap()), [("auth".to_string(), 8)]);
    assert!(reader.top(&top(TopField::Source), &none).await.unwrap().is_empty());
    for bucket in [BucketWidth::Minute, BucketWidth::Hour] {
        let query = TimeseriesQuery { from_ms: range.0, to_ms: range.1, bucket, by: SeriesBy::Host };
        let series = reader.timeseries(&query, &acme).await.unwrap();
        let totals: Vec<(Option<String>, i64)> = series
            .iter()
            .map(|series| (series.key["host"].clone(), series.points.iter().map(|point| point.count).sum()))
            .collect();
        assert_eq!(totals, [(Some("acme-web".to_string()), 3)], "{bucket:?}");
        let query = TimeseriesQuery { by: SeriesBy::Source, ..query };
        let all: i64 = reader.timeseries(&query, &TenantScope::All).await.unwrap()[0].points.iter().map(|p| p.count).sum();
        assert_eq!(all, 8, "{bucket:?}");
    }
}

#[tokio::test]
async fn sqlite_reads_return_only_the_scopes_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let (write, acme_alert, globex_alert) = two_tenants();
    store.write_epochs(&write).await.unwrap();
    assert_isolated(&StoreReader::new(store.clone(), None, None), acme_alert, globex_alert).await;
    store.close().await;
}

/// Events and dead letters are read from SQLite, alerts and dashboards from PostgreSQL: with
/// both written, every PostgreSQL read is checked too (and its own alert evidence).
#[tokio::test]
async fn postgres_reads_return_only_the_scopes_tenants() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    let postgres = sink_at(&url, "tenants", |_| {}).await;
    check_postgres(postgres).await;
}

#[tokio::test]
async fn timescale_reads_return_only_the_scopes_tenants() {
    let Some(url) = server_url("SECUREWATCH_TEST_TIMESCALE_URL", "SECUREWATCH_REQUIRE_TIMESCALE") else { return };
    let postgres = sink_at(&url, "tenants_timescale", |config| {
        config.timescale = TimescaleMode::On;
        // As the flavour's own test: PGlite serves one connection, without COPY or named statements.
        config.pool_size = 1;
        config.statement_cache_capacity = 0;
        config.load = LoadMethod::Insert;
    })
    .await;
    check_postgres(postgres).await;
}

async fn check_postgres(postgres: crate::sinks::postgres::PostgresSink) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let (write, acme_alert, globex_alert) = two_tenants();
    store.write_epochs(&write).await.unwrap();
    postgres.write_epochs(&write).await.unwrap();
    let postgres = Arc::new(postgres);
    let (_, evidence) = postgres.alert(acme_alert, &only("acme")).await.unwrap().expect("acme's alert in PostgreSQL");
    assert_eq!(tenants_of(evidence.iter().map(|event| event.tenant.as_str())), ["acme"]);
    assert_eq!(evidence.len(), 3);
    assert!(postgres.alert(acme_alert, &only("globex")).await.unwrap().is_none());
    assert_isolated(&StoreReader::new(store.clone(), Some(postgres), None), acme_alert, globex_alert).await;
    store.close().await;
}
