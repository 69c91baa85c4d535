//! `securewatch-bench pg-dashboard`: latency of the API's dashboard queries on PostgreSQL over
//! a store of many events: loads the events and the rollup rows the dataflow would have written
//! for them through the sink, then times each dashboard query many times over random ranges.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use securewatch_connectors::sinks::postgres::{PostgresConfig, PostgresSink, TimescaleMode};
use securewatch_connectors::sinks::EpochWrite;
use securewatch_connectors::sinks::read::{BucketWidth, SeriesBy, TimeseriesQuery, TopField, TopQuery};
use securewatch_schemas::{bucket_start, RollupChange, RollupKey};
use securewatch_schemas::{Event, Severity};

use crate::pg::event;

pub struct Options {
    pub url: String,
    pub events: u64,
    /// Event time covered by the events, ending now.
    pub span: Duration,
    pub hosts: u64,
    /// Times each query kind runs.
    pub rounds: usize,
    /// Skip loading: query what an earlier run loaded into the schema.
    pub reuse: bool,
}

const SCHEMA: &str = "bench_pg_dashboard";
/// Events per write (one transaction), as the dataflow's writer would send a run of epochs.
const WRITE_EVENTS: u64 = 50_000;

/// The rollup rows of the events seen so far, as absolute counts: what the dataflow upserts.
#[derive(Default)]
pub(crate) struct Rollups {
    counts: HashMap<(RollupKey, u64), i64>,
}

impl Rollups {
    /// Counts `events` and returns every row they touched, once, with its count after them.
    pub(crate) fn add(&mut self, events: &[Event]) -> Vec<RollupChange> {
        let mut touched = std::collections::BTreeSet::new();
        for event in events {
            let bucket = bucket_start(event.time.timestamp_millis() as u64);
            let source = RollupKey::Source { kind: event.source.kind, host: event.host.clone(), severity: event.severity };
            for key in [source, RollupKey::Category(event.category.clone())] {
                *self.counts.entry((key.clone(), bucket)).or_insert(0) += 1;
                touched.insert((key, bucket));
            }
        }
        touched
            .into_iter()
            .map(|(key, bucket)| {
                let count = self.counts[&(key.clone(), bucket)];
                RollupChange { tenant: Default::default(), key, bucket_start_ms: bucket, count }
            })
            .collect()
    }
}

/// A running dashboard query: the number of rows it returned.
type Query<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<usize>> + Send + 'a>>;

/// One kind of dashboard query: its name and how to run it for a range ending at `end_ms`.
struct QueryKind {
    name: &'static str,
    range: Duration,
    run: fn(&PostgresSink, u64, u64) -> Query<'_>,
}

fn timeseries(
    sink: &PostgresSink,
    from_ms: u64,
    to_ms: u64,
    by: SeriesBy,
    bucket: BucketWidth,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<usize>> + Send + '_>> {
    Box::pin(async move {
        let series = sink.timeseries(&TimeseriesQuery { from_ms, to_ms, bucket, by }, &securewatch_schemas::TenantScope::All).await?;
        Ok(series.iter().map(|series| series.points.len()).sum())
    })
}

fn top(
    sink: &PostgresSink,
    from_ms: u64,
    to_ms: u64,
    field: TopField,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<usize>> + Send + '_>> {
    Box::pin(async move { Ok(sink.top(&TopQuery { field, from_ms, to_ms, n: 10 }, &securewatch_schemas::TenantScope::All).await?.len()) })
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

fn query_kinds() -> Vec<QueryKind> {
    vec![
        QueryKind { name: "timeseries by source, 1m points, 1 h", range: HOUR, run: |s, f, t| timeseries(s, f, t, SeriesBy::Source, BucketWidth::Minute) },
        QueryKind { name: "timeseries by severity, 1m points, 1 h", range: HOUR, run: |s, f, t| timeseries(s, f, t, SeriesBy::Severity, BucketWidth::Minute) },
        QueryKind { name: "timeseries by host, 1m points, 1 h", range: HOUR, run: |s, f, t| timeseries(s, f, t, SeriesBy::Host, BucketWidth::Minute) },
        QueryKind { name: "timeseries by category, 1h points, 24 h", range: DAY, run: |s, f, t| timeseries(s, f, t, SeriesBy::Category, BucketWidth::Hour) },
        QueryKind { name: "timeseries by severity, 1h points, 24 h", range: DAY, run: |s, f, t| timeseries(s, f, t, SeriesBy::Severity, BucketWidth::Hour) },
        QueryKind { name: "top 10 hosts, 1 h", range: HOUR, run: |s, f, t| top(s, f, t, TopField::Host) },
        QueryKind { name: "top 10 hosts, 24 h", range: DAY, run: |s, f, t| top(s, f, t, TopField::Host) },
    ]
}

/// The value at quantile `q` of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn load(sink: &PostgresSink, options: &Options, start: DateTime<Utc>) -> anyhow::Result<()> {
    let step_us = options.span.as_micros() as f64 / options.events as f64;
    let mut rollups = Rollups::default();
    let began = Instant::now();
    let mut next = 0;
    while next < options.events {
        let end = (next + WRITE_EVENTS).min(options.events);
        let events: Vec<Event> = (next..end)
            .map(|n| {
                let mut event = event(n, start + chrono::Duration::microseconds((n as f64 * step_us) as i64), options.hosts);
                // Every host sends every severity: up to hosts × 8 rows per minute bucket.
                event.severity = Severity::from_code(((n / options.hosts) % 8) as u8);
                event
            })
            .collect();
        let changes = rollups.add(&events);
        let write = EpochWrite { events, rollups: changes, ..EpochWrite::default() };
        sink.write_epochs(&write).await?;
        next = end;
        if next % 1_000_000 == 0 {
            eprintln!("loaded {next} events ({:.0} s)", began.elapsed().as_secs_f64());
        }
    }
    sqlx::raw_sql("ANALYZE").execute(sink.pool()).await?;
    println!(
        "pg-dashboard: loaded {} events over {:.1} h and {} rollup rows in {:.1} s",
        options.events,
        options.span.as_secs_f64() / 3600.0,
        rollups.counts.len(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let end = Utc::now();
    let start = end - chrono::Duration::from_std(options.span)?;
    if !options.reuse {
        let admin = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&options.url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))).execute(&admin).await?;
        admin.close().await;
    }
    let config = PostgresConfig {
        url: options.url.clone(),
        schema: Some(SCHEMA.to_string()),
        pool_size: 2,
        timescale: TimescaleMode::Off,
        // Partitions for the whole span exist before the load.
        partitions_behind_days: (options.span.as_secs() / 86_400 + 2) as u32,
        ..PostgresConfig::default()
    };
    let sink = PostgresSink::connect(&config).await?;
    if !options.reuse {
        load(&sink, &options, start).await?;
    }
    let (span_start_ms, span_end_ms) = (start.timestamp_millis() as u64, end.timestamp_millis() as u64);
    let mut random = rand::rngs::StdRng::seed_from_u64(7);
    let mut all = Vec::new();
    for kind in query_kinds() {
        let range_ms = kind.range.as_millis() as u64;
        let mut latencies = Vec::with_capacity(options.rounds);
        let mut rows = 0;
        for _ in 0..options.rounds {
            // A range inside the loaded span, ending on a minute like a dashboard's "last N".
            let to_ms = random.random_range(span_start_ms + range_ms.min(span_end_ms - span_start_ms)..=span_end_ms);
            let to_ms = bucket_start(to_ms) + 60_000;
            let from_ms = to_ms.saturating_sub(range_ms);
            let began = Instant::now();
            rows += (kind.run)(&sink, from_ms, to_ms).await?;
            latencies.push(began.elapsed());
        }
        anyhow::ensure!(rows > 0, "{}: no query answered any row", kind.name);
        latencies.sort();
        println!(
            "pg-dashboard {:<42} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} queries, {:.0} points/answer)",
            kind.name,
            quantile(&latencies, 0.5).as_secs_f64() * 1e3,
            quantile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().expect("rounds > 0").as_secs_f64() * 1e3,
            options.rounds,
            rows as f64 / options.rounds as f64,
        );
        all.extend(latencies);
    }
    all.sort();
    println!(
        "pg-dashboard all queries: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} queries)",
        quantile(&all, 0.5).as_secs_f64() * 1e3,
        quantile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().expect("queries ran").as_secs_f64() * 1e3,
        all.len()
    );
    sink.close().await;
    Ok(())
}
