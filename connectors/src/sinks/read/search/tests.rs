//! Searches against real stores: the same events in SQLite and PostgreSQL (plain and, when
//! tests/run.sh started one, TimescaleDB) give the same answers for every query of the README,
//! a tenant never sees another's rows, and a few answers are checked against a count in Rust.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use securewatch_schemas::query::compile;
use securewatch_schemas::{
    AlertLevel, Event, EventId, FieldValue, Fields, RawRecord, RecordMeta, RollupChange, RollupKey, Severity, Source,
    SourceKind, Tenant, TenantScope,
};
use serde_json::Value as Json;

use super::*;
use crate::sinks::postgres::tests::{server_url, sink_at};
use crate::sinks::postgres::{LoadMethod, TimescaleMode};
use crate::sinks::read::StoreReader;
use crate::sinks::rows::fixtures;
use crate::sinks::sqlite::{SqliteConfig, SqliteStore};
use crate::sinks::{DeadLetter, EpochWrite};

/// The README, whose `kql` block lists the examples.
const README: &str = include_str!("../../../../../README.md");

pub(super) fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// What `now()` is in the tests: the end of the events' hour.
fn now() -> DateTime<Utc> {
    start() + Duration::hours(1)
}

/// The README's query examples.
fn readme_queries() -> Vec<&'static str> {
    let block = README.split("```kql\n").nth(1).expect("the README has a kql block");
    let block = &block[..block.find("```").expect("closed")];
    block.lines().filter(|line| !line.trim().is_empty()).collect()
}

/// Event `n` of `tenant`: hosts, severities, categories, messages and fields in rotation, one
/// every 47 seconds from [`start`].
pub(super) fn event(tenant: &str, n: u32) -> Event {
    let messages = [
        "Failed password for root from 203.0.113.9 port 4711 ssh2",
        "login failed for alice",
        "access denied to /admin",
        "debug heartbeat",
        "disk almost full on /var",
        "user bob logged in",
    ];
    let mut fields = Fields::new();
    fields.insert("user".into(), FieldValue::Str(["alice", "bob", "carol"][n as usize % 3].into()));
    fields.insert("port".into(), FieldValue::Int(i64::from(800 + n * 97 % 5000)));
    fields.insert("bytes".into(), FieldValue::Int(i64::from(n * 131 % 1000)));
    if n % 4 == 0 {
        fields.insert("origin@32473.user".into(), FieldValue::Str("bob".into()));
    }
    let time = start() + Duration::seconds(i64::from(n) * 47);
    Event {
        id: EventId::from_parts([tenant.as_bytes(), &n.to_be_bytes()]),
        time,
        received: time + Duration::milliseconds(250),
        source: Source { kind: [SourceKind::Hec, SourceKind::Syslog][n as usize % 2], name: "main".into(), peer: None },
        tenant: Tenant::parse(tenant).unwrap(),
        host: [Some("web-01"), Some("web-02"), Some("db-01"), None, Some("web-01")][n as usize % 5].map(str::to_owned),
        severity: Severity::from_code((n % 8) as u8),
        category: [Some("auth"), Some("disk"), None, Some("net")][n as usize % 4].map(str::to_owned),
        message: messages[n as usize % messages.len()].to_owned(),
        fields,
        raw: None,
    }
}

/// The rollup rows the dataflow would write for `events`.
pub(super) fn rollups(events: &[Event]) -> Vec<RollupChange> {
    let mut counts: BTreeMap<(Tenant, RollupKey, u64), i64> = BTreeMap::new();
    for event in events {
        let bucket = securewatch_schemas::bucket_start(event.time.timestamp_millis() as u64);
        let source = RollupKey::Source { kind: event.source.kind, host: event.host.clone(), severity: event.severity };
        *counts.entry((event.tenant.clone(), source, bucket)).or_default() += 1;
        *counts.entry((event.tenant.clone(), RollupKey::Category(event.category.clone()), bucket)).or_default() += 1;
    }
    counts.into_iter().map(|((tenant, key, bucket_start_ms), count)| RollupChange { tenant, key, bucket_start_ms, count }).collect()
}

fn dead_letter(tenant: &str, reason: &'static str, minute: i64) -> DeadLetter {
    let record = RawRecord {
        kind: SourceKind::Hec,
        source_name: "main".into(),
        tenant: Tenant::parse(tenant).unwrap(),
        peer: None,
        received: start() + Duration::minutes(minute),
        body: b"{broken".to_vec(),
        meta: RecordMeta::None,
    };
    DeadLetter { record, reason, detail: "EOF while parsing".into() }
}

/// 70 events of `acme` over the hour, 20 of `globex`, alerts and dead letters of both.
fn data() -> EpochWrite {
    let acme: Vec<Event> = (0..70).map(|n| event("acme", n)).collect();
    let globex: Vec<Event> = (0..20).map(|n| event("globex", n)).collect();
    let mut alerts = Vec::new();
    for (events, level) in [(&acme[..5], AlertLevel::High), (&acme[10..12], AlertLevel::Low), (&globex[..3], AlertLevel::High)] {
        let refs: Vec<&Event> = events.iter().collect();
        let mut alert = fixtures::alert(&format!("rule-{}", events[0].tenant), level, &refs);
        alert.tenant = events[0].tenant.clone();
        alert.id = Alert::correlation_id(&alert.tenant, &alert.rule_id, &alert.group_key, alert.window_start_ms + u64::from(level == AlertLevel::Low));
        alerts.push((alert, 1));
    }
    let all: Vec<Event> = acme.into_iter().chain(globex).collect();
    EpochWrite {
        rollups: rollups(&all),
        events: all,
        dead_letters: vec![dead_letter("acme", "invalid_json", 3), dead_letter("acme", "too_large", 4), dead_letter("globex", "invalid_json", 5)],
        alerts,
        ..EpochWrite::default()
    }
}

use securewatch_schemas::Alert;

/// Collects rows.
#[derive(Default)]
pub(super) struct Rows {
    pub(super) rows: Vec<Vec<Json>>,
    progress: Vec<f64>,
    cap: Option<usize>,
}

impl SearchSink for Rows {
    fn row(&mut self, row: Vec<Json>) -> bool {
        self.rows.push(row);
        self.cap.is_none_or(|cap| self.rows.len() < cap)
    }

    fn progress(&mut self, scanned: f64) {
        self.progress.push(scanned);
    }
}

fn acme() -> TenantScope {
    TenantScope::Only(vec!["acme".into()])
}

/// Runs `text` over the events' hour for `scope`.
async fn search(reader: &StoreReader, text: &str, scope: &TenantScope) -> (Vec<Vec<Json>>, SearchPath) {
    let plan = compile(text, now()).unwrap_or_else(|error| panic!("{text}: {error}"));
    let (from, to) = (start(), now() + Duration::seconds(1));
    let compiled = reader.compile_search(&plan, scope, from, to);
    let mut rows = Rows::default();
    reader.search(&compiled, from, to, &mut rows).await.unwrap_or_else(|error| panic!("{text}: {error}\n{}", compiled.sql));
    assert_eq!(rows.progress.last(), Some(&1.0), "{text}");
    (rows.rows, compiled.path)
}

/// Every README query on `reader`, its rows sorted (row order is the store's where the query
/// names none) with the path each took.
async fn answers(reader: &StoreReader) -> Vec<(String, SearchPath, Vec<String>)> {
    let mut answers = Vec::new();
    for text in readme_queries() {
        let (rows, path) = search(reader, text, &acme()).await;
        let mut rows: Vec<String> = rows.iter().map(|row| Json::Array(row.clone()).to_string()).collect();
        rows.sort();
        answers.push((text.to_owned(), path, rows));
    }
    answers
}

async fn sqlite_reader() -> (tempfile::TempDir, SqliteStore, StoreReader) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    store.write_epochs(&data()).await.unwrap();
    let reader = StoreReader::new(store.clone(), None, None);
    (dir, store, reader)
}

#[tokio::test]
async fn sqlite_answers_every_readme_query_within_the_tenant() {
    let (_dir, store, reader) = sqlite_reader().await;
    let answers = answers(&reader).await;
    assert!(answers.len() >= 15, "the README lists the examples");
    for (text, _, rows) in &answers {
        assert!(!rows.is_empty(), "{text}: no rows; an example should show something");
        assert!(!rows.iter().any(|row| row.contains("globex")), "{text}: another tenant's rows");
    }
    let acme_events: Vec<Event> = (0..70).map(|n| event("acme", n)).collect();
    // Answers counted in Rust from the same events.
    let (rows, path) = search(&reader, r#"events | where host in ("web-01", "web-02") and not(message contains "debug") | count"#, &acme()).await;
    let expected = acme_events.iter().filter(|e| matches!(e.host.as_deref(), Some("web-01" | "web-02")) && !e.message.contains("debug")).count();
    assert_eq!((rows, path), (vec![vec![Json::from(expected)]], SearchPath::Scan));
    let (rows, path) = search(&reader, r#"events | where host == "web-01" | take 10"#, &acme()).await;
    assert_eq!(path, SearchPath::SlicedScan);
    let newest: Vec<&Event> = acme_events.iter().rev().filter(|e| e.host.as_deref() == Some("web-01")).take(10).collect();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0][0], Json::from(newest[0].time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)), "newest first");
    let (rows, path) = search(&reader, "events | summarize count() by bin(time, 5m), severity | sort by time asc, severity asc", &acme()).await;
    assert_eq!(path, SearchPath::Rollup);
    assert_eq!(rows.iter().map(|row| row[2].as_i64().unwrap()).sum::<i64>(), 70);
    let (rows, _) = search(&reader, r#"events | where message has "fail" | count"#, &acme()).await;
    assert_eq!(rows, vec![vec![Json::from(0)]], "`has` matches whole terms: `failed` is not `fail`");
    let (rows, _) = search(&reader, r#"events | where ['origin@32473.user'] == "bob" | count"#, &acme()).await;
    assert_eq!(rows, vec![vec![Json::from(acme_events.iter().filter(|e| e.fields.contains_key("origin@32473.user")).count())]]);
    let (rows, _) = search(&reader, "events | count", &TenantScope::Only(Vec::new())).await;
    assert_eq!(rows, vec![vec![Json::from(0)]], "an empty scope sees nothing");
    let (rows, _) = search(&reader, "events | count", &TenantScope::All).await;
    assert_eq!(rows, vec![vec![Json::from(90)]]);
    store.close().await;
}

#[tokio::test]
async fn a_sliced_scan_reports_progress_and_stops_at_the_sinks_cap() {
    let (_dir, store, reader) = sqlite_reader().await;
    let plan = compile("events | project time, host", now()).unwrap();
    let (from, to) = (start(), now());
    let compiled = reader.compile_search(&plan, &acme(), from, to);
    let mut rows = Rows::default();
    reader.search(&compiled, from, to, &mut rows).await.unwrap();
    assert_eq!(rows.rows.len(), 70);
    assert_eq!(rows.progress.len(), SLICES as usize + 1, "one step per slice, then done");
    assert!(rows.progress.windows(2).all(|pair| pair[0] <= pair[1]), "{:?}", rows.progress);
    let times: Vec<&str> = rows.rows.iter().map(|row| row[0].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|pair| pair[0] > pair[1]), "newest first across slices");
    let mut capped = Rows { cap: Some(7), ..Rows::default() };
    let outcome = reader.search(&compiled, from, to, &mut capped).await.unwrap();
    assert_eq!((capped.rows.len(), outcome.stopped), (7, true));
    store.close().await;
}

/// The README's queries on PostgreSQL equal SQLite's, row for row, and take the same paths.
async fn same_as_sqlite(postgres: crate::sinks::postgres::PostgresSink) {
    let (_dir, store, sqlite) = sqlite_reader().await;
    postgres.write_epochs(&data()).await.unwrap();
    let postgres = StoreReader::new(store.clone(), Some(Arc::new(postgres)), None);
    let (expected, actual) = (answers(&sqlite).await, answers(&postgres).await);
    for ((text, sqlite_path, sqlite_rows), (_, postgres_path, postgres_rows)) in expected.iter().zip(&actual) {
        assert_eq!(sqlite_rows, postgres_rows, "{text}");
        assert_eq!(sqlite_path, postgres_path, "{text}");
    }
    store.close().await;
}

#[tokio::test]
async fn postgres_answers_every_readme_query_as_sqlite_does() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    same_as_sqlite(sink_at(&url, "search", |_| {}).await).await;
}

#[tokio::test]
async fn timescale_answers_every_readme_query_as_sqlite_does() {
    let Some(url) = server_url("SECUREWATCH_TEST_TIMESCALE_URL", "SECUREWATCH_REQUIRE_TIMESCALE") else { return };
    let postgres = sink_at(&url, "search_timescale", |config| {
        config.timescale = TimescaleMode::On;
        config.pool_size = 1;
        config.statement_cache_capacity = 0;
        config.load = LoadMethod::Insert;
    })
    .await;
    same_as_sqlite(postgres).await;
}

#[tokio::test]
async fn the_deepest_queries_the_parser_accepts_compile_on_a_small_stack_and_run() {
    let depth = securewatch_schemas::query::MAX_DEPTH;
    let sum = format!("events | extend n = {} | where n == {depth} | count", vec!["1"; depth].join(" + "));
    let negations = format!("events | where {}host == 'web-01' | count", "not not ".repeat(16));
    let (_dir, _store, reader) = sqlite_reader().await;
    for text in [sum, negations] {
        let plan = compile(&text, now()).unwrap_or_else(|error| panic!("{error}"));
        let (from, to) = (start(), now() + Duration::seconds(1));
        // The SQL compiler recurses once per level: 1 MiB of stack (tokio's workers have 2) is
        // enough for the deepest plan, for either dialect.
        let on_small_stack = |dialect| {
            let plan = plan.clone();
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || compile_search(&plan, dialect, None, &acme(), from, to).sql)
                .unwrap()
                .join()
                .expect("compiles")
        };
        assert!(on_small_stack(Dialect::Postgres).contains("SELECT"));
        assert!(on_small_stack(Dialect::Sqlite).contains("SELECT"));
        let compiled = reader.compile_search(&plan, &acme(), from, to);
        let mut rows = Rows::default();
        reader.search(&compiled, from, to, &mut rows).await.unwrap_or_else(|error| panic!("{error}\n{}", compiled.sql));
        let web_01 = (0..70).map(|n| event("acme", n)).filter(|e| e.host.as_deref() == Some("web-01")).count();
        let expected = if text.contains("extend") { 70 } else { web_01 };
        assert_eq!(rows.rows, vec![vec![Json::from(expected)]], "{text}");
    }
}

/// The newest `n` of `events` whose host is web-01, as `[time, message]`, newest first.
fn newest_web01(events: &[Event], n: usize) -> Vec<Vec<Json>> {
    let mut matching: Vec<&Event> = events.iter().filter(|e| e.host.as_deref() == Some("web-01")).collect();
    matching.sort_by_key(|e| std::cmp::Reverse(e.time));
    let time = |e: &Event| Json::from(e.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    matching.iter().take(n).map(|e| vec![time(e), Json::from(e.message.clone())]).collect()
}

#[tokio::test]
async fn a_small_take_reads_the_rows_stored_last_only_when_they_are_the_newest() {
    let query = r#"events | where host == "web-01" | project time, message | take 10"#;
    let plan = compile(query, now()).unwrap();
    let (from, to) = (start(), now() + Duration::seconds(1));
    let in_order: Vec<Event> = (0..70).map(|n| event("acme", n)).collect();
    // Stored newest first: the rows stored last are the oldest.
    let reversed: Vec<Event> = in_order.iter().rev().cloned().collect();
    for (events, short_cut) in [(in_order.clone(), true), (reversed, false)] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        store.write_epochs(&EpochWrite { events: events.clone(), ..EpochWrite::default() }).await.unwrap();
        let reader = StoreReader::new(store.clone(), None, None);
        let compiled = reader.compile_search(&plan, &acme(), from, to);
        assert!(compiled.newest_stored_sql.is_some(), "{query}");
        let mut params = compiled.params.clone();
        params[0] = Param::Time(from);
        params[1] = Param::Time(to);
        *params.last_mut().unwrap() = Param::Int(10);
        let found = newest::newest_stored(store.pool(), &compiled, &params, to, 10).await.unwrap();
        assert_eq!(found.is_some(), short_cut, "the short cut is taken only when proven");
        if let Some((rows, oldest)) = found {
            assert_eq!(rows, newest_web01(&events, 10));
            assert_eq!(Json::from(oldest.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)), rows[9][0]);
        }
        // Either way the search answers the newest ten by time.
        let mut rows = Rows::default();
        reader.search(&compiled, from, to, &mut rows).await.unwrap();
        assert_eq!(rows.rows, newest_web01(&events, 10));
        store.close().await;
    }
}
