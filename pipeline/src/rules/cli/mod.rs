//! `securewatch rules check|test`: Sigma tooling for rule authors, no services needed.
//!
//! - `check DIR`: loads and compiles every rule (with each source's built-in pipeline plus the
//!   `--pipeline` files); prints each rejection as `file: rule id: reason`, a summary, and
//!   exits 1 when anything was rejected.
//! - `test RULES --events FILE`: runs the rules over the events of FILE (one per line) and
//!   prints per rule its id, title, match count and the matched line numbers; then runs the
//!   correlation rules of the set over those matches in event time, with the engine's own
//!   operators (`correlate_batch`), and prints per correlation rule its alerts (group key,
//!   window, contributing line numbers). `--format json`: one JSON document. `--expect FILE`
//!   (YAML or JSON mapping rule id → expected match count, correlation id → expected alert
//!   count) makes the exit code 1 when a count differs; rejected rules also make it 1.
//!
//! Event time: JSON events take it from the fields listed in `securewatch_detection::event_time`
//! (`@timestamp`, `timestamp`, `time`, evtx `SystemTime`, `UtcTime`, ...); a line without one
//! takes the time of the previous line (the first: 1970-01-01T00:00:00Z) and is counted in the
//! report. Wazuh, HEC and syslog lines get the time SecureWatch's parser derives.
//!
//! Nothing is a silent zero: the report counts the events whose log source reaches none of
//! the rules (naming `--logsource any` and a fixed log source as the fixes), and per
//! correlation the matches skipped because they lack a group-by (or value) field.

mod correlations;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use securewatch_detection::{
    json_event_time, match_of, CompiledCorrelations, Detector, EventLogSource, Match, Pipelines, Rejection, Routing,
    RuleSet, SourceDetectors,
};
use securewatch_dataflow::correlate_batch_report;
use securewatch_parse::normalise;
use securewatch_schemas::{HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::{Event, EventId, SourceKind};
use serde_json::{json, Value};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Runs rules and correlations over stored history with the live engine (a server's job
    /// with --server, or a data directory's store with --data-dir) and compares with the live
    /// alerts; `--expect` makes it a CI check.
    Backtest(Box<crate::jobs::backtest::cli::BacktestArgs>),
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
        /// Expected counts: a YAML or JSON mapping of rule id (or name) to match count, and of
        /// correlation rule id (or name) to alert count.
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
        RulesCommand::Backtest(args) => crate::jobs::backtest::cli::run(*args),
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
    for warning in &set.warnings {
        println!("{}: {}: warning: {}", warning.file.display(), warning.rule_id.as_deref().unwrap_or("-"), warning.message);
    }
    for loaded in &set.rules {
        for warning in &loaded.warnings {
            println!("{}: {}: warning: {warning}", loaded.file.display(), loaded.item.id.as_deref().unwrap_or("-"));
        }
    }
    // Every document is counted once: loaded (and compiled), or rejected, so the parts add up.
    let compile_rejected = |file: &Path, reference: Option<&str>, title: &str| {
        compile_rejections.iter().any(|rejection| {
            rejection.file == file && rejection.rule_id.as_deref() == reference && rejection.title.as_deref() == Some(title)
        })
    };
    let rules = set
        .rules
        .iter()
        .filter(|loaded| {
            let reference = loaded.item.id.as_deref().or(loaded.item.name.as_deref());
            !compile_rejected(&loaded.file, reference, &loaded.item.title)
        })
        .count();
    let filters = set
        .filters
        .iter()
        .filter(|loaded| {
            let reference = loaded.item.id.as_deref().or(loaded.item.name.as_deref());
            !compile_rejected(&loaded.file, reference, &loaded.item.title)
        })
        .count();
    let rejected = set.documents() - rules - filters - set.correlations.len();
    let warnings = set.warnings.len() + set.rules.iter().map(|loaded| loaded.warnings.len()).sum::<usize>();
    println!(
        "{}: {}: {}, {}, {} loaded; {rejected} rejected{}",
        path.display(),
        plural(set.documents(), "document"),
        plural(rules, "rule"),
        plural(filters, "filter"),
        plural(set.correlations.len(), "correlation"),
        if warnings == 0 { String::new() } else { format!("; {}", plural(warnings, "warning")) },
    );
    Ok(if rejected == 0 && compile_rejections.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `1 rule`, `2 rules`.
fn plural(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}

/// `file: rule id: reason` on one line, as `rules check` prints a rejection: `-` for a
/// missing id, the title (when known) after the reason, multi-line reasons (regex errors)
/// joined.
fn rejection_line(rejection: &Rejection) -> String {
    let reason: Vec<&str> = rejection.reason.split_whitespace().collect();
    let title = match (&rejection.rule_id, &rejection.title) {
        (None, Some(title)) => format!(" (title: {title})"),
        _ => String::new(),
    };
    format!("{}: {}: {}{title}", rejection.file.display(), rejection.rule_id.as_deref().unwrap_or("-"), reason.join(" "))
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
    let compiled = Arc::new(CompiledCorrelations::compile(&set));
    let text = std::fs::read_to_string(events_path).with_context(|| format!("reading {}", events_path.display()))?;
    let mut clock = Clock::default();
    let mut matches: Vec<Match> = Vec::new();
    let mut lines_of: HashMap<EventId, usize> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_number = number + 1;
        let event = read_event(options.source, line, line_number, &mut clock)
            .with_context(|| format!("{}:{line_number}", events_path.display()))?;
        clock.events += 1;
        if !matches!(routing, Routing::All) && detector.routed_rule_count(&event, routing) == 0 {
            clock.unrouted += 1;
        }
        lines_of.insert(event.id, line_number);
        for hit in detector.matches_with(&event, routing) {
            results[hit.index].lines.push(line_number);
            if compiled.feeds(hit.rule.reference()) {
                matches.push(match_of(&hit, &event, &compiled));
            }
        }
    }
    let batch = correlate_batch_report(matches, Arc::clone(&compiled), 1)?;
    let correlation_results = correlations::results(&compiled, batch.alerts, &batch.skipped, &lines_of);
    let unrouted = (clock.unrouted > 0 && !detector.rules().is_empty())
        .then(|| Unrouted { events: clock.unrouted, fixed: fixed_logsource_hint(&detector) });

    let expectations = match expect {
        Some(path) => check_expectations(path, &results, &correlation_results, &set)?,
        None => Vec::new(),
    };
    let mut rejected: Vec<Rejection> = set.rejected.clone();
    rejected.extend(detector.rejected().iter().cloned());
    rejected.extend(compiled.rejected.iter().cloned());
    let ok = rejected.is_empty() && expectations.iter().all(|expectation| expectation.ok);
    let report = Report {
        results: &results,
        correlations: &correlation_results,
        set: &set,
        rejected: &rejected,
        expectations: &expectations,
        clock: &clock,
        unrouted: unrouted.as_ref(),
    };
    match options.format {
        Format::Text => print_text(&report, &pipelines),
        Format::Json => print_json(&report, ok)?,
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Event counts and the event time of the previous line, for lines without a time field.
#[derive(Default)]
struct Clock {
    events: usize,
    untimed: usize,
    /// Events whose log source reaches none of the rules (not counted with `--logsource any`).
    unrouted: usize,
    previous: Option<DateTime<Utc>>,
}

/// What the report prints.
struct Report<'a> {
    results: &'a [RuleResult],
    correlations: &'a [correlations::CorrelationResult],
    set: &'a RuleSet,
    rejected: &'a [Rejection],
    expectations: &'a [Expectation],
    clock: &'a Clock,
    unrouted: Option<&'a Unrouted>,
}

/// Events no rule was tried on because their log source reaches none of the rules'.
struct Unrouted {
    events: usize,
    /// A `--logsource` value that offers them to the first rule with a log source.
    fixed: Option<String>,
}

impl Unrouted {
    /// The fixes, for the text and JSON reports.
    fn hint(&self) -> String {
        let fixed = self.fixed.as_ref().map_or(String::new(), |fixed| format!(", or --logsource {fixed} to give them that log source"));
        format!("--logsource any offers every event to every rule{fixed}")
    }
}

/// `product=...,category=...,service=...` of the first rule that states a log source.
fn fixed_logsource_hint(detector: &Detector) -> Option<String> {
    detector.rules().iter().find_map(|rule| {
        let source = &rule.logsource;
        let parts: Vec<String> = [("product", &source.product), ("category", &source.category), ("service", &source.service)]
            .into_iter()
            .filter_map(|(key, value)| value.as_ref().map(|value| format!("{key}={value}")))
            .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    })
}

/// Turns one line into an event the way SecureWatch's sources would.
fn read_event(source: EventSource, line: &str, line_number: usize, clock: &mut Clock) -> anyhow::Result<Event> {
    let now = Utc::now();
    let record = |kind, meta| RawRecord {
        tenant: Default::default(),
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
            let time = match json_event_time(&value) {
                Some(time) => time,
                None => {
                    clock.untimed += 1;
                    clock.previous.unwrap_or(DateTime::UNIX_EPOCH)
                }
            };
            clock.previous = Some(time);
            Ok(Event::from_json_object(EventId(line_number as u128), time, "rules-test", value))
        }
    }
}

struct Expectation {
    rule: String,
    expected: usize,
    actual: Option<usize>,
    ok: bool,
}

/// Reads the expectation file (YAML or JSON: `rule id or name: count`) and compares: match
/// counts for detection rules, alert counts for correlation rules.
fn check_expectations(
    path: &Path,
    results: &[RuleResult],
    correlation_results: &[correlations::CorrelationResult],
    set: &RuleSet,
) -> anyhow::Result<Vec<Expectation>> {
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
        let actual = actual.or_else(|| correlations::alert_count(correlation_results, &rule));
        let ok = actual == Some(expected);
        out.push(Expectation { rule, expected, actual, ok });
    }
    Ok(out)
}

fn print_text(report: &Report<'_>, pipelines: &Pipelines) {
    let origins = pipelines.origins();
    println!(
        "{} events, {} rules, {} correlations, pipelines: {}",
        report.clock.events,
        report.results.len(),
        report.correlations.len(),
        if origins.is_empty() { "none".to_string() } else { origins.join(", ") }
    );
    if report.clock.untimed > 0 {
        println!(
            "{} events have no time field; each takes the time of the line before it",
            report.clock.untimed
        );
    }
    if let Some(unrouted) = report.unrouted {
        println!(
            "warning: {} of {} events reached no rule: their log source (derived from the event) matches none of \
             the rules' log sources, so no rule was tried on them; {}",
            unrouted.events,
            report.clock.events,
            unrouted.hint()
        );
    }
    for warning in &report.set.warnings {
        println!("warning {warning}");
    }
    for result in report.results {
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
    correlations::print_text(report.correlations);
    for rejection in report.rejected {
        println!("rejected {}", rejection_line(rejection));
    }
    for expectation in report.expectations {
        let actual = expectation.actual.map_or_else(|| "no such rule".to_string(), |n| n.to_string());
        println!(
            "expect {}: {} (expected {}, got {actual})",
            expectation.rule,
            if expectation.ok { "ok" } else { "FAILED" },
            expectation.expected
        );
    }
    let failed = report.expectations.iter().filter(|expectation| !expectation.ok).count();
    println!(
        "summary: {} of {} rules matched; {} of {} correlations fired; {} rejected; expectations {} passed, {failed} failed",
        report.results.iter().filter(|result| !result.lines.is_empty()).count(),
        report.results.len(),
        report.correlations.iter().filter(|result| !result.alerts.is_empty()).count(),
        report.correlations.len(),
        report.rejected.len(),
        report.expectations.len() - failed,
    );
}

fn print_json(report: &Report<'_>, ok: bool) -> anyhow::Result<()> {
    let document = json!({
        "events": report.clock.events,
        "events_without_time": report.clock.untimed,
        "events_unrouted": report.unrouted.map_or(0, |unrouted| unrouted.events),
        "unrouted_hint": report.unrouted.map(Unrouted::hint),
        "rules": report.results.iter().map(|result| json!({
            "id": result.id,
            "title": result.title,
            "level": result.level,
            "matches": result.lines.len(),
            "lines": result.lines,
        })).collect::<Vec<_>>(),
        "correlations": correlations::json(report.correlations),
        "warnings": report.set.warnings.iter().map(|warning| json!({
            "file": warning.file.display().to_string(),
            "rule_id": warning.rule_id,
            "message": warning.message,
        })).collect::<Vec<_>>(),
        "rejected": report.rejected.iter().map(|rejection| json!({
            "file": rejection.file.display().to_string(),
            "rule_id": rejection.rule_id,
            "title": rejection.title,
            "reason": rejection.reason,
        })).collect::<Vec<_>>(),
        "expectations": report.expectations.iter().map(|expectation| json!({
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
