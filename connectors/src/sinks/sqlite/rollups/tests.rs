//! Rollup tables against a real SQLite file: upserts vs the in-memory `RollupTable`, dashboard queries, late counts.

use std::collections::BTreeMap;

use securewatch_schemas::RollupTable;
use tempfile::TempDir;

use super::*;
use crate::sinks::read::{BucketWidth, Point};
use crate::sinks::rows::fixtures::Xorshift;
use crate::sinks::sqlite::SqliteConfig;

const MINUTE: u64 = 60_000;
const HOUR: u64 = 3_600_000;

async fn open_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
    (dir, store)
}

fn source(kind: SourceKind, host: Option<&str>, severity: Severity) -> RollupKey {
    RollupKey::Source { kind, host: host.map(str::to_string), severity }
}

fn category(name: Option<&str>) -> RollupKey {
    RollupKey::Category(name.map(str::to_string))
}

fn change(key: &RollupKey, bucket_start_ms: u64, count: i64) -> RollupChange {
    RollupChange { tenant: Default::default(), key: key.clone(), bucket_start_ms, count }
}

fn table_rows(table: &RollupTable) -> Vec<(RollupKey, u64, i64)> {
    table.iter().map(|(key, bucket, count)| (key.clone(), bucket, count)).collect()
}

/// Every kind of row, including missing hosts and categories.
fn key_space() -> Vec<RollupKey> {
    let mut keys = vec![RollupKey::DistinctHosts, category(None), category(Some("auth")), category(Some("net"))];
    for kind in [SourceKind::Hec, SourceKind::Syslog] {
        for host in [None, Some("web-1"), Some("web-2"), Some("db-1")] {
            for severity in [Severity::Error, Severity::Informational] {
                keys.push(source(kind, host, severity));
            }
        }
    }
    keys
}

#[tokio::test]
async fn store_matches_the_in_memory_table_and_reapplying_changes_nothing() {
    let (_dir, store) = open_store().await;
    let keys = key_space();
    let mut random = Xorshift(0x5eed_1234_abcd_0001);
    let mut table = RollupTable::new();
    for round in 0..60 {
        // Batches may change a row several times and delete rows that do not exist.
        let batch: Vec<RollupChange> = (0..random.below(40))
            .map(|_| {
                let key = &keys[random.below(keys.len() as u64) as usize];
                change(key, random.below(6) * MINUTE, random.below(4) as i64)
            })
            .collect();
        store.apply_rollups(&batch, &[]).await.unwrap();
        table.apply(&batch);
        assert_eq!(store.rollup_rows().await.unwrap(), table_rows(&table), "after round {round}");
        store.apply_rollups(&batch, &[]).await.unwrap();
        assert_eq!(store.rollup_rows().await.unwrap(), table_rows(&table), "round {round} applied twice");
        assert_dashboard_counts_follow_the_rollups(&store).await;
    }
    assert!(!table.is_empty());
}

#[tokio::test]
async fn batches_larger_than_one_statement_upsert_and_delete() {
    let (_dir, store) = open_store().await;
    let key = source(SourceKind::Wazuh, Some("agent-7"), Severity::Warning);
    let rows = 2 * ROWS_PER_STATEMENT as u64 + 17;
    let mut upserts = Vec::new();
    for bucket in 0..rows {
        upserts.push(change(&key, bucket * MINUTE, 3));
        upserts.push(change(&category(Some("fim")), bucket * MINUTE, 3));
        upserts.push(change(&RollupKey::DistinctHosts, bucket * MINUTE, 1));
    }
    let mut transaction = store.writer.begin().await.unwrap();
    let touched = apply_rollup_changes(&mut transaction, &upserts).await.unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(touched, 3 * rows);
    let mut table = RollupTable::new();
    table.apply(&upserts);
    assert_eq!(store.rollup_rows().await.unwrap(), table_rows(&table));

    let deletes: Vec<RollupChange> = upserts
        .iter()
        .filter(|row| row.bucket_start_ms % (2 * MINUTE) == 0)
        .map(|row| change(&row.key, row.bucket_start_ms, 0))
        .collect();
    let mut transaction = store.writer.begin().await.unwrap();
    let touched = apply_rollup_changes(&mut transaction, &deletes).await.unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(touched, deletes.len() as u64);
    table.apply(&deletes);
    assert_eq!(store.rollup_rows().await.unwrap(), table_rows(&table));
    assert_eq!(table.len(), 3 * (rows as usize / 2));
    assert_dashboard_counts_follow_the_rollups(&store).await;
}

/// `dashboard_1m` and `dashboard_1h` (their non-zero rows) hold the rollup rows summed per
/// dimension value, per minute and per hour.
async fn assert_dashboard_counts_follow_the_rollups(store: &SqliteStore) {
    const PER_VALUE: &str = "SELECT 'source' AS dimension, bucket_start_ms AS bucket, tenant, source_kind AS value, count FROM rollup_source
        UNION ALL SELECT 'host', bucket_start_ms, tenant, host, count FROM rollup_source
        UNION ALL SELECT 'severity', bucket_start_ms, tenant, CAST(severity AS TEXT), count FROM rollup_source
        UNION ALL SELECT 'category', bucket_start_ms, tenant, category, count FROM rollup_category";
    for (table, width) in [("dashboard_1m", MINUTE), ("dashboard_1h", HOUR)] {
        let expected: Vec<(String, i64, String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT dimension, bucket - bucket % {width}, tenant, value, SUM(count) FROM ({PER_VALUE}) GROUP BY 1, 2, 3, 4 HAVING SUM(count) <> 0 ORDER BY 1, 2, 3, 4"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        let stored: Vec<(String, i64, String, String, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT dimension, bucket_start_ms, tenant, value, count FROM {table} WHERE count <> 0 ORDER BY 1, 2, 3, 4"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(stored, expected, "{table}");
    }
}

/// web-1 and web-2 over two hours, plus events without a host or category.
async fn dashboard_fixture(store: &SqliteStore) -> RollupTable {
    let web1_err = source(SourceKind::Syslog, Some("web-1"), Severity::Error);
    let web1_info = source(SourceKind::Hec, Some("web-1"), Severity::Informational);
    let web2_err = source(SourceKind::Hec, Some("web-2"), Severity::Error);
    let nameless = source(SourceKind::Wazuh, None, Severity::Critical);
    let changes = vec![
        change(&web1_err, 0, 2),
        change(&web1_info, 0, 1),
        change(&web2_err, MINUTE, 4),
        change(&nameless, MINUTE, 7),
        change(&web1_err, HOUR + 5 * MINUTE, 3),
        change(&web2_err, HOUR + 59 * MINUTE, 1),
        change(&category(Some("auth")), 0, 3),
        change(&category(None), MINUTE, 11),
        change(&category(Some("auth")), HOUR + 5 * MINUTE, 3),
        change(&category(Some("net")), HOUR + 59 * MINUTE, 1),
        change(&RollupKey::DistinctHosts, 0, 1),
        change(&RollupKey::DistinctHosts, MINUTE, 1),
    ];
    store.apply_rollups(&changes, &[]).await.unwrap();
    let mut table = RollupTable::new();
    table.apply(&changes);
    table
}

fn key(name: &str, value: Option<&str>) -> BTreeMap<String, Option<String>> {
    BTreeMap::from([(name.to_string(), value.map(str::to_string))])
}

fn points(pairs: &[(u64, i64)]) -> Vec<Point> {
    pairs.iter().map(|&(bucket_start_ms, count)| Point { bucket_start_ms, count }).collect()
}

#[tokio::test]
async fn timeseries_by_minute_and_hour() {
    let (_dir, store) = open_store().await;
    dashboard_fixture(&store).await;
    let query = |from_ms, to_ms, bucket, by| TimeseriesQuery { from_ms, to_ms, bucket, by };

    let by_host = store.timeseries(&query(0, 2 * HOUR, BucketWidth::Minute, SeriesBy::Host), &TenantScope::All).await.unwrap();
    assert_eq!(
        by_host,
        vec![
            Series { key: key("host", None), points: points(&[(MINUTE, 7)]) },
            Series { key: key("host", Some("web-1")), points: points(&[(0, 3), (HOUR + 5 * MINUTE, 3)]) },
            Series { key: key("host", Some("web-2")), points: points(&[(MINUTE, 4), (HOUR + 59 * MINUTE, 1)]) },
        ]
    );

    let hourly = store.timeseries(&query(0, 2 * HOUR, BucketWidth::Hour, SeriesBy::Source), &TenantScope::All).await.unwrap();
    assert_eq!(
        hourly,
        vec![
            Series { key: key("source_kind", Some("hec")), points: points(&[(0, 5), (HOUR, 1)]) },
            Series { key: key("source_kind", Some("syslog")), points: points(&[(0, 2), (HOUR, 3)]) },
            Series { key: key("source_kind", Some("wazuh")), points: points(&[(0, 7)]) },
        ]
    );

    // Severities by name, most severe first; `to` is exclusive, `from` inclusive.
    let severities =
        store.timeseries(&query(MINUTE, HOUR + 59 * MINUTE, BucketWidth::Hour, SeriesBy::Severity), &TenantScope::All).await.unwrap();
    assert_eq!(
        severities,
        vec![
            Series { key: key("severity", Some("critical")), points: points(&[(0, 7)]) },
            Series { key: key("severity", Some("error")), points: points(&[(0, 4), (HOUR, 3)]) },
        ]
    );

    let categories = store.timeseries(&query(0, 2 * HOUR, BucketWidth::Hour, SeriesBy::Category), &TenantScope::All).await.unwrap();
    assert_eq!(
        categories,
        vec![
            Series { key: key("category", None), points: points(&[(0, 11)]) },
            Series { key: key("category", Some("auth")), points: points(&[(0, 3), (HOUR, 3)]) },
            Series { key: key("category", Some("net")), points: points(&[(HOUR, 1)]) },
        ]
    );
}

#[tokio::test]
async fn top_ranks_by_count_then_value_like_the_operators() {
    let (_dir, store) = open_store().await;
    let table = dashboard_fixture(&store).await;
    let top = |field, from_ms, to_ms, n| TopQuery { field, from_ms, to_ms, n };
    let entries = |pairs: &[(&str, i64)]| -> Vec<TopEntry> {
        pairs.iter().map(|&(value, count)| TopEntry { value: value.to_string(), count }).collect()
    };

    // The host-less events (7) are left out.
    let hosts = store.top(&top(TopField::Host, 0, 2 * HOUR, 10), &TenantScope::All).await.unwrap();
    assert_eq!(hosts, entries(&[("web-1", 6), ("web-2", 5)]));
    for (from_ms, to_ms, n) in
        [(0, 2 * HOUR, 10), (0, 2 * HOUR, 1), (MINUTE, HOUR + 59 * MINUTE, 5), (HOUR, 2 * HOUR, 5)]
    {
        let expected: Vec<TopEntry> = table
            .top_hosts(from_ms, to_ms, n)
            .into_iter()
            .map(|volume| TopEntry { value: volume.host, count: volume.events })
            .collect();
        assert_eq!(
            store.top(&top(TopField::Host, from_ms, to_ms, n), &TenantScope::All).await.unwrap(),
            expected,
            "{from_ms}..{to_ms} top {n}"
        );
    }
    let first_hour = store.top(&top(TopField::Host, 0, HOUR, 10), &TenantScope::All).await.unwrap();
    assert_eq!(first_hour, entries(&[("web-2", 4), ("web-1", 3)]));

    let categories = store.top(&top(TopField::Category, 0, 2 * HOUR, 10), &TenantScope::All).await.unwrap();
    assert_eq!(categories, entries(&[("auth", 6), ("net", 1)]));
    let severities = store.top(&top(TopField::Severity, 0, 2 * HOUR, 10), &TenantScope::All).await.unwrap();
    assert_eq!(severities, entries(&[("error", 10), ("critical", 7), ("informational", 1)]));
    let sources = store.top(&top(TopField::Source, 0, 2 * HOUR, 2), &TenantScope::All).await.unwrap();
    assert_eq!(sources, entries(&[("wazuh", 7), ("hec", 6)]));
    let second_hour = store.top(&top(TopField::Source, HOUR, 2 * HOUR, 10), &TenantScope::All).await.unwrap();
    assert_eq!(second_hour, entries(&[("syslog", 3), ("hec", 1)]));
    let later = store.top(&top(TopField::Severity, MINUTE, 2 * MINUTE, 10), &TenantScope::All).await.unwrap();
    assert_eq!(later, entries(&[("critical", 7), ("error", 4)]));
}

#[tokio::test]
async fn ties_break_by_value() {
    let (_dir, store) = open_store().await;
    let changes: Vec<RollupChange> = ["c", "a", "b"]
        .into_iter()
        .map(|host| change(&source(SourceKind::Syslog, Some(host), Severity::Notice), 0, 5))
        .chain([change(&source(SourceKind::Syslog, None, Severity::Notice), 0, 5)])
        .chain(
            [Severity::Informational, Severity::Notice]
                .map(|severity| change(&source(SourceKind::Hec, Some("a"), severity), MINUTE, 2)),
        )
        .collect();
    store.apply_rollups(&changes, &[]).await.unwrap();
    let hosts = store.top(&TopQuery { field: TopField::Host, from_ms: 0, to_ms: MINUTE, n: 10 }, &TenantScope::All).await.unwrap();
    let names: Vec<&str> = hosts.iter().map(|entry| entry.value.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let severities =
        store.top(&TopQuery { field: TopField::Severity, from_ms: MINUTE, to_ms: HOUR, n: 10 }, &TenantScope::All).await.unwrap();
    let names: Vec<&str> = severities.iter().map(|entry| entry.value.as_str()).collect();
    assert_eq!(names, ["notice", "informational"], "severities tie by level, not by name");
}

#[tokio::test]
async fn empty_ranges_and_empty_tables_answer_nothing() {
    let (_dir, store) = open_store().await;
    let everything = TimeseriesQuery { from_ms: 0, to_ms: u64::MAX, bucket: BucketWidth::Hour, by: SeriesBy::Host };
    assert!(store.timeseries(&everything, &TenantScope::All).await.unwrap().is_empty());
    assert!(store
        .top(&TopQuery { field: TopField::Host, from_ms: 0, to_ms: u64::MAX, n: 10 }, &TenantScope::All)
        .await
        .unwrap()
        .is_empty());
    assert!(store.rollup_rows().await.unwrap().is_empty());

    dashboard_fixture(&store).await;
    for (from_ms, to_ms) in [(MINUTE, MINUTE), (2 * MINUTE, HOUR), (3 * HOUR, 4 * HOUR), (HOUR, 0)] {
        for by in [SeriesBy::Source, SeriesBy::Host, SeriesBy::Severity, SeriesBy::Category] {
            let query = TimeseriesQuery { from_ms, to_ms, bucket: BucketWidth::Minute, by };
            assert!(store.timeseries(&query, &TenantScope::All).await.unwrap().is_empty(), "{query:?}");
        }
        for field in [TopField::Host, TopField::Category, TopField::Severity, TopField::Source] {
            let query = TopQuery { field, from_ms, to_ms, n: 10 };
            assert!(store.top(&query, &TenantScope::All).await.unwrap().is_empty(), "{query:?}");
        }
    }
    let none = TopQuery { field: TopField::Host, from_ms: 0, to_ms: 2 * HOUR, n: 0 };
    assert!(store.top(&none, &TenantScope::All).await.unwrap().is_empty());
}

#[tokio::test]
async fn late_counts_add_up_and_stay_out_of_the_rollups() {
    let (_dir, store) = open_store().await;
    store.apply_rollups(&[], &[(0, 2), (MINUTE, 1), (0, 3), (HOUR, 0)]).await.unwrap();
    let mut transaction = store.writer.begin().await.unwrap();
    add_late_counts(&mut transaction, &[(MINUTE, 4), (2 * HOUR, 1)]).await.unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(store.late_counts(0, u64::MAX).await.unwrap(), vec![(0, 5), (MINUTE, 5), (2 * HOUR, 1)]);
    assert_eq!(store.late_counts(MINUTE, 2 * HOUR).await.unwrap(), vec![(MINUTE, 5)]);
    assert!(store.rollup_rows().await.unwrap().is_empty());
}

#[test]
fn api_spellings_round_trip() {
    for width in [BucketWidth::Minute, BucketWidth::Hour] {
        assert_eq!(BucketWidth::parse(width.as_str()), Some(width));
    }
    for by in [SeriesBy::Source, SeriesBy::Host, SeriesBy::Severity, SeriesBy::Category] {
        assert_eq!(SeriesBy::parse(by.as_str()), Some(by));
    }
    for field in [TopField::Host, TopField::Category, TopField::Severity, TopField::Source] {
        assert_eq!(TopField::parse(field.as_str()), Some(field));
    }
    assert_eq!(BucketWidth::parse("5m"), None);
    assert_eq!(SeriesBy::parse("Host"), None);
}

#[tokio::test]
async fn views_show_times_and_hourly_sums() {
    let (_dir, store) = open_store().await;
    dashboard_fixture(&store).await;
    let minute: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT time, host, count FROM rollup_1m WHERE bucket_start_ms = ? ORDER BY host")
            .bind(MINUTE as i64)
            .fetch_all(store.pool())
            .await
            .unwrap();
    let at_one_minute = "1970-01-01T00:01:00Z".to_string();
    assert_eq!(minute, vec![(at_one_minute.clone(), None, 7), (at_one_minute, Some("web-2".into()), 4)]);
    let hourly: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT bucket_start_ms, time, count(*), SUM(count) FROM rollup_1h GROUP BY bucket_start_ms ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        hourly,
        vec![(0, "1970-01-01T00:00:00Z".into(), 4, 14), (HOUR as i64, "1970-01-01T01:00:00Z".into(), 2, 4)]
    );
}
