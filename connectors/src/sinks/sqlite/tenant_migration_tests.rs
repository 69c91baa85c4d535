//! A store made by a build before tenants (migrations 1 to 5 applied, rows without a tenant)
//! opens, migrates, and reads as the `default` tenant's, rollups included.

use std::borrow::Cow;

use securewatch_schemas::{RollupChange, RollupKey, Severity, SourceKind, Tenant, TenantScope};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;

use super::{SqliteConfig, SqliteStore};
use crate::sinks::read::{AlertQuery, EventQuery, TopField, TopQuery};
use crate::sinks::EpochWrite;

/// The first migration that knows tenants.
const TENANTS_MIGRATION: i64 = 6;

#[tokio::test]
async fn a_store_from_before_tenants_migrates_to_the_default_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::default();
    let options = SqliteConnectOptions::new().filename(dir.path().join(&config.file)).create_if_missing(true);
    let old = SqlitePool::connect_with(options).await.unwrap();
    let mut before_tenants = sqlx::migrate!("../schemas/sql/sqlite");
    let earlier: Vec<_> = before_tenants.migrations.iter().filter(|m| m.version < TENANTS_MIGRATION).cloned().collect();
    assert_eq!(earlier.len(), 5, "migrations 1 to 5 make the old store");
    before_tenants.migrations = Cow::Owned(earlier);
    before_tenants.run(&old).await.unwrap();
    // Rows as the old build wrote them: no tenant column anywhere.
    sqlx::raw_sql(
        "INSERT INTO events (id, time_us, received_us, source_kind, source_name, peer, host, severity, category, \
         message, fields, raw) VALUES (x'000102030405060708090a0b0c0d0e0f', 1767268800000000, 1767268800000001, \
         'syslog', 'syslog', NULL, 'web-1', 4, 'auth', 'old event', '{}', NULL);
         INSERT INTO dead_letters (received_us, source_kind, source_name, peer, reason, detail, body) \
         VALUES (1767268800000000, 'hec', 'hec', NULL, 'invalid_json', 'EOF', x'7b');
         INSERT INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start_ms, window_end_ms, \
         fired_at_ms, first_seen_ms, last_seen_ms) VALUES (x'0f0e0d0c0b0a09080706050403020100', 'r', 'Old', \
         'high', 'rule', '[]', '{}', 1767268800000, 1767268800000, 1767268800000, 1767268800000, 1767268800000);
         INSERT INTO rollup_source (bucket_start_ms, source_kind, host, severity, count) \
         VALUES (1767268800000, 'syslog', 'web-1', 4, 7);
         INSERT INTO rollup_category (bucket_start_ms, category, count) VALUES (1767268800000, 'auth', 7);
         INSERT INTO rollup_hosts (bucket_start_ms, distinct_hosts) VALUES (1767268800000, 1);",
    )
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let store = SqliteStore::open(dir.path(), &config).await.expect("the old store opens and migrates");
    let default = TenantScope::Only(vec!["default".into()]);
    let acme = TenantScope::Only(vec!["acme".into()]);
    let events = store.events(&EventQuery { limit: 10, ..EventQuery::default() }, &default).await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].tenant.is_default());
    assert_eq!(events[0].message, "old event");
    assert!(store.events(&EventQuery { limit: 10, ..EventQuery::default() }, &acme).await.unwrap().is_empty());
    assert_eq!(store.dead_letters(10, &default).await.unwrap()[0].tenant, "default");
    let alerts = store.alerts(&AlertQuery { limit: 10, ..AlertQuery::default() }, &default).await.unwrap();
    assert_eq!((alerts.len(), alerts[0].tenant.as_str()), (1, "default"));
    let top = TopQuery { field: TopField::Host, from_ms: 0, to_ms: u64::MAX / 2, n: 5 };
    let hosts = store.top(&top, &default).await.unwrap();
    assert_eq!((hosts[0].value.as_str(), hosts[0].count), ("web-1", 7));
    assert!(store.top(&top, &acme).await.unwrap().is_empty());

    // The rebuilt rollup tables take per-tenant rows beside the migrated ones.
    let row = |tenant: &str, count| RollupChange {
        tenant: Tenant::parse(tenant).unwrap(),
        key: RollupKey::Source { kind: SourceKind::Syslog, host: Some("web-1".into()), severity: Severity::Warning },
        bucket_start_ms: 1_767_268_800_000,
        count,
    };
    store.write_epochs(&EpochWrite { rollups: vec![row("acme", 2), row("default", 8)], ..EpochWrite::default() }).await.unwrap();
    assert_eq!(store.top(&top, &acme).await.unwrap()[0].count, 2);
    assert_eq!(store.top(&top, &default).await.unwrap()[0].count, 8, "the migrated row is the default tenant's");
    assert_eq!(store.top(&top, &TenantScope::All).await.unwrap()[0].count, 10);
    store.close().await;
}
