//! Backtest benchmark (issue 20): stores the detection benchmark's events, so that
//! `securewatch rules backtest --data-dir` reads them back from SQLite, and from PostgreSQL with
//! a URL.
//!
//! `backtest-load` reads the JSON lines of `detection-events`, builds each event as the
//! detection benchmark does (`Event::from_json_object`, the `SystemTime` as its time) and
//! writes them through the sinks (`write_epochs`, 10,000 per write) into the data directory's
//! SQLite store and, with `--url`, into PostgreSQL schema `bench_backtest` (dropped first). It
//! prints the events written and their event-time range (`--from` / `--to` for the backtest).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat};
use securewatch_connectors::sinks::sqlite::{SqliteConfig, SqliteStore};
use securewatch_connectors::sinks::EpochWrite;
use securewatch_detection::json_event_time;
use securewatch_schemas::{Event, EventId};
use serde_json::Value;

/// The PostgreSQL schema the events go to.
pub const SCHEMA: &str = "bench_backtest";
/// Events per write (one transaction).
const WRITE_EVENTS: usize = 10_000;

/// Options of [`load`].
pub struct Options {
    pub events: PathBuf,
    pub data_dir: PathBuf,
    pub url: Option<String>,
}

/// Loads the events and prints one result line.
pub async fn load(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)?;
    let sqlite = SqliteStore::open(&options.data_dir, &SqliteConfig::default()).await?;
    let postgres = match &options.url {
        Some(url) => Some(Arc::new(crate::pg::fresh_sink(url, SCHEMA, None).await?)),
        None => None,
    };
    let text = std::fs::read_to_string(&options.events).with_context(|| format!("reading {}", options.events.display()))?;
    let started = Instant::now();
    let (mut written, mut first, mut last) = (0usize, None, None);
    let mut batch: Vec<Event> = Vec::with_capacity(WRITE_EVENTS);
    let mut lines = text.lines().enumerate().peekable();
    while lines.peek().is_some() {
        batch.clear();
        for (number, line) in lines.by_ref().take(WRITE_EVENTS) {
            let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
            let time = json_event_time(&value).unwrap_or(DateTime::UNIX_EPOCH);
            first = first.min(Some(time)).or(Some(time));
            last = last.max(Some(time));
            batch.push(Event::from_json_object(EventId::from_parts([b"bench-backtest".as_slice(), &(number as u64).to_be_bytes()]), time, "bench", value));
        }
        written += batch.len();
        let write = EpochWrite { events: std::mem::take(&mut batch), ..EpochWrite::default() };
        sqlite.write_epochs(&write).await?;
        if let Some(postgres) = &postgres {
            postgres.write_epochs(&write).await?;
        }
        batch = write.events;
    }
    sqlite.close().await;
    let format = |time: Option<DateTime<chrono::Utc>>| time.map_or("-".into(), |time| time.to_rfc3339_opts(SecondsFormat::Millis, true));
    println!(
        "backtest-load: {written} events into sqlite{} in {:.1} s; from {} to {}",
        if postgres.is_some() { " and postgres" } else { "" },
        started.elapsed().as_secs_f64(),
        format(first),
        format(last),
    );
    Ok(())
}
