//! `securewatch-bench search`: the search language over many stored events, on SQLite and (with
//! a URL) PostgreSQL: a selective `take`, a summary answered from the rollups, and a full scan
//! compared with the same question written by hand in SQL through `sqlite3` / `psql`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::postgres::PostgresSink;
use securewatch_connectors::sinks::read::search::{compile_search, Dialect, SearchSink};
use securewatch_connectors::sinks::sqlite::{SqliteConfig, SqliteStore};
use securewatch_connectors::sinks::{EpochWrite, StoreReader};
use securewatch_schemas::query::compile;
use securewatch_schemas::{Event, Severity, TenantScope};
use serde_json::Value;

use crate::dashboard::Rollups;
use crate::pg::event;

pub struct Options {
    /// PostgreSQL URL (schema `bench_search`); SQLite only without it.
    pub url: Option<String>,
    /// Data directory of the SQLite store (kept, so `securewatch run` can serve it after).
    pub data_dir: PathBuf,
    pub events: u64,
    pub hosts: u64,
    pub rounds: usize,
    /// Load, then stop without timing anything.
    pub load_only: bool,
}

const SCHEMA: &str = "bench_search";
const WRITE_EVENTS: u64 = 50_000;
/// One event in this many has "needle" in its message.
const NEEDLE_EVERY: u64 = 1000;

/// Keeps rows.
struct Keep<'a>(&'a mut Vec<Vec<Value>>);

impl SearchSink for Keep<'_> {
    fn row(&mut self, row: Vec<Value>) -> bool {
        self.0.push(row);
        true
    }

    fn progress(&mut self, _scanned: f64) {}
}

/// Counts rows.
struct Count(u64);

impl SearchSink for Count {
    fn row(&mut self, _row: Vec<Value>) -> bool {
        self.0 += 1;
        true
    }

    fn progress(&mut self, _scanned: f64) {}
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

async fn load(sqlite: &SqliteStore, postgres: Option<&PostgresSink>, options: &Options, start: DateTime<Utc>) -> anyhow::Result<()> {
    let step_us = 86_400e6 / options.events as f64;
    let mut rollups = Rollups::default();
    let began = Instant::now();
    let mut next = 0;
    while next < options.events {
        let end = (next + WRITE_EVENTS).min(options.events);
        let events: Vec<Event> = (next..end)
            .map(|n| {
                let mut event = event(n, start + chrono::Duration::microseconds((n as f64 * step_us) as i64), options.hosts);
                event.severity = Severity::from_code(((n / options.hosts) % 8) as u8);
                if n % NEEDLE_EVERY == 0 {
                    event.message.push_str(" needle");
                }
                event
            })
            .collect();
        let write = EpochWrite { rollups: rollups.add(&events), events, ..EpochWrite::default() };
        sqlite.write_epochs(&write).await?;
        if let Some(postgres) = postgres {
            postgres.write_epochs(&write).await?;
        }
        next = end;
        if next % 1_000_000 == 0 {
            eprintln!("loaded {next} events ({:.0} s)", began.elapsed().as_secs_f64());
        }
    }
    // Queries are timed in the steady state a live table reaches: statistics gathered, the
    // visibility map and hint bits written by a vacuum (PostgreSQL's advice after a bulk load),
    // and the load's dirty pages checkpointed, so that neither autovacuum nor the first
    // readers' hint-bit writes land inside the timings.
    if let Some(postgres) = postgres {
        // One statement each: VACUUM refuses to run inside a multi-statement query.
        sqlx::raw_sql("VACUUM (ANALYZE)").execute(postgres.pool()).await?;
        sqlx::raw_sql("CHECKPOINT").execute(postgres.pool()).await?;
    }
    println!("search: loaded {} events over 24 h ({} hosts) in {:.1} s", options.events, options.hosts, began.elapsed().as_secs_f64());
    Ok(())
}

/// Runs `text` over `[from, to)` `rounds` times; answers the sorted latencies and the rows of one
/// run. `time_index`: never SQLite's short cut of reading the rows stored last (for comparison).
async fn time_query(
    reader: &StoreReader,
    text: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rounds: usize,
    time_index: bool,
) -> anyhow::Result<(Vec<Duration>, u64, String)> {
    let plan = compile(text, to).map_err(|error| anyhow::anyhow!("{error}"))?;
    let mut latencies = Vec::with_capacity(rounds);
    let mut rows = 0;
    let mut path = String::new();
    for _ in 0..rounds {
        let began = Instant::now();
        let mut compiled = reader.compile_search(&plan, &TenantScope::All, from, to);
        if time_index {
            compiled.newest_stored_sql = None;
        }
        let mut count = Count(0);
        reader.search(&compiled, from, to, &mut count).await?;
        latencies.push(began.elapsed());
        rows = count.0;
        path = format!("{:?}", compiled.path);
    }
    latencies.sort();
    Ok((latencies, rows, path))
}

/// The full scan written by hand, run by the store's own CLI; answers the wall time and the count.
fn by_hand(store: &str, options: &Options, from: DateTime<Utc>, to: DateTime<Utc>) -> anyhow::Result<(Duration, String)> {
    let began = Instant::now();
    let output = match store {
        "sqlite" => {
            let sql = format!(
                "SELECT count(*) FROM events WHERE time_us >= {} AND time_us < {} AND message LIKE '%needle%';",
                from.timestamp_micros(),
                to.timestamp_micros()
            );
            Command::new("sqlite3").arg(options.data_dir.join("securewatch.db")).arg(sql).output()?
        }
        _ => {
            let sql = format!(
                "SET search_path = {SCHEMA}; SELECT count(*) FROM events WHERE time >= '{}' AND time < '{}' AND message ILIKE '%needle%';",
                from.to_rfc3339(),
                to.to_rfc3339()
            );
            Command::new("psql").args(["-qtA", options.url.as_deref().unwrap_or_default(), "-c", &sql]).output()?
        }
    };
    anyhow::ensure!(output.status.success(), "{store} CLI: {}", String::from_utf8_lossy(&output.stderr));
    Ok((began.elapsed(), String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let end = Utc::now();
    let start = end - chrono::Duration::hours(24);
    std::fs::create_dir_all(&options.data_dir)?;
    let sqlite = SqliteStore::open(&options.data_dir, &SqliteConfig::default()).await?;
    let postgres = match &options.url {
        Some(url) => Some(Arc::new(crate::pg::fresh_sink(url, SCHEMA, Some(3)).await?)),
        None => None,
    };
    load(&sqlite, postgres.as_deref(), &options, start).await?;
    if options.load_only {
        sqlite.close().await;
        return Ok(());
    }
    let mut readers = vec![("sqlite", StoreReader::new(sqlite.clone(), None, None))];
    if let Some(postgres) = &postgres {
        readers.push(("postgres", StoreReader::new(sqlite.clone(), Some(Arc::clone(postgres)), None)));
    }
    let host = format!("host-{:04}", 17 % options.hosts);
    for (store, reader) in &readers {
        // The last two, for comparison: the take through the time index only (as before the
        // short cut), and a summary by two columns, which the minute rollups answer (as the
        // summary by severity was before the hour counts).
        let take = format!("events | where host == \"{host}\" | take 100");
        for (name, text, time_index) in [
            ("take 100 of one host", take.clone(), false),
            ("count by 1 h and severity", "events | summarize count() by bin(time, 1h), severity".to_owned(), false),
            ("take 100, time index only", take, true),
            ("by 1 h, severity, kind", "events | summarize count() by bin(time, 1h), severity, source.kind".to_owned(), false),
        ] {
            let rounds = options.rounds;
            let (latencies, rows, path) = time_query(reader, &text, start, end, rounds, time_index).await?;
            println!(
                "search {store:<8} {name:<26} {path:<10} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({rounds} runs, {rows} rows)",
                ms(quantile(&latencies, 0.5)),
                ms(quantile(&latencies, 0.99)),
                ms(*latencies.last().expect("rounds > 0")),
            );
        }
        // The summary's rows equal the same summary over the events (no rollups), row for row.
        let summary = "events | summarize count() by bin(time, 1h), severity";
        let plan = compile(summary, end).map_err(|error| anyhow::anyhow!("{error}"))?;
        let dialect = if *store == "sqlite" { Dialect::Sqlite } else { Dialect::Postgres };
        let mut answers_by_path = Vec::new();
        for compiled in [reader.compile_search(&plan, &TenantScope::All, start, end), compile_search(&plan, dialect, None, &TenantScope::All, start, end)] {
            let mut rows = Vec::new();
            reader.search(&compiled, start, end, &mut Keep(&mut rows)).await?;
            let total: u64 = rows.iter().filter_map(|row| row[2].as_u64()).sum();
            let mut rows: Vec<String> = rows.iter().map(|row| Value::Array(row.clone()).to_string()).collect();
            rows.sort();
            answers_by_path.push((format!("{:?}", compiled.path), total, rows));
        }
        let [(path, total, rows), (_, scanned_total, scanned_rows)] = &answers_by_path[..] else { unreachable!() };
        anyhow::ensure!(rows == scanned_rows, "{store}: {summary} from {path} differs from the event scan ({total} vs {scanned_total} events)");
        println!("search {store:<8} {summary}: {path} rows equal the event scan's ({} rows, {total} events)", rows.len());
        // The full scan, ours then by hand, three times each, alternating.
        let text = "events | where message has \"needle\" | count";
        let (mut ours, mut hand) = (Vec::new(), Vec::new());
        let mut answers = (0, String::new());
        for _ in 0..3 {
            let (latencies, _, _) = time_query(reader, text, start, end, 1, false).await?;
            ours.push(latencies[0]);
            let (elapsed, count) = by_hand(store, &options, start, end)?;
            hand.push(elapsed);
            answers.1 = count;
        }
        let plan = compile(text, end).map_err(|error| anyhow::anyhow!("{error}"))?;
        let compiled = reader.compile_search(&plan, &TenantScope::All, start, end);
        let mut rows = Vec::new();
        reader.search(&compiled, start, end, &mut Keep(&mut rows)).await?;
        answers.0 = rows[0][0].as_u64().unwrap_or_default();
        ours.sort();
        hand.sort();
        let (ours_median, hand_median) = (ours[1], hand[1]);
        println!(
            "search {store:<8} full scan `has \"needle\"`: ours {:.0} ms ({:.0} rows/s, count {}), by hand {:.0} ms (count {}), ratio {:.2}",
            ms(ours_median),
            options.events as f64 / ours_median.as_secs_f64(),
            answers.0,
            ms(hand_median),
            answers.1,
            ours_median.as_secs_f64() / hand_median.as_secs_f64(),
        );
    }
    sqlite.close().await;
    Ok(())
}
