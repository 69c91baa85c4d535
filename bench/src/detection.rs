//! Detection benchmark (issue 4): a replicated Windows event file, and events/s through rule matching plus the correlation operators on 1..N workers.
//!
//! `detection-events` reads the SigmaHQ regression samples (evtx_dump JSON, in place under
//! `corpus/windows/sigma-regression/`), flattens each record the way Windows forwarders do
//! (`EventData` names at the top, plus `Channel`, `EventID`, `Computer`, `Provider_Name`,
//! `SystemTime`) and writes them round-robin as JSON lines until the requested count, each
//! copy with its own `Computer` (`host-N`), user fields (`user-N`) and `SystemTime` (50 ms
//! apart). Each event also gets `product`, `service` and `category` fields: the log source
//! SecureWatch derives for it (first service and category when there are several), because
//! the `rsigma` CLI's `--logsource-routing` reads the log source from such fields.
//! SecureWatch itself ignores them and derives the log source from `Channel` / `EventID`.
//!
//! `detection` measures the detection stage in-process: each of `workers` timely workers takes
//! every `workers`-th line, parses it (`serde_json`), builds the `Event`, runs the compiled
//! rules with log source routing, and feeds the matches of correlated rules at their event
//! time to `build_correlations`, the engine's operators. No HTTP, no store. The clock starts
//! after the rules are compiled and the file is in memory, and stops when the dataflow is
//! drained.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat};
use differential_dataflow::input::Input;
use securewatch_detection::{
    json_event_time, match_of, CompiledCorrelations, Detector, EventLogSource, Match, Pipelines, RuleSet,
};
use securewatch_dataflow::{build_correlations, CorrelationConfig};
use securewatch_schemas::{Event, EventId};
use serde_json::{Map, Value};
use timely::dataflow::operators::Inspect;

/// First `SystemTime` of the generated events: 2024-03-01T00:00:00Z.
const START_MS: i64 = 1_709_251_200_000;
/// Event time between consecutive generated events.
const STEP_MS: i64 = 50;
/// Fields that name a user in the samples; each copy gets its own value.
const USER_FIELDS: [&str; 4] = ["User", "SubjectUserName", "TargetUserName", "AccountName"];

/// Writes `events` flattened, replicated sample records to `out`.
pub fn write_events(corpus: &Path, out: &Path, events: u64, hosts: u64, users: u64) -> anyhow::Result<()> {
    let records = sample_records(&corpus.join("windows/sigma-regression/regression_data"))?;
    anyhow::ensure!(!records.is_empty(), "no sample records under {}", corpus.display());
    let mut writer = BufWriter::new(std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?);
    for i in 0..events {
        let mut record = records[(i as usize) % records.len()].clone();
        record.insert("Computer".into(), Value::String(format!("host-{}", i % hosts.max(1))));
        for field in USER_FIELDS {
            if record.contains_key(field) {
                record.insert(field.into(), Value::String(format!("user-{}", (i / 7) % users.max(1))));
            }
        }
        let time = DateTime::from_timestamp_millis(START_MS + i as i64 * STEP_MS).context("time out of range")?;
        record.insert("SystemTime".into(), Value::String(time.to_rfc3339_opts(SecondsFormat::Millis, true)));
        let event = Event::from_json_object(EventId(0), time, "bench", Value::Object(record.clone()));
        let source = EventLogSource::of(&event);
        let parts = [("product", source.product), ("service", source.services.first().cloned()), ("category", source.categories.first().cloned())];
        for (key, value) in parts {
            if let Some(value) = value {
                record.insert(key.into(), Value::String(value));
            }
        }
        serde_json::to_writer(&mut writer, &record)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    println!("detection-events: {events} events from {} sample records -> {}", records.len(), out.display());
    Ok(())
}

/// Every record of every `.json` file under `dir` (files may hold concatenated objects), flat.
fn sample_records(dir: &Path) -> anyhow::Result<Vec<Map<String, Value>>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            if let Some(flat) = flatten_record(&value?) {
                records.push(flat);
            }
        }
    }
    Ok(records)
}

/// An evtx_dump record as a flat Windows record; `None` when it is not one.
fn flatten_record(value: &Value) -> Option<Map<String, Value>> {
    let event = value.get("Event")?;
    let system = event.get("System")?;
    let mut flat = Map::new();
    for section in ["EventData", "UserData"] {
        if let Some(Value::Object(data)) = event.get(section) {
            for (key, value) in data {
                match value {
                    // UserData wraps its fields in one element named after the event.
                    Value::Object(inner) if section == "UserData" => {
                        flat.extend(inner.iter().filter(|(k, _)| !k.starts_with('#')).map(|(k, v)| (k.clone(), v.clone())))
                    }
                    _ => {
                        flat.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
    flat.insert("Channel".into(), system.get("Channel")?.clone());
    flat.insert("EventID".into(), system.get("EventID")?.clone());
    if let Some(name) = system.pointer("/Provider/#attributes/Name") {
        flat.insert("Provider_Name".into(), name.clone());
    }
    Some(flat)
}

/// Options of [`run`].
pub struct Options {
    pub rules: PathBuf,
    pub events: PathBuf,
    pub workers: usize,
}

/// Runs the detection benchmark and prints one result line.
pub fn run(options: Options) -> anyhow::Result<()> {
    let set = RuleSet::load(&options.rules)?;
    let detector = Arc::new(Detector::compile(&set, &Pipelines::none()));
    let correlations = Arc::new(CompiledCorrelations::compile(&set));
    let rejected = set.rejected.len() + detector.rejected().len() + correlations.rejected.len();
    let text = std::fs::read_to_string(&options.events).with_context(|| format!("reading {}", options.events.display()))?;
    let lines: Arc<Vec<&'static str>> = Arc::new(Box::leak(text.into_boxed_str()).lines().collect());
    let workers = options.workers.max(1);
    let (matches, alerts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let body = {
        let (lines, detector, correlations) = (Arc::clone(&lines), Arc::clone(&detector), Arc::clone(&correlations));
        let (matches, alerts) = (Arc::clone(&matches), Arc::clone(&alerts));
        move |worker: &mut timely::worker::Worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let correlations_here = Arc::clone(&correlations);
            let alerts = Arc::clone(&alerts);
            let mut input = worker.dataflow::<u64, _, _>(move |scope| {
                let (input, collection) = scope.new_collection::<Match, isize>();
                let out = build_correlations(collection, correlations_here, CorrelationConfig::default());
                out.alerts.inner.inspect(move |(_, _, diff)| {
                    if *diff > 0 {
                        alerts.fetch_add(1, Ordering::Relaxed);
                    }
                });
                input
            });
            let mut matched = 0u64;
            for (number, line) in lines.iter().enumerate().skip(index).step_by(peers) {
                let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
                let time = json_event_time(&value).unwrap_or(DateTime::UNIX_EPOCH);
                let event = Event::from_json_object(EventId(number as u128), time, "bench", value);
                let epoch = u64::try_from(time.timestamp_millis()).unwrap_or(0);
                if epoch > *input.time() && (number / peers) % 1_000 == 0 {
                    input.advance_to(epoch);
                    input.flush();
                    worker.step();
                }
                for hit in detector.matches(&event) {
                    matched += 1;
                    if correlations.feeds(hit.rule.reference()) {
                        input.update_at(match_of(&hit, &event, &correlations), (*input.time()).max(epoch), 1);
                    }
                }
            }
            input.close();
            while worker.step() {}
            matches.fetch_add(matched, Ordering::Relaxed);
        }
    };
    if workers == 1 {
        timely::execute_directly(body);
    } else {
        let guards = timely::execute(timely::Config::process(workers), body).map_err(anyhow::Error::msg)?;
        for result in guards.join() {
            result.map_err(anyhow::Error::msg)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "detection: {} events, {workers} workers, {} rules + {} correlations ({rejected} rejected): {:.2} s, {:.0} events/s, {} rule matches, {} correlation alerts",
        lines.len(),
        detector.rules().len(),
        correlations.correlations.len(),
        seconds,
        lines.len() as f64 / seconds,
        matches.load(Ordering::Relaxed),
        alerts.load(Ordering::Relaxed),
    );
    Ok(())
}
