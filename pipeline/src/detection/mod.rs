//! Sigma detection in `securewatch run`: loads the rules directory, puts the rules in force in
//! the dataflow and reloads them when the directory changes or on request.
//!
//! A reload compiles the whole directory again. It is applied only when it brings no rejection
//! the running set did not already have (same file, rule and reason), so a broken edit leaves
//! the old set running and reports its errors; rules rejected from the start stay reported and
//! do not block later reloads. The correlation operators are built when the dataflow starts:
//! a reload changes single-event matching and which rules raise their own alerts, and a changed
//! set of correlations is reported (`correlations_changed`) and takes effect at the next start.

mod config;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use securewatch_connectors::CancellationToken;
use securewatch_detection::{CompiledCorrelations, Pipelines, Rejection, RuleSet, SourceDetectors};
use securewatch_operators::engine::{Rules, RulesHandle};
use serde::Serialize;

pub use config::DetectionConfig;

/// Gauge: detection rules in force, and rejected, by `state`.
const RULES: &str = "securewatch_detection_rules";
/// Counter: reloads by `outcome` (`applied`, `refused`, `unchanged`).
const RELOADS: &str = "securewatch_detection_reloads_total";

/// What a (re)load found.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Whether the new set is now in force.
    pub applied: bool,
    /// Detection rules compiled (of the set now in force when `applied`, else of the refused set).
    pub rules: usize,
    /// Correlation rules loaded.
    pub correlations: usize,
    /// Every rejection of the loaded set: file, rule id, title, reason.
    pub rejected: Vec<Rejection>,
    /// Rejections that the running set did not have (why a reload was refused).
    pub new_errors: Vec<Rejection>,
    /// The correlations differ from those the dataflow started with; they take effect at the
    /// next start.
    pub correlations_changed: bool,
}

/// Loads rules and swaps them into a [`RulesHandle`].
pub struct RulesReloader {
    config: DetectionConfig,
    handle: RulesHandle,
    running: Mutex<Running>,
}

struct Running {
    rejected: BTreeSet<Rejection>,
    /// (rule id, title) of the correlations the dataflow was built with.
    started_correlations: Vec<(String, String)>,
    fingerprint: Vec<(PathBuf, SystemTime, u64)>,
}

impl RulesReloader {
    /// Loads the rules of `config` (which has a `rules_dir`); an unreadable directory or
    /// pipeline fails the start, rejected rules are logged and counted.
    pub fn start(config: &DetectionConfig) -> anyhow::Result<(Arc<RulesReloader>, RulesHandle)> {
        let directory = config.rules_dir.clone().ok_or_else(|| anyhow::anyhow!("detection: rules_dir is not set"))?;
        let fingerprint = fingerprint(&directory);
        let (rules, mut report) = compile(config, &directory)?;
        report.applied = true;
        log_report(&report, "Detection rules loaded.");
        let started_correlations = correlation_names(&rules);
        let handle = RulesHandle::new(rules);
        let running = Running { rejected: report.rejected.iter().cloned().collect(), started_correlations, fingerprint };
        let reloader = RulesReloader { config: config.clone(), handle: handle.clone(), running: Mutex::new(running) };
        Ok((Arc::new(reloader), handle))
    }

    /// Loads the directory again and applies it unless it brings new rejections.
    pub fn reload(&self) -> anyhow::Result<ReloadReport> {
        let directory = self.config.rules_dir.clone().expect("started with a rules_dir");
        let fingerprint = fingerprint(&directory);
        let (rules, mut report) = compile(&self.config, &directory)?;
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        report.correlations_changed = correlation_names(&rules) != running.started_correlations;
        report.new_errors = report.rejected.iter().filter(|rejection| !running.rejected.contains(*rejection)).cloned().collect();
        running.fingerprint = fingerprint;
        if report.new_errors.is_empty() {
            if report.correlations_changed {
                tracing::warn!("The correlation rules changed: they take effect at the next start.");
            }
            self.handle.replace(rules);
            running.rejected = report.rejected.iter().cloned().collect();
            report.applied = true;
            metrics::counter!(RELOADS, "outcome" => "applied").increment(1);
            log_report(&report, "Detection rules reloaded.");
        } else {
            metrics::counter!(RELOADS, "outcome" => "refused").increment(1);
            for rejection in &report.new_errors {
                tracing::error!(%rejection, "Detection reload refused: the previous rules stay in force.");
            }
        }
        Ok(report)
    }

    /// Polls the rules directory every `poll_interval_ms` and reloads when a file was added,
    /// removed or changed; runs until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        if self.config.poll_interval_ms == 0 {
            return;
        }
        let directory = self.config.rules_dir.clone().expect("started with a rules_dir");
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.poll_interval_ms));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let now = fingerprint(&directory);
            let changed = now != self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).fingerprint;
            if !changed {
                continue;
            }
            let reloader = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || reloader.reload()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(error = format!("{error:#}"), "Detection reload failed; the previous rules stay in force."),
                Err(error) => tracing::error!(%error, "Detection reload panicked."),
            }
        }
    }
}

fn correlation_names(rules: &Rules) -> Vec<(String, String)> {
    rules.correlations.correlations.iter().map(|correlation| (correlation.rule_id.clone(), correlation.title.clone())).collect()
}

fn compile(config: &DetectionConfig, directory: &Path) -> anyhow::Result<(Rules, ReloadReport)> {
    let mut extra = Pipelines::none();
    for pipeline in &config.pipelines {
        if Pipelines::builtin_names().contains(&pipeline.as_str()) {
            extra.add_builtin(pipeline)?;
        } else {
            extra.add_file(Path::new(pipeline))?;
        }
    }
    let set = RuleSet::load(directory)?;
    let detectors = SourceDetectors::compile(&set, &extra);
    let correlations = CompiledCorrelations::compile(&set);
    let mut rejected = set.rejected.clone();
    rejected.extend(detectors.rejected());
    rejected.extend(correlations.rejected.iter().cloned());
    rejected.sort_by(|a, b| (&a.file, &a.rule_id, &a.reason).cmp(&(&b.file, &b.rule_id, &b.reason)));
    rejected.dedup();
    let rules = detectors.for_kind(securewatch_schemas::SourceKind::Hec).rules().len();
    let report = ReloadReport {
        applied: false,
        rules,
        correlations: correlations.correlations.len(),
        rejected,
        new_errors: Vec::new(),
        correlations_changed: false,
    };
    Ok((Rules { detectors, correlations: Arc::new(correlations) }, report))
}

fn log_report(report: &ReloadReport, message: &str) {
    for rejection in &report.rejected {
        tracing::warn!(%rejection, "Sigma rule rejected.");
    }
    metrics::gauge!(RULES, "state" => "loaded").set(report.rules as f64);
    metrics::gauge!(RULES, "state" => "rejected").set(report.rejected.len() as f64);
    tracing::info!(rules = report.rules, correlations = report.correlations, rejected = report.rejected.len(), "{message}");
}

/// Every rule file's path, modification time and size: what a change of the directory changes.
fn fingerprint(directory: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "yml" || extension == "yaml") {
                files.push((path, metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH), metadata.len()));
            }
        }
    }
    files.sort();
    files
}
