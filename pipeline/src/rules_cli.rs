//! `securewatch rules check|test`: Sigma tooling for rule authors, no services needed.
//!
//! - `check DIR`: loads and compiles every rule (with each source's built-in pipeline plus the
//!   `--pipeline` files); prints each rejection as `file: rule id: reason`, a summary, and
//!   exits 1 when anything was rejected.
//! - `test RULES --events FILE`: runs the rules over the events of FILE (one per line) and
//!   prints per rule its id, title, match count and the matched line numbers (`--format json`:
//!   one JSON document). `--expect FILE` (YAML or JSON mapping rule id → expected count) makes
//!   the exit code 1 when a count differs; rejected rules also make it 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use securewatch_detection::{
    Detector, EventLogSource, Pipelines, Rejection, Routing, RuleSet, SourceDetectors,
};
use securewatch_parse::{normalise, HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::{Event, EventId, SourceKind};
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Parses and compiles a rules directory (or file); non-zero exit when anything is rejected.
    Check {
        /// Rules directory or file (`.yml` / `.yaml`, searched recursively).
        path: PathBuf,
        /// Extra processing pipeline files (pySigma YAML), applied after the built-in ones.
        #[arg(long = "pipeline")]
        pipelines: Vec<PathBuf>,
    },
    /// Runs rules over sample events and reports matches; `--expect` makes it a test.
    Test {
        /// Rule file or directory.
        rules: PathBuf,
        /// Events, one per line (JSON objects; raw syslog lines with `--source syslog`).
        #[arg(long)]
        events: PathBuf,
        /// Expected match counts: a YAML or JSON mapping of rule id (or name) to count.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// How to read the events: `json` (field names as in the file), or through
        /// SecureWatch's own parser for `wazuh` (alerts.json lines), `hec` (event envelopes),
        /// `syslog` (raw lines); those also bring the source's built-in pipeline.
        #[arg(long, value_enum, default_value_t = EventSource::Json)]
        source: EventSource,
        /// Processing pipeline files (pySigma YAML).
        #[arg(long = "pipeline")]
        pipelines: Vec<PathBuf>,
        /// Built-in pipelines by name (wazuh, syslog, hec, evtx_json).
        #[arg(long = "builtin")]
        builtins: Vec<String>,
        /// `auto` (derive each event's log source), `any` (no routing: every rule sees every
        /// event) or a fixed `product=...,category=...,service=...`.
        #[arg(long, default_value = "auto")]
        logsource: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventSource {
    Json,
    Wazuh,
    Hec,
    Syslog,
}

impl EventSource {
    fn kind(self) -> SourceKind {
        match self {
            EventSource::Json => SourceKind::File,
            EventSource::Wazuh => SourceKind::Wazuh,
            EventSource::Hec => SourceKind::Hec,
            EventSource::Syslog => SourceKind::Syslog,
        }
    }
}

pub fn run(command: RulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::Check { path, pipelines } => check(&path, &pipelines),
        RulesCommand::Test { rules, events, expect, format, source, pipelines, builtins, logsource } => {
            let options = TestOptions { source, pipelines, builtins, logsource, format };
            test(&rules, &events, expect.as_deref(), &options)
        }
    }
}

fn load_pipelines(files: &[PathBuf], builtins: &[String]) -> anyhow::Result<Pipelines> {
    let mut pipelines = Pipelines::none();
    for name in builtins {
        pipelines.add_builtin(name)?;
    }
    for file in files {
        pipelines.add_file(file)?;
    }
    Ok(pipelines)
}

fn check(path: &Path, pipeline_files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let extra = load_pipelines(pipeline_files, &[])?;
    let set = RuleSet::load(path)?;
    let detectors = SourceDetectors::compile(&set, &extra);
    let compile_rejections = detectors.rejected();
    for rejection in set.rejected.iter().chain(&compile_rejections) {
        println!("{}", rejection_line(rejection));
    }
    for loaded in &set.rules {
        for warning in &loaded.warnings {
            println!("{}: {}: warning: {warning}", loaded.file.display(), loaded.item.id.as_deref().unwrap_or("-"));
        }
    }
    let rejected = set.rejected.len() + compile_rejections.len();
    println!(
        "{}: {} documents: {} rules, {} filters, {} correlations; {rejected} rejected",
        path.display(),
        set.documents(),
        set.rules.len(),
        set.filters.len(),
        set.correlations.len(),
    );
    Ok(if rejected == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `file: rule id: reason` on one line, as `rules check` prints a rejection (the rule's title
/// stands in for a missing id; multi-line reasons such as regex errors are joined).
fn rejection_line(rejection: &Rejection) -> String {
    let reason: Vec<&str> = rejection.reason.split_whitespace().collect();
    format!(
        "{}: {}: {}",
        rejection.file.display(),
        rejection.rule_id.as_deref().or(rejection.title.as_deref()).unwrap_or("-"),
        reason.join(" ")
    )
}

struct TestOptions {
    source: EventSource,
    pipelines: Vec<PathBuf>,
    builtins: Vec<String>,
    logsource: String,
    format: Format,
}

/// One rule's result in `rules test`.
struct RuleResult {
    id: String,
    title: String,
    level: Option<&'static str>,
    lines: Vec<usize>,
}

fn test(rules: &Path, events_path: &Path, expect: Option<&Path>, options: &TestOptions) -> anyhow::Result<ExitCode> {
    let mut pipelines = Pipelines::for_source(options.source.kind());
    pipelines.extend(&load_pipelines(&options.pipelines, &options.builtins)?);
    let set = RuleSet::load(rules)?;
    let detector = Detector::compile(&set, &pipelines);
    let fixed = match options.logsource.as_str() {
        "auto" | "any" => None,
        text => Some(EventLogSource::parse(text)?),
    };
    let routing = match (&fixed, options.logsource.as_str()) {
        (Some(source), _) => Routing::Given(source),
        (None, "any") => Routing::All,
        _ => Routing::Derived,
    };

    let mut results: Vec<RuleResult> = detector
        .rules()
        .iter()
        .map(|rule| RuleResult {
            id: rule.reference().to_string(),
            title: rule.title.clone(),
            level: rule.level.map(|level| level.as_str()),
            lines: Vec::new(),
        })
        .collect();
    let text = std::fs::read_to_string(events_path).with_context(|| format!("reading {}", events_path.display()))?;
    let mut events = 0;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_number = number + 1;
        let event = read_event(options.source, line, line_number)
            .with_context(|| format!("{}:{line_number}", events_path.display()))?;
        events += 1;
        for hit in detector.matches_with(&event, routing) {
            results[hit.index].lines.push(line_number);
        }
    }

    let expectations = match expect {
        Some(path) => check_expectations(path, &results, &set)?,
        None => Vec::new(),
    };
    let mut rejected: Vec<Rejection> = set.rejected.clone();
    rejected.extend(detector.rejected().iter().cloned());
    let ok = rejected.is_empty() && expectations.iter().all(|expectation| expectation.ok);
    match options.format {
        Format::Text => print_text(&results, &set, &rejected, &expectations, events, &pipelines),
        Format::Json => print_json(&results, &set, &rejected, &expectations, events, ok)?,
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Turns one line into an event the way SecureWatch's sources would.
fn read_event(source: EventSource, line: &str, line_number: usize) -> anyhow::Result<Event> {
    let now = Utc::now();
    let record = |kind, meta| RawRecord {
        kind,
        source_name: Arc::from("rules-test"),
        peer: None,
        received: now,
        body: line.as_bytes().to_vec(),
        meta,
    };
    match source {
        EventSource::Wazuh => Ok(normalise(&record(
            SourceKind::Wazuh,
            RecordMeta::File { identity: "rules-test".into(), offset: line_number as u64 },
        ))?),
        EventSource::Hec => Ok(normalise(&record(
            SourceKind::Hec,
            RecordMeta::HecEvent { meta: Arc::new(HecMeta::default()), index: 0 },
        ))?),
        EventSource::Syslog => Ok(normalise(&record(SourceKind::Syslog, RecordMeta::None))?),
        EventSource::Json => {
            let value: Value = serde_json::from_str(line).context("not JSON")?;
            if !value.is_object() {
                bail!("not a JSON object");
            }
            Ok(Event::from_json_object(EventId(line_number as u128), now, "rules-test", value))
        }
    }
}

struct Expectation {
    rule: String,
    expected: usize,
    actual: Option<usize>,
    ok: bool,
}

/// Reads the expectation file (YAML or JSON: `rule id or name: count`) and compares.
fn check_expectations(path: &Path, results: &[RuleResult], set: &RuleSet) -> anyhow::Result<Vec<Expectation>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let wanted: BTreeMap<String, usize> = yaml_serde::from_str(&text)
        .with_context(|| format!("{}: expected a mapping of rule id to match count", path.display()))?;
    let mut out = Vec::new();
    for (rule, expected) in wanted {
        // A rule is named by the id reports use, or by its name / title.
        let actual = results.iter().find(|result| result.id == rule).map(|result| result.lines.len()).or_else(|| {
            let loaded = set.rule_by_reference(&rule)?;
            let id = loaded.item.id.as_deref().or(loaded.item.name.as_deref())?;
            results.iter().find(|result| result.id == id).map(|result| result.lines.len())
        });
        let ok = actual == Some(expected);
        out.push(Expectation { rule, expected, actual, ok });
    }
    Ok(out)
}

fn print_text(
    results: &[RuleResult],
    set: &RuleSet,
    rejected: &[Rejection],
    expectations: &[Expectation],
    events: usize,
    pipelines: &Pipelines,
) {
    let origins = pipelines.origins();
    println!(
        "{events} events, {} rules, pipelines: {}",
        results.len(),
        if origins.is_empty() { "none".to_string() } else { origins.join(", ") }
    );
    for result in results {
        let lines: Vec<String> = result.lines.iter().map(usize::to_string).collect();
        println!(
            "rule {}: {} [{}]: {} matches{}",
            result.id,
            result.title,
            result.level.unwrap_or("-"),
            result.lines.len(),
            if lines.is_empty() { String::new() } else { format!(" (lines {})", lines.join(", ")) }
        );
    }
    for correlation in &set.correlations {
        let item = &correlation.item;
        println!(
            "correlation {}: {} ({}): evaluated by the dataflow (not yet in rules test)",
            item.id.as_deref().or(item.name.as_deref()).unwrap_or("-"),
            item.title,
            item.correlation_type.as_str()
        );
    }
    for rejection in rejected {
        println!("rejected {}", rejection_line(rejection));
    }
    for expectation in expectations {
        let actual = expectation.actual.map_or_else(|| "no such rule".to_string(), |n| n.to_string());
        println!(
            "expect {}: {} (expected {}, got {actual})",
            expectation.rule,
            if expectation.ok { "ok" } else { "FAILED" },
            expectation.expected
        );
    }
    let failed = expectations.iter().filter(|expectation| !expectation.ok).count();
    println!(
        "summary: {} of {} rules matched; {} rejected; expectations {} passed, {failed} failed",
        results.iter().filter(|result| !result.lines.is_empty()).count(),
        results.len(),
        rejected.len(),
        expectations.len() - failed,
    );
}

fn print_json(
    results: &[RuleResult],
    set: &RuleSet,
    rejected: &[Rejection],
    expectations: &[Expectation],
    events: usize,
    ok: bool,
) -> anyhow::Result<()> {
    let document = json!({
        "events": events,
        "rules": results.iter().map(|result| json!({
            "id": result.id,
            "title": result.title,
            "level": result.level,
            "matches": result.lines.len(),
            "lines": result.lines,
        })).collect::<Vec<_>>(),
        "correlations": set.correlations.iter().map(|correlation| json!({
            "id": correlation.item.id.as_deref().or(correlation.item.name.as_deref()),
            "title": correlation.item.title,
            "type": correlation.item.correlation_type.as_str(),
            "status": "evaluated by the dataflow (not yet in rules test)",
        })).collect::<Vec<_>>(),
        "rejected": rejected.iter().map(|rejection| json!({
            "file": rejection.file.display().to_string(),
            "rule_id": rejection.rule_id,
            "title": rejection.title,
            "reason": rejection.reason,
        })).collect::<Vec<_>>(),
        "expectations": expectations.iter().map(|expectation| json!({
            "rule": expectation.rule,
            "expected": expectation.expected,
            "actual": expectation.actual,
            "ok": expectation.ok,
        })).collect::<Vec<_>>(),
        "ok": ok,
    });
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}
