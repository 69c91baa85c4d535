//! The backtest kind of job: Sigma rules and correlations run over a tenant's stored history
//! with the live pipeline's matcher and correlation operators, alerts only in the job's results.
//!
//! [`compile_rules`] compiles the rules as the live pipeline does (`[detection] pipelines`,
//! per-source detectors, correlations); [`replay`] reads the range's stored events in event-time
//! order, in chunks, through `securewatch_dataflow::backtest` (a dataflow of its own, on a
//! thread at a lower priority than the live workers); [`report`] turns what it found into the
//! results: per rule, per alert with its evidence, and the comparison with the live alerts.
//! Nothing is written to the live alerts or to the sinks.

pub mod cli;
pub mod expect;
pub mod replay;
pub mod report;
pub mod tally;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use securewatch_connectors::sinks::read::search::SearchSink;
use securewatch_dataflow::engine::Rules;
use securewatch_dataflow::CorrelationConfig;
use securewatch_detection::RuleSet;

use super::{JobKind, JobOutput};
use crate::rules::DetectionConfig;

/// The result columns of a backtest: what a row is (`summary`, `rule`, `alert`,
/// `only_live`), the rule it is about, and the row's content.
pub const COLUMNS: [&str; 3] = ["record", "rule_id", "detail"];

/// What backtests take from the server's configuration.
#[derive(Clone, Debug)]
pub struct BacktestSettings {
    /// `[detection]`: the rules directory (rules named by path must be inside it) and the
    /// extra pipelines.
    pub detection: DetectionConfig,
    /// The live correlations' lateness and retention (`[dataflow]`).
    pub correlation: CorrelationConfig,
}

/// Where the rules of a backtest come from.
#[derive(Clone, Debug)]
pub enum RulesSource {
    /// A rules file or directory.
    Path(PathBuf),
    /// Rule YAML documents (`---` between them).
    Text(String),
}

impl RulesSource {
    /// The API's `rules`: YAML documents when the text has a line break, else a path inside
    /// the server's rules directory (relative to it, or absolute; empty: all of it).
    pub fn from_request(text: &str, rules_dir: Option<&Path>) -> Result<RulesSource, String> {
        if text.contains('\n') {
            return Ok(RulesSource::Text(text.to_owned()));
        }
        let outside = || "rules: a path must name a rule file or folder inside the server's rules directory ([detection] rules_dir); or send the rules' YAML".to_string();
        let base = rules_dir.ok_or_else(|| "rules: the server has no rules directory ([detection] rules_dir); send the rules' YAML".to_string())?;
        let base = base.canonicalize().map_err(|_| outside())?;
        let named = base.join(text.trim());
        let named = named.canonicalize().map_err(|_| outside())?;
        if !named.starts_with(&base) {
            return Err(outside());
        }
        Ok(RulesSource::Path(named))
    }
}

/// One rule of a backtest's set, as the results name it.
#[derive(Clone, Debug)]
pub struct RuleEntry {
    /// Id, else name, else title (the alerts' `rule_id`).
    pub rule_id: String,
    /// Title.
    pub title: String,
    /// `rule` or the correlation type.
    pub kind: String,
    /// Whether its alerts are emitted (a rule referenced by a correlation emits none unless it
    /// says `generate`).
    pub emits: bool,
}

/// A backtest's rules, compiled.
#[derive(Clone)]
pub struct CompiledRules {
    /// Detectors and correlations, as the live dataflow runs them.
    pub rules: Arc<Rules>,
    /// Every rule, detection rules first.
    pub catalogue: Vec<RuleEntry>,
}

/// Compiles `source` as the live pipeline compiles its rules directory; any rejected rule
/// refuses the whole set (a backtest of part of the rules would mislead), naming each.
pub fn compile_rules(detection: &DetectionConfig, source: &RulesSource) -> Result<CompiledRules, String> {
    let (set, base) = match source {
        RulesSource::Path(path) => (RuleSet::load(path).map_err(|error| format!("rules: {error}"))?, Some(path.as_path())),
        RulesSource::Text(text) => (RuleSet::from_text(Path::new("rules.yml"), text), None),
    };
    let (rules, mut report) = crate::rules::compile_set(detection, &set).map_err(|error| format!("rules: {error:#}"))?;
    if let Some(base) = base.and_then(|path| if path.is_dir() { Some(path) } else { path.parent() }) {
        report.relative_to(base);
    }
    if !report.rejected.is_empty() {
        let reasons: Vec<String> = report.rejected.iter().map(ToString::to_string).collect();
        return Err(format!("rules: {} rejected: {}", reasons.len(), reasons.join("; ")));
    }
    let correlations = &rules.correlations;
    let mut catalogue: Vec<RuleEntry> = correlations
        .rules
        .iter()
        .map(|(rule_id, info)| RuleEntry { rule_id: rule_id.clone(), title: info.title.clone(), kind: "rule".into(), emits: info.emits })
        .collect();
    catalogue.extend(correlations.correlations.iter().enumerate().map(|(index, correlation)| RuleEntry {
        rule_id: correlation.rule_id.clone(),
        title: correlation.title.clone(),
        kind: correlation.kind.as_str().into(),
        emits: correlations.emits_correlation(index),
    }));
    if catalogue.is_empty() {
        return Err("rules: no rule found".into());
    }
    Ok(CompiledRules { rules: Arc::new(rules), catalogue })
}

/// A backtest job: what it replays.
pub struct BacktestJob(pub replay::Plan);

/// A running job's output as the replay sees it: progress and the cancel signal.
struct JobProgress<'a>(&'a mut JobOutput);

impl replay::Progress for JobProgress<'_> {
    fn report(&mut self, progress: &crate::jobs::record::BacktestProgress, share: f64) {
        self.0.backtest_progress(progress.clone(), share);
    }

    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

impl JobKind for BacktestJob {
    fn kind(&self) -> &'static str {
        "backtest"
    }

    fn columns(&self) -> Vec<String> {
        COLUMNS.iter().map(|column| column.to_string()).collect()
    }

    fn path(&self) -> String {
        self.0.reader.history_store().to_owned()
    }

    fn ends_on_cancel(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, output: &'a mut JobOutput) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let plan = &self.0;
            let found = replay::run(plan, &mut JobProgress(output)).await?;
            let report = report::Report::build(plan, found).await.map_err(|error| error.to_string())?;
            for row in report.rows() {
                if !output.row(row) {
                    break;
                }
            }
            Ok(())
        })
    }
}
