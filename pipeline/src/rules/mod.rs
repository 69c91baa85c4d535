//! Detection rules in the running pipeline and for rule authors: loads the rules directory, puts
//! the rules in force in the dataflow and reloads them when the directory changes or on request
//! (here), backfills new correlations ([`backfill`]), and `securewatch rules` ([`cli`]).
//!
//! A reload compiles the whole directory again. It is applied only when it brings no rejection
//! the running set did not already have (same file, rule and reason), so a broken edit leaves
//! the old set running and reports its errors; rules rejected from the start stay reported and
//! do not block later reloads.
//!
//! Correlations are replaced in the running dataflow too (see
//! `securewatch_dataflow::correlate`): an unchanged correlation keeps its windows; a new or
//! changed one starts with the windows still open, rebuilt from the stored events (the
//! **backfill**): once everything ingested before the swap is stored, the events of the last
//! `timespan + lateness` (longest over the new correlations) are read back from the store, the
//! new rules run over them, and their matches go to the new correlations only.

mod backfill;
pub mod cli;
mod config;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use securewatch_connectors::sinks::StoreReader;
use securewatch_connectors::CancellationToken;
use securewatch_detection::{CompiledCorrelations, LoadWarning, Pipelines, Rejection, RuleSet, SourceDetectors};
use securewatch_dataflow::engine::{Rules, RulesHandle};
use serde::Serialize;

use crate::runtime::DataflowControl;

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
    /// Documents that loaded after a repair (e.g. a missing title), with what was repaired.
    pub warnings: Vec<LoadWarning>,
    /// Rejections that the running set did not have (why a reload was refused).
    pub new_errors: Vec<Rejection>,
    /// Correlations (rule ids) that are new or changed in the applied set: they start with
    /// the windows rebuilt from stored events ([`ReloadReport::backfill`]).
    pub new_correlations: Vec<String>,
    /// What rebuilding the new correlations' windows read and fed, when there were any.
    pub backfill: Option<backfill::BackfillReport>,
}

impl ReloadReport {
    /// The report with file paths relative to the rules directory `directory`, so an API
    /// answer does not show where the server keeps its files.
    pub fn relative_to(&mut self, directory: &std::path::Path) {
        let relative = |file: &mut PathBuf| {
            if let Ok(inside) = file.strip_prefix(directory) {
                *file = inside.to_path_buf();
            }
        };
        self.rejected.iter_mut().for_each(|rejection| relative(&mut rejection.file));
        self.new_errors.iter_mut().for_each(|rejection| relative(&mut rejection.file));
        self.warnings.iter_mut().for_each(|warning| relative(&mut warning.file));
    }
}

/// Loads rules and swaps them into a [`RulesHandle`].
pub struct RulesReloader {
    config: DetectionConfig,
    handle: RulesHandle,
    running: Mutex<Running>,
    backfill: OnceLock<backfill::Backfiller>,
}

struct Running {
    rejected: BTreeSet<Rejection>,
    fingerprint: Vec<(PathBuf, SystemTime, u64)>,
    /// What the set in force loaded (`GET /api/v1/rules`).
    listing: RulesListing,
}

/// One rule of the set in force, as `GET /api/v1/rules` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedRule {
    /// The file, relative to the rules directory.
    pub file: PathBuf,
    /// The rule's id (its name when it has no id).
    pub id: Option<String>,
    pub title: String,
    pub level: Option<&'static str>,
    /// `detection` or `correlation`.
    pub kind: &'static str,
    pub tags: Vec<String>,
}

/// The rules in force and what was rejected, with reasons (paths relative to the directory).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RulesListing {
    pub rules: Vec<LoadedRule>,
    pub rejected: Vec<Rejection>,
    pub warnings: Vec<LoadWarning>,
}

impl RulesReloader {
    /// Loads the rules of `config` (which has a `rules_dir`); an unreadable directory or
    /// pipeline fails the start, rejected rules are logged and counted.
    pub fn start(config: &DetectionConfig) -> anyhow::Result<(Arc<RulesReloader>, RulesHandle)> {
        let directory = config.rules_dir.clone().ok_or_else(|| anyhow::anyhow!("detection: rules_dir is not set"))?;
        let fingerprint = fingerprint(&directory);
        let (rules, mut report, listing) = compile(config, &directory)?;
        report.applied = true;
        log_report(&report, "Detection rules loaded.");
        let handle = RulesHandle::new(rules);
        let running = Running { rejected: report.rejected.iter().cloned().collect(), fingerprint, listing };
        let reloader = RulesReloader {
            config: config.clone(),
            handle: handle.clone(),
            running: Mutex::new(running),
            backfill: OnceLock::new(),
        };
        Ok((Arc::new(reloader), handle))
    }

    /// Lets reloads rebuild the windows of new correlations from `store` through `dataflow`.
    pub fn attach_backfill(&self, store: StoreReader, dataflow: DataflowControl) {
        let _ = self.backfill.set(backfill::Backfiller::new(store, dataflow, self.config.backfill_max_events));
    }

    /// The rules directory.
    pub fn rules_dir(&self) -> Option<&std::path::Path> {
        self.config.rules_dir.as_deref()
    }

    /// The rules in force and the rejections of the loaded set.
    pub fn listing(&self) -> RulesListing {
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).listing.clone()
    }

    /// Loads the directory again and applies it unless it brings new rejections; then rebuilds
    /// the windows of new correlations (when a backfill is attached).
    pub async fn reload(self: &Arc<Self>) -> anyhow::Result<ReloadReport> {
        let reloader = Arc::clone(self);
        let (mut report, swapped) = tokio::task::spawn_blocking(move || reloader.swap()).await??;
        if let (Some(swap), Some(backfiller)) = (swapped, self.backfill.get()) {
            match backfiller.run(&swap).await {
                Ok(done) => report.backfill = Some(done),
                Err(error) => {
                    tracing::error!(error = crate::errors::error_chain(&error), "Correlation backfill failed: the new correlations start empty.");
                }
            }
        }
        Ok(report)
    }

    /// The synchronous part of [`RulesReloader::reload`]: compiles and swaps; returns what the
    /// backfill needs when new correlations came in.
    fn swap(&self) -> anyhow::Result<(ReloadReport, Option<backfill::Swap>)> {
        let directory = self.config.rules_dir.clone().expect("started with a rules_dir");
        let fingerprint = fingerprint(&directory);
        let (rules, mut report, listing) = compile(&self.config, &directory)?;
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        report.new_errors = report.rejected.iter().filter(|rejection| !running.rejected.contains(*rejection)).cloned().collect();
        running.fingerprint = fingerprint;
        let mut swapped = None;
        if report.new_errors.is_empty() {
            let before = self.handle.current();
            let new_keys: BTreeSet<u64> = rules
                .correlations
                .correlations
                .iter()
                .map(|correlation| correlation.key)
                .filter(|key| before.correlations.by_key(*key).is_none())
                .collect();
            self.handle.replace(rules);
            let rules = self.handle.current();
            report.new_correlations = rules
                .correlations
                .correlations
                .iter()
                .filter(|correlation| new_keys.contains(&correlation.key))
                .map(|correlation| correlation.rule_id.clone())
                .collect();
            if !new_keys.is_empty() {
                swapped = Some(backfill::Swap { rules, new_keys, at_ms: securewatch_dataflow::now_ms() });
            }
            running.rejected = report.rejected.iter().cloned().collect();
            running.listing = listing;
            report.applied = true;
            metrics::counter!(RELOADS, "outcome" => "applied").increment(1);
            log_report(&report, "Detection rules reloaded.");
        } else {
            metrics::counter!(RELOADS, "outcome" => "refused").increment(1);
            for rejection in &report.new_errors {
                tracing::error!(%rejection, "Detection reload refused: the previous rules stay in force.");
            }
        }
        Ok((report, swapped))
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
            if let Err(error) = self.reload().await {
                tracing::error!(error = crate::errors::error_chain(&error), "Detection reload failed; the previous rules stay in force.");
            }
        }
    }
}

fn compile(config: &DetectionConfig, directory: &Path) -> anyhow::Result<(Rules, ReloadReport, RulesListing)> {
    let set = RuleSet::load(directory)?;
    let (rules, report) = compile_set(config, &set)?;
    let listing = listing_of(&set, &report, directory);
    Ok((rules, report, listing))
}

/// Compiles `set` as the live pipeline compiles its rules directory: the same extra pipelines
/// of `config`, the same per-source detectors and correlations (backtests).
pub(crate) fn compile_set(config: &DetectionConfig, set: &RuleSet) -> anyhow::Result<(Rules, ReloadReport)> {
    let mut extra = Pipelines::none();
    for pipeline in &config.pipelines {
        if Pipelines::builtin_names().contains(&pipeline.as_str()) {
            extra.add_builtin(pipeline)?;
        } else {
            extra.add_file(Path::new(pipeline))?;
        }
    }
    let detectors = SourceDetectors::compile(set, &extra);
    let correlations = CompiledCorrelations::compile(set);
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
        warnings: set.warnings.clone(),
        new_errors: Vec::new(),
        new_correlations: Vec::new(),
        backfill: None,
    };
    Ok((Rules { detectors, correlations: Arc::new(correlations) }, report))
}

/// The rules of `set` that were not rejected, and the report's rejections and warnings, with
/// paths relative to `directory`.
fn listing_of(set: &RuleSet, report: &ReloadReport, directory: &Path) -> RulesListing {
    let relative = |file: &Path| file.strip_prefix(directory).unwrap_or(file).to_path_buf();
    let rejected_ids: BTreeSet<(PathBuf, String)> =
        report.rejected.iter().map(|rejection| (rejection.file.clone(), rejection.rule_id.clone().unwrap_or_default())).collect();
    let kept = |file: &Path, id: &Option<String>| !rejected_ids.contains(&(file.to_path_buf(), id.clone().unwrap_or_default()));
    let mut rules: Vec<LoadedRule> = set
        .rules
        .iter()
        .filter(|loaded| kept(&loaded.file, &loaded.item.id.clone().or_else(|| loaded.item.name.clone())))
        .map(|loaded| LoadedRule {
            file: relative(&loaded.file),
            id: loaded.item.id.clone().or_else(|| loaded.item.name.clone()),
            title: loaded.item.title.clone(),
            level: loaded.item.level.as_ref().map(|level| level.as_str()),
            kind: "detection",
            tags: loaded.item.tags.clone(),
        })
        .collect();
    rules.extend(set.correlations.iter().filter(|loaded| kept(&loaded.file, &loaded.item.id.clone().or_else(|| loaded.item.name.clone()))).map(|loaded| LoadedRule {
        file: relative(&loaded.file),
        id: loaded.item.id.clone().or_else(|| loaded.item.name.clone()),
        title: loaded.item.title.clone(),
        level: loaded.item.level.as_ref().map(|level| level.as_str()),
        kind: "correlation",
        tags: loaded.item.tags.clone(),
    }));
    let mut listing = RulesListing { rules, rejected: report.rejected.clone(), warnings: report.warnings.clone() };
    listing.rejected.iter_mut().for_each(|rejection| rejection.file = relative(&rejection.file));
    listing.warnings.iter_mut().for_each(|warning| warning.file = relative(&warning.file));
    listing
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
