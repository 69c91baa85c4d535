//! A PostgreSQL or TimescaleDB schema made by a build before tenants (the migrations before
//! the tenant ones applied, rows written without a tenant) connects, migrates, and reads as the
//! `default` tenant's: events, alerts with their evidence, dead letters and dashboard counts;
//! new rows of other tenants then sit beside the migrated ones.

use std::borrow::Cow;

use securewatch_schemas::{Event, EventId, Fields, RollupChange, RollupKey, Severity, Source, SourceKind, Tenant, TenantScope};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use super::tests::server_url;
use super::{Flavour, LoadMethod, PostgresConfig, PostgresSink, TimescaleMode};
use crate::sinks::read::{AlertQuery, BucketWidth, SeriesBy, TimeseriesQuery, TopField, TopQuery};
use crate::sinks::rows::fixtures;
use crate::sinks::EpochWrite;

/// The first migration of each folder that knows tenants.
const COMMON_TENANTS: i64 = 2;
const PLAIN_TENANTS: i64 = 103;
const TIMESCALE_TENANTS: i64 = 202;

/// One minute bucket (2026-01-01 12:00 UTC), and the range the dashboard reads ask for.
const BUCKET_MS: i64 = 1_767_268_800_000;
const RANGE: (u64, u64) = (BUCKET_MS as u64 - 3_600_000, BUCKET_MS as u64 + 3_600_000);

/// The old build's rows: two events of host web-1, an alert over both, a dead letter, and (for
/// the plain flavour, whose dashboards read tables the dataflow writes) their counts.
const OLD_ROWS: &str = "
    INSERT INTO events (time, id, received, source_kind, source_name, peer, host, severity, category, message, fields, raw)
    VALUES (to_timestamp(1767268800.5), '\\x00000000000000000000000000000001', to_timestamp(1767268801), 'syslog',
            'syslog', NULL, 'web-1', 4, 'auth', 'old event one', '{}', NULL),
           (to_timestamp(1767268810.5), '\\x00000000000000000000000000000002', to_timestamp(1767268811), 'syslog',
            'syslog', NULL, 'web-1', 4, 'auth', 'old event two', '{}', NULL);
    INSERT INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start, window_end, fired_at,
                        first_seen, last_seen)
    VALUES ('\\x0f0e0d0c0b0a09080706050403020100', 'old-rule', 'Old alert', 'high', 'rule', '[]', '{}',
            to_timestamp(1767268800), to_timestamp(1767268860), to_timestamp(1767268820),
            to_timestamp(1767268800.5), to_timestamp(1767268810.5));
    INSERT INTO alert_events (alert_id, event_id)
    VALUES ('\\x0f0e0d0c0b0a09080706050403020100', '\\x00000000000000000000000000000001'),
           ('\\x0f0e0d0c0b0a09080706050403020100', '\\x00000000000000000000000000000002');
    INSERT INTO dead_letters (received, source_kind, source_name, peer, reason, detail, body)
    VALUES (to_timestamp(1767268800), 'hec', 'hec', NULL, 'invalid_json', 'EOF', '\\x7b');
    INSERT INTO rollup_source (bucket_start_ms, source_kind, host, severity, count) VALUES (1767268800000, 'syslog', 'web-1', 4, 2);
    INSERT INTO rollup_category (bucket_start_ms, category, count) VALUES (1767268800000, 'auth', 2);
    INSERT INTO rollup_hosts (bucket_start_ms, distinct_hosts) VALUES (1767268800000, 1);";

const OLD_DASHBOARD_ROWS: &str = "
    INSERT INTO dashboard_1m (dimension, bucket_start_ms, value, count)
    VALUES ('source', 1767268800000, 'syslog', 2), ('host', 1767268800000, 'web-1', 2),
           ('severity', 1767268800000, '4', 2), ('category', 1767268800000, 'auth', 2);
    INSERT INTO dashboard_1h (dimension, bucket_start_ms, value, count)
    VALUES ('source', 1767268800000, 'syslog', 2), ('host', 1767268800000, 'web-1', 2),
           ('severity', 1767268800000, '4', 2), ('category', 1767268800000, 'auth', 2);";

/// A pool on `schema` (made anew) of the server at `url`.
async fn fresh_schema(url: &str, schema: &str) -> PgPool {
    let admin = PgPoolOptions::new().max_connections(1).connect(url).await.expect("connect to the test server");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let search_path = format!("SET search_path TO {schema}, public");
    // Unnamed statements only, as PGlite (the TimescaleDB of tests/run.sh) needs.
    let options: PgConnectOptions = url.parse::<PgConnectOptions>().unwrap().statement_cache_capacity(0);
    PgPoolOptions::new()
        .max_connections(1)
        .after_connect(move |connection, _| {
            let search_path = search_path.clone();
            Box::pin(async move {
                sqlx::raw_sql(AssertSqlSafe(search_path)).execute(&mut *connection).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .unwrap()
}

/// Applies the migrations of `migrator` older than `first_with_tenants`, as the old build did.
async fn apply_before(pool: &PgPool, mut migrator: sqlx::migrate::Migrator, first_with_tenants: i64) {
    let earlier: Vec<_> = migrator.migrations.iter().filter(|m| m.version < first_with_tenants).cloned().collect();
    assert!(!earlier.is_empty());
    migrator.migrations = Cow::Owned(earlier);
    migrator.set_ignore_missing(true);
    migrator.run(pool).await.expect("the old migrations apply");
}

/// A schema as the build before tenants left it, holding [`OLD_ROWS`].
async fn old_schema(url: &str, schema: &str, flavour: Flavour) {
    let pool = fresh_schema(url, schema).await;
    if flavour == Flavour::Timescale {
        sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public").execute(&pool).await.unwrap();
    }
    apply_before(&pool, sqlx::migrate!("../schemas/sql/postgres/common"), COMMON_TENANTS).await;
    match flavour {
        Flavour::Plain => apply_before(&pool, sqlx::migrate!("../schemas/sql/postgres/plain"), PLAIN_TENANTS).await,
        Flavour::Timescale => apply_before(&pool, sqlx::migrate!("../schemas/sql/postgres/timescale"), TIMESCALE_TENANTS).await,
    }
    let has_tenant: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = 'events' AND column_name = 'tenant')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!has_tenant, "the old schema has no tenant column");
    sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
    if flavour == Flavour::Plain {
        sqlx::raw_sql(OLD_DASHBOARD_ROWS).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// An event of `tenant` from host web-1 in the same minute as the old rows.
fn new_event(tenant: &str, n: u8) -> Event {
    Event {
        tenant: Tenant::parse(tenant).unwrap(),
        id: EventId::from_parts([tenant.as_bytes(), &[n]]),
        time: chrono::DateTime::from_timestamp_millis(BUCKET_MS + 20_000 + i64::from(n)).unwrap(),
        received: chrono::DateTime::from_timestamp_millis(BUCKET_MS + 21_000).unwrap(),
        source: Source { kind: SourceKind::Syslog, name: "syslog".into(), peer: None },
        host: Some("web-1".into()),
        severity: Severity::Warning,
        category: Some("auth".into()),
        message: format!("new event {n} of {tenant}"),
        fields: Fields::new(),
        raw: None,
    }
}

/// The host rollup row of `tenant` for the minute, at `count`.
fn rollup(tenant: &str, count: i64) -> RollupChange {
    let key = RollupKey::Source { kind: SourceKind::Syslog, host: Some("web-1".into()), severity: Severity::Warning };
    RollupChange { tenant: Tenant::parse(tenant).unwrap(), key, bucket_start_ms: BUCKET_MS as u64, count }
}

/// Host counts of the dashboard's top list for `scope`.
async fn top_hosts(sink: &PostgresSink, scope: &TenantScope) -> Vec<(String, i64)> {
    let query = TopQuery { field: TopField::Host, from_ms: RANGE.0, to_ms: RANGE.1, n: 5 };
    sink.top(&query, scope).await.unwrap().into_iter().map(|entry| (entry.value, entry.count)).collect()
}

/// The count of the hourly host series for `scope`, summed.
async fn hourly_count(sink: &PostgresSink, scope: &TenantScope) -> i64 {
    let query = TimeseriesQuery { from_ms: RANGE.0, to_ms: RANGE.1, bucket: BucketWidth::Hour, by: SeriesBy::Host };
    let series = sink.timeseries(&query, scope).await.unwrap();
    series.iter().flat_map(|series| series.points.iter()).map(|point| point.count).sum()
}

async fn check_upgrade(url: &str, schema: &str, flavour: Flavour, tweak: impl FnOnce(&mut PostgresConfig)) {
    old_schema(url, schema, flavour).await;
    let mut config = PostgresConfig { url: url.to_string(), schema: Some(schema.into()), pool_size: 2, ..PostgresConfig::default() };
    tweak(&mut config);
    let sink = PostgresSink::connect(&config).await.expect("the old schema connects and migrates");
    assert_eq!(sink.flavour(), flavour);
    let default = TenantScope::Only(vec!["default".into()]);
    let acme = TenantScope::Only(vec!["acme".into()]);

    // Every old row is the default tenant's, and nobody else's.
    let tenants: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tenant FROM events").fetch_all(sink.pool()).await.unwrap();
    assert_eq!(tenants, ["default"]);
    let letters: Vec<String> = sqlx::query_scalar("SELECT tenant FROM dead_letters").fetch_all(sink.pool()).await.unwrap();
    assert_eq!(letters, ["default"]);
    let alerts = sink.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &default).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].rule_id.as_str(), alerts[0].tenant.as_str()), ("old-rule", "default"));
    assert!(sink.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &acme).await.unwrap().is_empty());
    let (_, evidence) = sink.alert(alerts[0].id, &default).await.unwrap().expect("the old alert reads by id");
    let mut messages: Vec<&str> = evidence.iter().map(|event| event.message.as_str()).collect();
    messages.sort();
    assert_eq!(messages, ["old event one", "old event two"], "the evidence survives the migration");
    assert!(sink.alert(alerts[0].id, &acme).await.unwrap().is_none());
    assert_eq!(top_hosts(&sink, &default).await, [("web-1".to_string(), 2)]);
    assert!(top_hosts(&sink, &acme).await.is_empty());
    assert_eq!(hourly_count(&sink, &default).await, 2);

    // New rows of two tenants beside the migrated ones: the counts stay per tenant.
    let events = vec![new_event("acme", 1), new_event("acme", 2), new_event("acme", 3), new_event("default", 4)];
    let refs: Vec<&Event> = events[..3].iter().collect();
    let mut alert = fixtures::alert("new-rule", securewatch_schemas::AlertLevel::Medium, &refs);
    alert.tenant = Tenant::parse("acme").unwrap();
    let mut write = EpochWrite { events, alerts: vec![(alert, 1)], ..EpochWrite::default() };
    if flavour == Flavour::Plain {
        // The dataflow's rollups carry each bucket's current count: default's is 2 old + 1 new.
        write.rollups = vec![rollup("acme", 3), rollup("default", 3)];
    }
    sink.write_epochs(&write).await.unwrap();
    assert_eq!(top_hosts(&sink, &acme).await, [("web-1".to_string(), 3)]);
    assert_eq!(top_hosts(&sink, &default).await, [("web-1".to_string(), 3)], "2 migrated + 1 new");
    assert_eq!(top_hosts(&sink, &TenantScope::All).await, [("web-1".to_string(), 6)]);
    assert_eq!(hourly_count(&sink, &acme).await, 3);
    assert_eq!(sink.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &acme).await.unwrap().len(), 1);
    assert_eq!(sink.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &TenantScope::All).await.unwrap().len(), 2);

    // Connecting again applies nothing twice.
    sink.close().await;
    let again = PostgresSink::connect(&config).await.expect("the migrated schema connects again");
    assert_eq!(top_hosts(&again, &TenantScope::All).await, [("web-1".to_string(), 6)]);
    again.close().await;
}

#[tokio::test]
async fn a_plain_schema_from_before_tenants_migrates_to_the_default_tenant() {
    let Some(url) = server_url("SECUREWATCH_TEST_POSTGRES_URL", "SECUREWATCH_REQUIRE_POSTGRES") else { return };
    check_upgrade(&url, "t_upgrade_plain", Flavour::Plain, |config| config.timescale = TimescaleMode::Off).await;
}

#[tokio::test]
async fn a_timescale_schema_from_before_tenants_migrates_to_the_default_tenant() {
    let Some(url) = server_url("SECUREWATCH_TEST_TIMESCALE_URL", "SECUREWATCH_REQUIRE_TIMESCALE") else { return };
    check_upgrade(&url, "t_upgrade_timescale", Flavour::Timescale, |config| {
        config.timescale = TimescaleMode::On;
        // As the flavour's own tests: PGlite serves one connection, without COPY or named statements.
        config.pool_size = 1;
        config.statement_cache_capacity = 0;
        config.load = LoadMethod::Insert;
    })
    .await;
}
