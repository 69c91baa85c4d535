//! `securewatch-bench pg`: rows/s into PostgreSQL through the sink's `write_epochs`, binary COPY
//! versus multi-row INSERT into the staging table, then the same events again (all duplicates).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::postgres::{LoadMethod, PostgresConfig, PostgresSink, TimescaleMode};
use securewatch_connectors::sinks::EpochWrite;
use securewatch_schemas::{Event, EventId, FieldValue, Fields, Severity, Source, SourceKind};

/// A PostgreSQL sink on a fresh copy of `schema` (dropped first, then migrated), plain
/// PostgreSQL, two connections: the store the search and backtest benches load.
pub(crate) async fn fresh_sink(url: &str, schema: &str, partitions_behind_days: Option<u32>) -> anyhow::Result<PostgresSink> {
    let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&admin).await?;
    admin.close().await;
    let mut config = PostgresConfig {
        url: url.to_owned(),
        schema: Some(schema.to_owned()),
        pool_size: 2,
        timescale: TimescaleMode::Off,
        ..PostgresConfig::default()
    };
    if let Some(days) = partitions_behind_days {
        config.partitions_behind_days = days;
    }
    Ok(PostgresSink::connect(&config).await?)
}

pub struct Options {
    pub url: String,
    pub events: u64,
    /// Events per `write_epochs` call (one transaction).
    pub write_events: u64,
    /// Events per COPY / INSERT round inside a write (`batch_rows`).
    pub batch_rows: usize,
    pub loads: Vec<LoadMethod>,
    pub hosts: u64,
}

/// One synthetic event of ~400 bytes as stored: a HEC-like message, 4 fields and the raw text.
pub(crate) fn event(n: u64, time: DateTime<Utc>, hosts: u64) -> Event {
    let host = format!("host-{:04}", n % hosts);
    let mut fields = Fields::new();
    fields.insert("user".into(), FieldValue::Str(format!("user{}", n % 977)));
    fields.insert("src_ip".into(), FieldValue::Str(format!("10.{}.{}.{}", n % 7, n % 251, n % 13)));
    fields.insert("bytes".into(), FieldValue::Int((n * 7919 % 100_000) as i64));
    fields.insert("action".into(), FieldValue::Str(["allow", "deny", "login", "logout"][(n % 4) as usize].into()));
    let message = format!("user user{} action {} from 10.{}.{}.{} on {host}", n % 977, n % 4, n % 7, n % 251, n % 13);
    Event {
        tenant: Default::default(),
        id: EventId::from_parts([b"bench".as_slice(), &n.to_be_bytes()]),
        time,
        received: time,
        source: Source { kind: SourceKind::Hec, name: "hec-bench".into(), peer: Some("127.0.0.1:40000".into()) },
        host: Some(host),
        severity: Severity::from_code((n % 8) as u8),
        category: Some(["auth", "network", "process"][(n % 3) as usize].into()),
        raw: Some(format!("{{\"event\":\"{message}\",\"n\":{n}}}")),
        message,
        fields,
    }
}

async fn pass(sink: &PostgresSink, options: &Options, start: DateTime<Utc>) -> anyhow::Result<(Duration, u64, u64)> {
    let (mut busy, mut written, mut duplicates) = (Duration::ZERO, 0, 0);
    let mut next = 0;
    while next < options.events {
        let end = (next + options.write_events).min(options.events);
        // 2,000 events per second of event time: 1M events span about 8 minutes.
        let events: Vec<Event> =
            (next..end).map(|n| event(n, start + chrono::Duration::microseconds(n as i64 * 500), options.hosts)).collect();
        let write = EpochWrite { events, ..EpochWrite::default() };
        let began = Instant::now();
        let summary = sink.write_epochs(&write).await?;
        busy += began.elapsed();
        written += summary.written;
        duplicates += summary.duplicates;
        next = end;
    }
    Ok((busy, written, duplicates))
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let start = Utc::now() - chrono::Duration::hours(1);
    for load in &options.loads {
        let name = match load {
            LoadMethod::Copy => "copy",
            LoadMethod::Insert => "insert",
        };
        let schema = format!("bench_pg_{name}");
        let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&options.url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))).execute(&admin).await?;
        admin.close().await;
        let config = PostgresConfig {
            url: options.url.clone(),
            schema: Some(schema.clone()),
            pool_size: 2,
            batch_rows: options.batch_rows,
            load: *load,
            timescale: TimescaleMode::Off,
            ..PostgresConfig::default()
        };
        let sink = PostgresSink::connect(&config).await?;
        let (busy, written, _) = pass(&sink, &options, start).await?;
        anyhow::ensure!(written == options.events, "{name}: {written} of {} events written", options.events);
        let (replay_busy, _, duplicates) = pass(&sink, &options, start).await?;
        anyhow::ensure!(duplicates == options.events, "{name}: replay found {duplicates} duplicates");
        let size: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relname LIKE 'events%'"
        )))
        .fetch_one(sink.pool())
        .await?;
        println!(
            "pg load={name} events={} write_events={} batch_rows={}: {:.0} rows/s new ({:.2} s), {:.0} rows/s replayed \
             as duplicates ({:.2} s), events tables {:.0} MiB",
            options.events,
            options.write_events,
            options.batch_rows,
            options.events as f64 / busy.as_secs_f64(),
            busy.as_secs_f64(),
            options.events as f64 / replay_busy.as_secs_f64(),
            replay_busy.as_secs_f64(),
            size as f64 / (1024.0 * 1024.0),
        );
        sink.close().await;
    }
    Ok(())
}
