//! Tests against a real PostgreSQL (`SECUREWATCH_TEST_POSTGRES_URL`, started by tests/run.sh)
//! and, for the TimescaleDB flavour, a real TimescaleDB (`SECUREWATCH_TEST_TIMESCALE_URL`).
//! Each test works in a schema of its own, dropped and created anew.

use chrono::{DateTime, Days, Duration, DurationRound, Utc};
use securewatch_schemas::{RollupChange, RollupKey, TenantScope};
use securewatch_schemas::{AlertLevel, Event, EventId, FieldValue, Fields, Severity, Source, SourceKind};
use sqlx::postgres::PgPoolOptions;

use super::*;
use crate::sinks::rows::fixtures::{alert, Xorshift};
use crate::sinks::sqlite::{SqliteConfig, SqliteStore};
use crate::sinks::{DeadLetter, EpochWrite};
use crate::sinks::read::{AlertQuery, BucketWidth, SeriesBy, TimeseriesQuery, TopField, TopQuery};

const MINUTE: u64 = 60_000;

/// The server URL in `variable`, or `None` (test skipped, with the reason printed) unless
/// `require` is set to 1, when a missing server fails the test.
pub(crate) fn server_url(variable: &str, require: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var(require).as_deref() == Ok("1") => panic!("{require}=1 but {variable} is not set"),
        _ => {
            eprintln!("skipped: {variable} is not set (tests/run.sh starts a server and sets it)");
            None
        }
    }
}

/// A sink on a fresh schema `t_<name>` of the test PostgreSQL, configured by `tweak`.
async fn sink(name: &str, tweak: impl FnOnce(&mut PostgresConfig)) -> Option<PostgresSink> {
    let url = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES")?;
    Some(sink_at(&url, name, tweak).await)
}

pub(crate) async fn sink_at(url: &str, name: &str, tweak: impl FnOnce(&mut PostgresConfig)) -> PostgresSink {
    let schema = format!("t_{name}");
    let admin = PgPoolOptions::new().max_connections(1).connect(url).await.expect("connect to the test server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&admin).await.unwrap();
    admin.close().await;
    let mut config = PostgresConfig { url: url.to_string(), schema: Some(schema), pool_size: 2, ..PostgresConfig::default() };
    tweak(&mut config);
    PostgresSink::connect(&config).await.expect("sink connects and migrates")
}

fn event(seed: &str, time: DateTime<Utc>) -> Event {
    let mut fields = Fields::new();
    fields.insert("user".into(), FieldValue::Str(format!("user-{seed}")));
    fields.insert("bytes".into(), FieldValue::Int(seed.len() as i64));
    Event {
        tenant: Default::default(),
        id: EventId::from_parts([seed.as_bytes()]),
        time,
        received: time + Duration::seconds(1),
        source: Source { kind: SourceKind::Hec, name: "hec-main".into(), peer: Some("10.0.0.1:5000".into()) },
        host: Some(format!("web-{}", seed.len() % 3)),
        severity: Severity::Warning,
        category: seed.len().is_multiple_of(2).then(|| "auth".to_string()),
        message: format!("event {seed} with ünïcode"),
        fields,
        raw: Some(format!("{{\"event\":\"{seed}\"}}")),
    }
}

fn events(prefix: &str, count: usize, start: DateTime<Utc>) -> Vec<Event> {
    (0..count).map(|n| event(&format!("{prefix}-{n}"), start + Duration::milliseconds(n as i64 * 37))).collect()
}

fn now_minute() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::minutes(1)).unwrap()
}

async fn scalar(sink: &PostgresSink, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(sink.pool()).await.unwrap()
}

#[tokio::test]
async fn replayed_epochs_store_every_event_exactly_once_with_copy_and_with_insert() {
    for (name, load) in [("replay_copy", LoadMethod::Copy), ("replay_insert", LoadMethod::Insert)] {
        let Some(sink) = sink(name, |config| {
            config.load = load;
            config.batch_rows = 700; // several batches per write
        })
        .await
        else {
            return;
        };
        assert_eq!(sink.flavour(), Flavour::Plain, "the test server has no TimescaleDB");
        let start = now_minute() - Duration::hours(2);
        let first = EpochWrite { events: events("a", 2000, start), ..EpochWrite::default() };
        let summary = sink.write_epochs(&first).await.unwrap();
        assert_eq!((summary.written, summary.duplicates, summary.dead_lettered), (2000, 0, 0), "{name}");
        // The replay of the same epoch, then an overlapping one with new events and a batch
        // holding the same event twice.
        assert_eq!(sink.write_epochs(&first).await.unwrap().duplicates, 2000, "{name}: replay");
        let mut overlap = events("a", 2500, start);
        overlap.push(overlap[2400].clone());
        let summary = sink.write_epochs(&EpochWrite { events: overlap, ..EpochWrite::default() }).await.unwrap();
        assert_eq!((summary.written, summary.duplicates), (500, 2001), "{name}: overlap");
        assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 2500, "{name}");
        assert_eq!(scalar(&sink, "SELECT count(DISTINCT id) FROM events").await, 2500, "{name}");
        // Columns round-trip (binary COPY encoding included).
        type Stored = (String, Option<String>, i16, Option<String>, String, String, Option<String>, DateTime<Utc>);
        let stored: Stored =
            sqlx::query_as(
                "SELECT source_name, host, severity, category, message, fields::text, raw, received FROM events \
                 WHERE id = $1",
            )
            .bind(EventId::from_parts([b"a-4".as_slice()]).to_bytes().to_vec())
            .fetch_one(sink.pool())
            .await
            .unwrap();
        let expected = event("a-4", start + Duration::milliseconds(4 * 37));
        assert_eq!(stored.0, "hec-main");
        assert_eq!(stored.1, expected.host);
        assert_eq!(stored.2, i16::from(Severity::Warning.code()));
        assert_eq!(stored.3, expected.category);
        assert_eq!(stored.4, expected.message);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stored.5).unwrap(), serde_json::to_value(&expected.fields).unwrap());
        assert_eq!(stored.6, expected.raw);
        assert_eq!(stored.7, expected.received);
        sink.close().await;
    }
}

#[tokio::test]
async fn rows_postgres_would_refuse_are_dead_lettered_while_the_rest_lands() {
    let Some(sink) = sink("bad_rows", |_| {}).await else { return };
    let start = now_minute() - Duration::minutes(30);
    let mut batch = events("good", 100, start);
    let mut nul_message = event("nul-message", start);
    nul_message.message = "before\0after".into();
    let mut nul_field = event("nul-field", start);
    nul_field.fields.insert("cmd".into(), FieldValue::Str("a\0b".into()));
    let mut ancient = event("ancient", start);
    ancient.time = chrono::NaiveDate::from_ymd_opt(-5000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    batch.insert(10, nul_message);
    batch.insert(50, nul_field);
    batch.push(ancient);
    let parse_failure = DeadLetter {
        record: securewatch_schemas::RawRecord {
            tenant: Default::default(),
            kind: SourceKind::Syslog,
            source_name: "syslog\0udp".into(),
            peer: None,
            received: start,
            body: vec![0xff, 0x00, 0xfe], // not UTF-8: stored as bytes
            meta: securewatch_schemas::RecordMeta::None,
        },
        reason: "invalid_syslog",
        detail: "no PRI".into(),
    };
    let write = EpochWrite { events: batch, dead_letters: vec![parse_failure], ..EpochWrite::default() };
    let summary = sink.write_epochs(&write).await.unwrap();
    assert_eq!((summary.written, summary.duplicates, summary.dead_lettered), (100, 0, 4));
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 100);
    let letters: Vec<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT reason, detail, body FROM dead_letters ORDER BY seq").fetch_all(sink.pool()).await.unwrap();
    assert_eq!(letters[0], ("invalid_syslog".into(), "no PRI".into(), vec![0xff, 0x00, 0xfe]));
    let rejected: Vec<&(String, String, Vec<u8>)> = letters[1..].iter().collect();
    assert!(rejected.iter().all(|(reason, ..)| reason == REJECTED_REASON));
    assert!(rejected[0].1.contains("message contains a NUL byte"), "{}", rejected[0].1);
    assert!(rejected[1].1.contains("jsonb"), "{}", rejected[1].1);
    assert!(rejected[2].1.contains("outside PostgreSQL's timestamp range"), "{}", rejected[2].1);
    // The dead letter keeps the whole event, NUL included (as JSON).
    let kept: Event = serde_json::from_slice(&rejected[0].2).unwrap();
    assert_eq!(kept.message, "before\0after");
    sink.close().await;
}

#[tokio::test]
async fn a_batch_the_server_refuses_is_retried_row_by_row_and_only_the_bad_row_is_dead_lettered() {
    for (name, load) in [("refused_copy", LoadMethod::Copy), ("refused_insert", LoadMethod::Insert)] {
        let Some(sink) = sink(name, |config| config.load = load).await else { return };
        // A rule only the server knows about: the checks before COPY cannot see it.
        sqlx::raw_sql("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (message <> 'poison')")
            .execute(sink.pool())
            .await
            .unwrap();
        let start = now_minute() - Duration::minutes(10);
        let mut batch = events("ok", 60, start);
        let mut poison = event("poison", start);
        poison.message = "poison".into();
        batch.insert(30, poison);
        batch.push(batch[0].clone()); // a duplicate is still counted as one in the row-by-row path
        let summary = sink.write_epochs(&EpochWrite { events: batch.clone(), ..EpochWrite::default() }).await.unwrap();
        assert_eq!((summary.written, summary.duplicates, summary.dead_lettered), (60, 1, 1), "{name}");
        let detail: String = sqlx::query_scalar("SELECT detail FROM dead_letters").fetch_one(sink.pool()).await.unwrap();
        assert!(detail.contains("no_poison"), "{name}: {detail}");
        // Replaying the same batch: nothing new stored, the poison row refused again.
        let summary = sink.write_epochs(&EpochWrite { events: batch, ..EpochWrite::default() }).await.unwrap();
        assert_eq!((summary.written, summary.duplicates, summary.dead_lettered), (0, 61, 1), "{name}");
        assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 60, "{name}");
        sink.close().await;
    }
}

#[tokio::test]
async fn rollup_upserts_and_deletes_give_the_same_tables_and_dashboards_as_sqlite() {
    let Some(sink) = sink("rollups", |_| {}).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    let mut keys = vec![RollupKey::DistinctHosts, RollupKey::Category(None), RollupKey::Category(Some("auth".into()))];
    for kind in [SourceKind::Hec, SourceKind::Syslog] {
        for host in [None, Some("web-1"), Some("db-1")] {
            for severity in [Severity::Error, Severity::Informational] {
                keys.push(RollupKey::Source { kind, host: host.map(str::to_string), severity });
            }
        }
    }
    let base = 1_700_000_000_000 / MINUTE * MINUTE;
    let mut random = Xorshift(0x5eed);
    for round in 0..6 {
        let mut changes = Vec::new();
        for _ in 0..300 {
            let key = keys[random.below(keys.len() as u64) as usize].clone();
            let bucket = base + random.below(180) * MINUTE;
            // A third of the changes bring a row to zero: deletes.
            let count = if random.below(3) == 0 { 0 } else { 1 + random.below(50) as i64 };
            changes.push(RollupChange { tenant: Default::default(), key, bucket_start_ms: bucket, count });
        }
        let late = vec![(base + random.below(10) * MINUTE, 1 + random.below(4) as i64)];
        let write = EpochWrite { rollups: changes, late, ..EpochWrite::default() };
        sqlite.write_epochs(&write).await.unwrap();
        sink.write_epochs(&write).await.unwrap();
        // A replayed write changes nothing, the dashboard counts included.
        sink.write_epochs(&EpochWrite { rollups: write.rollups.clone(), ..EpochWrite::default() }).await.unwrap();
        assert_eq!(sink.rollup_rows().await.unwrap(), sqlite.rollup_rows().await.unwrap(), "round {round}");
    }
    assert!(sink.rollup_rows().await.unwrap().len() > 100, "the comparison covers many rows");
    assert_eq!(sink.late_counts(0, u64::MAX / 2).await.unwrap(), sqlite.late_counts(0, u64::MAX / 2).await.unwrap());
    // Ranges with whole hours inside (read from the hourly counts on plain PostgreSQL), with
    // hour-aligned ends, and inside one hour.
    let hour = 60 * MINUTE;
    let first_hour = base - base % hour + hour;
    let ranges = [
        (base, base + 180 * MINUTE),
        (base + 17 * MINUTE, base + 95 * MINUTE),
        (first_hour, first_hour + 2 * hour),
        (first_hour - 5 * MINUTE, first_hour + hour + 7 * MINUTE),
        (first_hour + 3 * MINUTE, first_hour + 40 * MINUTE),
    ];
    for (from_ms, to_ms) in ranges {
        for bucket in [BucketWidth::Minute, BucketWidth::Hour] {
            for by in [SeriesBy::Source, SeriesBy::Host, SeriesBy::Severity, SeriesBy::Category] {
                let query = TimeseriesQuery { from_ms, to_ms, bucket, by };
                assert_eq!(sink.timeseries(&query, &TenantScope::All).await.unwrap(), sqlite.timeseries(&query, &TenantScope::All).await.unwrap(), "{query:?}");
            }
        }
        for field in [TopField::Host, TopField::Category, TopField::Severity, TopField::Source] {
            let query = TopQuery { field, from_ms, to_ms, n: 3 };
            assert_eq!(sink.top(&query, &TenantScope::All).await.unwrap(), sqlite.top(&query, &TenantScope::All).await.unwrap(), "{query:?}");
        }
    }
    // The hourly dashboard counts add up to the minute ones and to the rollups.
    let sources = scalar(&sink, "SELECT COALESCE(SUM(count), 0)::bigint FROM rollup_source").await;
    let categories = scalar(&sink, "SELECT COALESCE(SUM(count), 0)::bigint FROM rollup_category").await;
    for table in ["dashboard_1m", "dashboard_1h"] {
        for (dimension, expected) in [("source", sources), ("host", sources), ("severity", sources), ("category", categories)] {
            let sql = format!("SELECT COALESCE(SUM(count), 0)::bigint FROM {table} WHERE dimension = '{dimension}'");
            assert_eq!(scalar(&sink, &sql).await, expected, "{table} {dimension}");
        }
    }
    // The views under the aggregate names read the same counts.
    let total: i64 = scalar(&sink, "SELECT COALESCE(SUM(count), 0)::bigint FROM rollup_1h").await;
    assert_eq!(total, scalar(&sink, "SELECT COALESCE(SUM(count), 0)::bigint FROM rollup_source").await);
    sink.close().await;
}

async fn partitions(sink: &PostgresSink) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn daily_partitions_are_created_ahead_and_old_days_move_out_of_the_default_partition() {
    let Some(sink) = sink("partitions", |config| {
        config.partitions_ahead_days = 4;
        config.partitions_behind_days = 1;
    })
    .await
    else {
        return;
    };
    let today = Utc::now().date_naive();
    let mut expected: Vec<String> = (0..=5).map(|n| partitions::partition_name(today - Days::new(1) + Days::new(n))).collect();
    expected.insert(0, "events_default".into());
    assert_eq!(partitions(&sink).await, expected);
    // Today's and an old day's events: the old one lands in the default partition.
    let old_day = today - Days::new(40);
    let old_time = old_day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let mut batch = events("today", 5, now_minute());
    batch.extend(events("old", 3, old_time));
    assert_eq!(sink.write_epochs(&EpochWrite { events: batch, ..EpochWrite::default() }).await.unwrap().written, 8);
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events_default").await, 3);
    assert_eq!(scalar(&sink, &format!("SELECT count(*) FROM {}", partitions::partition_name(today))).await, 5);
    // Creating the old day's partition moves its rows out of the default one; nothing is lost.
    let created = sink.ensure_partitions(old_day, old_day).await.unwrap();
    assert_eq!(created, vec![partitions::partition_name(old_day)]);
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events_default").await, 0);
    assert_eq!(scalar(&sink, &format!("SELECT count(*) FROM {}", partitions::partition_name(old_day))).await, 3);
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 8);
    // Replays still find the moved rows (the key spans partitions).
    let again = events("old", 3, old_time);
    assert_eq!(sink.write_epochs(&EpochWrite { events: again, ..EpochWrite::default() }).await.unwrap().duplicates, 3);
    assert!(sink.ensure_partitions(old_day, today).await.unwrap().len() == 40 - 1 - 1, "the days in between");
    sink.close().await;
}

fn progress(partition: &str, position: &str, epoch: u64) -> SourceProgress {
    SourceProgress { source: "kafka-events".into(), partition: partition.into(), position: position.into(), epoch }
}

#[tokio::test]
async fn source_progress_commits_with_the_results_or_not_at_all() {
    let Some(sink) = sink("progress", |_| {}).await else { return };
    let start = now_minute() - Duration::minutes(5);
    let rollup = RollupChange {
        tenant: Default::default(),
        key: RollupKey::Category(Some("auth".into())),
        bucket_start_ms: start.timestamp_millis() as u64,
        count: 7,
    };
    let write = EpochWrite { events: events("p1", 50, start), rollups: vec![rollup.clone()], ..EpochWrite::default() };
    sink.write_epochs_with_progress(&write, &[progress("0", "1000", 3), progress("1", "2000", 3)]).await.unwrap();
    assert_eq!(sink.progress("kafka-events").await.unwrap(), vec![progress("0", "1000", 3), progress("1", "2000", 3)]);

    // A write whose transaction fails at its last step stores neither its results nor its positions.
    sqlx::raw_sql("ALTER TABLE source_progress ADD CONSTRAINT no_boom CHECK (position <> 'boom')")
        .execute(sink.pool())
        .await
        .unwrap();
    let failing = EpochWrite {
        events: events("p2", 50, start),
        rollups: vec![RollupChange { count: 99, ..rollup.clone() }],
        late: vec![(0, 5)],
        ..EpochWrite::default()
    };
    let error = sink.write_epochs_with_progress(&failing, &[progress("0", "boom", 4)]).await.unwrap_err();
    assert!(error.to_string().contains("no_boom"), "{error}");
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 50, "no event of the failed write");
    assert_eq!(scalar(&sink, "SELECT count FROM rollup_category").await, 7, "no rollup of the failed write");
    assert_eq!(scalar(&sink, "SELECT count(*) FROM rollup_late").await, 0, "no late count of the failed write");
    assert_eq!(sink.progress("kafka-events").await.unwrap()[0], progress("0", "1000", 3));

    // Retried: everything at once. A position of an older epoch never replaces a newer one.
    sink.write_epochs_with_progress(&failing, &[progress("0", "1500", 4), progress("1", "1999", 2)]).await.unwrap();
    assert_eq!(scalar(&sink, "SELECT count(*) FROM events").await, 100);
    assert_eq!(sink.progress("kafka-events").await.unwrap(), vec![progress("0", "1500", 4), progress("1", "2000", 3)]);
    sink.close().await;
}

#[tokio::test]
async fn alerts_round_trip_are_replaced_on_replay_and_retracted() {
    let Some(sink) = sink("alerts", |_| {}).await else { return };
    let batch = events("al", 6, now_minute() - Duration::minutes(3));
    let brute = alert("brute-force", AlertLevel::High, &[&batch[0], &batch[1], &batch[2]]);
    let single = alert("single", AlertLevel::High, &[&batch[5]]);
    let write = EpochWrite {
        events: batch.clone(),
        alerts: vec![(brute.clone(), 1), (single.clone(), 1)],
        ..EpochWrite::default()
    };
    sink.write_epochs(&write).await.unwrap();
    sink.write_epochs(&write).await.unwrap(); // replay
    let query = AlertQuery { limit: 10, ..AlertQuery::default() };
    let stored = sink.alerts(&query, &TenantScope::All).await.unwrap();
    assert_eq!(stored, vec![single.clone(), brute.clone()], "newest last-seen first, events included");
    // Late data grows the alert: the new version replaces the old one and its event list.
    let grown = alert("brute-force", AlertLevel::High, &[&batch[0], &batch[1], &batch[2], &batch[3]]);
    assert_eq!(grown.id, brute.id, "same rule, group and window");
    sink.write_epochs(&EpochWrite { alerts: vec![(brute.clone(), -1), (grown.clone(), 1)], ..EpochWrite::default() })
        .await
        .unwrap();
    let high = sink.alerts(&AlertQuery { rule_id: Some("brute-force".into()), ..query.clone() }, &TenantScope::All).await.unwrap();
    assert_eq!(high, vec![grown.clone()]);
    sink.write_epochs(&EpochWrite { alerts: vec![(single, -1)], ..EpochWrite::default() }).await.unwrap();
    assert_eq!(sink.alerts(&query, &TenantScope::All).await.unwrap(), vec![grown]);
    assert_eq!(scalar(&sink, "SELECT count(*) FROM alert_events").await, 4);
    sink.close().await;
}

#[tokio::test]
async fn timescale_on_refuses_a_server_without_the_extension() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    let config = PostgresConfig {
        url,
        schema: Some("t_timescale_on".into()),
        timescale: TimescaleMode::On,
        ..PostgresConfig::default()
    };
    let error = PostgresSink::connect(&config).await.unwrap_err();
    assert!(error.to_string().contains("timescaledb"), "{error}");
    let bad = PostgresConfig { schema: Some("Bad-Name".into()), ..config };
    assert!(matches!(PostgresSink::connect(&bad).await, Err(PostgresError::Config(_))));
}

/// The TimescaleDB flavour against a real TimescaleDB (tests/services/timescale.sh serves the
/// TimescaleDB build of PGlite over TCP): hypertable, continuous aggregates and their policies,
/// refresh through `run_job`, real-time aggregation, and the dashboard queries over them.
#[tokio::test]
async fn timescale_hypertable_continuous_aggregates_and_policies() {
    let Some(url) = server_url("SECUREWATCH_TEST_TIMESCALE_URL", "SECUREWATCH_REQUIRE_TIMESCALE") else { return };
    let sink = sink_at(&url, "timescale", |config| {
        config.timescale = TimescaleMode::On;
        // PGlite's socket server serves one connection and does not take COPY.
        config.pool_size = 1;
        // Its sessions share one backend, so named prepared statements of an earlier session clash.
        config.statement_cache_capacity = 0;
        config.load = LoadMethod::Insert;
        config.compress_after_days = Some(7);
        config.retention_days = Some(30);
    })
    .await;
    assert_eq!(sink.flavour(), Flavour::Timescale);
    let hypertables = scalar(&sink, "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'events' \
         AND hypertable_schema = current_schema()").await;
    assert_eq!(hypertables, 1);
    let aggregates: Vec<String> = sqlx::query_scalar(
        "SELECT view_name::text FROM timescaledb_information.continuous_aggregates \
         WHERE view_schema = current_schema() ORDER BY 1",
    )
    .fetch_all(sink.pool())
    .await
    .unwrap();
    assert_eq!(aggregates, ["rollup_1h", "rollup_1m", "rollup_category_1h", "rollup_category_1m"]);
    let jobs = sink.timescale_jobs().await.unwrap();
    let procedures: Vec<(&str, &str)> = jobs.iter().map(|job| (job.procedure.as_str(), job.target.as_str())).collect();
    for expected in [
        ("policy_refresh_continuous_aggregate", "rollup_1m"),
        ("policy_refresh_continuous_aggregate", "rollup_1h"),
        ("policy_refresh_continuous_aggregate", "rollup_category_1m"),
        ("policy_refresh_continuous_aggregate", "rollup_category_1h"),
        ("policy_compression", "events"),
        ("policy_retention", "events"),
    ] {
        assert!(procedures.contains(&expected), "{expected:?} in {procedures:?}");
    }

    // 90 events over the last hour-and-a-half (inside the 1-minute aggregates' refresh window).
    let start = now_minute() - Duration::minutes(90);
    let batch: Vec<Event> = (0..90).map(|n| event(&format!("ts-{n}"), start + Duration::minutes(n))).collect();
    let summary = sink.write_epochs(&EpochWrite { events: batch.clone(), ..EpochWrite::default() }).await.unwrap();
    assert_eq!((summary.written, summary.duplicates), (90, 0));
    assert_eq!(sink.write_epochs(&EpochWrite { events: batch, ..EpochWrite::default() }).await.unwrap().duplicates, 90);

    // Real-time aggregation: the aggregates count the events before any refresh...
    assert_eq!(scalar(&sink, "SELECT sum(count)::bigint FROM rollup_1m").await, 90);
    assert_eq!(scalar(&sink, "SELECT sum(count)::bigint FROM rollup_1h").await, 90);
    // ...but nothing is materialised until the refresh job runs (no background workers here).
    sqlx::raw_sql("ALTER MATERIALIZED VIEW rollup_1m SET (timescaledb.materialized_only = true)")
        .execute(sink.pool())
        .await
        .unwrap();
    assert_eq!(scalar(&sink, "SELECT count(*) FROM rollup_1m").await, 0, "not refreshed yet");
    let refresh_1m = jobs.iter().find(|job| job.target == "rollup_1m").expect("the refresh job of rollup_1m");
    sink.run_job(refresh_1m.id).await.unwrap();
    let refreshed = scalar(&sink, "SELECT COALESCE(sum(count), 0)::bigint FROM rollup_1m").await;
    assert!(refreshed > 0 && refreshed <= 90, "run_job materialised the closed buckets: {refreshed}");
    sqlx::raw_sql("ALTER MATERIALIZED VIEW rollup_1m SET (timescaledb.materialized_only = false)")
        .execute(sink.pool())
        .await
        .unwrap();
    for job in &jobs {
        sink.run_job(job.id).await.unwrap_or_else(|error| panic!("job {job:?}: {error}"));
    }

    // The dashboard queries read the aggregates.
    let (from_ms, to_ms) = (start.timestamp_millis() as u64, (now_minute() + Duration::minutes(1)).timestamp_millis() as u64);
    let series = sink.timeseries(&TimeseriesQuery { from_ms, to_ms, bucket: BucketWidth::Minute, by: SeriesBy::Source }, &TenantScope::All).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].points.iter().map(|point| point.count).sum::<i64>(), 90);
    assert_eq!(series[0].points.len(), 90);
    let top = sink.top(&TopQuery { field: TopField::Host, from_ms, to_ms, n: 5 }, &TenantScope::All).await.unwrap();
    assert_eq!(top.iter().map(|entry| entry.count).sum::<i64>(), 90);
    let hourly = sink.timeseries(&TimeseriesQuery { from_ms: 0, to_ms, bucket: BucketWidth::Hour, by: SeriesBy::Category }, &TenantScope::All).await.unwrap();
    assert_eq!(hourly.iter().flat_map(|series| &series.points).map(|point| point.count).sum::<i64>(), 90);
    sink.close().await;
}

#[tokio::test]
async fn audit_entries_are_appended_and_never_changed() {
    let Some(sink) = sink("audit", |_| {}).await else { return };
    let entry = crate::sinks::AuditEntry {
        time: Utc::now(),
        identity: "grafana".into(),
        tenant: "acme".into(),
        action: "tokens:write".into(),
        resource: "token grafana".into(),
        outcome: crate::sinks::AuditOutcome::Ok,
        peer: Some("cli".into()),
        detail: "created".into(),
    };
    sink.append_audit(&entry).await.unwrap();
    sink.append_audit(&entry).await.unwrap();
    assert_eq!(scalar(&sink, "SELECT count(*) FROM audit_log WHERE tenant = 'acme' AND outcome = 'ok'").await, 2);
    for statement in ["UPDATE audit_log SET outcome = 'refused'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let error = sqlx::raw_sql(statement).execute(sink.pool()).await.unwrap_err().to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(scalar(&sink, "SELECT count(*) FROM audit_log").await, 2);
}

// ===== TLS =====

#[tokio::test]
async fn verify_full_goes_over_tls_with_the_ca_file_and_refuses_another_ca() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    let Some(ca) = server_url("SECUREWATCH_TEST_POSTGRES_CA", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    let sink = sink_at(&url, "tls_verify_full", |config| {
        config.sslmode = Some(PgSslMode::VerifyFull);
        config.ssl_root_cert_file = Some(ca.clone().into());
    })
    .await;
    let query = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let (ssl, version): (bool, Option<String>) = sqlx::query_as(query).fetch_one(&sink.pool).await.unwrap();
    assert!(ssl, "verify-full connects over TLS");
    assert!(version.is_some_and(|version| version == "TLSv1.3" || version == "TLSv1.2"));
    let plain = sink_at(&url, "tls_disabled", |config| config.sslmode = Some(PgSslMode::Disable)).await;
    let (ssl,): (bool,) = sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&plain.pool).await.unwrap();
    assert!(!ssl);
    // A CA that did not sign the server's certificate: refused, the path of nothing leaked.
    let other = crate::tls::unrelated_ca_file();
    let config = PostgresConfig {
        url: url.clone(),
        sslmode: Some(PgSslMode::VerifyFull),
        ssl_root_cert_file: Some(other.path().to_path_buf()),
        ..PostgresConfig::default()
    };
    let error = PostgresSink::connect(&config).await.unwrap_err().to_string();
    assert!(error.to_lowercase().contains("certificate") || error.contains("UnknownIssuer"), "{error}");
    // The password comes from a file; a file that is missing is named in the error.
    let missing = PostgresConfig { password_file: Some("/nonexistent/pg-password".into()), ..config };
    let error = PostgresSink::connect(&missing).await.unwrap_err().to_string();
    assert!(error.contains("password_file: cannot read /nonexistent/pg-password"), "{error}");
}
