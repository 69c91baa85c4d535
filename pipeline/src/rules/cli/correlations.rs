//! `rules test`: the correlation rules of the loaded set run over the file's matches by the engine's operators, and their report (alerts, and matches skipped for a missing field).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::DateTime;
use securewatch_detection::CompiledCorrelations;
use securewatch_dataflow::BatchAlert;
use securewatch_schemas::EventId;
use serde_json::{json, Value};

/// One correlation rule's result.
pub struct CorrelationResult {
    /// Its id, else name, else title (the `rule_id` of its alerts).
    pub id: String,
    /// Its name, for `--expect` lookups.
    pub name: Option<String>,
    pub title: String,
    pub kind: &'static str,
    pub timespan_ms: u64,
    /// False for a correlation only referenced by others without `generate: true`: its alerts
    /// feed them and are not stored.
    pub stored: bool,
    pub alerts: Vec<AlertResult>,
    /// Matches of its rules it skipped because they lack a group-by (or value) field.
    pub skipped: usize,
}

/// One alert of a correlation rule.
pub struct AlertResult {
    pub group: BTreeMap<String, String>,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    /// Line numbers of the contributing events (through inner alerts for chained correlations).
    pub lines: Vec<usize>,
}

/// Groups `alerts` by correlation rule, every compiled correlation listed (in load order), and
/// resolves each alert's contributing events to line numbers with `lines_of`.
pub fn results(
    correlations: &Arc<CompiledCorrelations>,
    alerts: Vec<BatchAlert>,
    skipped: &BTreeMap<String, usize>,
    lines_of: &HashMap<EventId, usize>,
) -> Vec<CorrelationResult> {
    let depth: HashMap<&str, usize> =
        correlations.correlations.iter().map(|c| (c.rule_id.as_str(), c.depth)).collect();
    let mut alerts: Vec<BatchAlert> = alerts;
    // Inner correlations first, so an outer alert finds the lines of the inner alerts it holds.
    alerts.sort_by_key(|a| depth.get(a.alert.rule_id.as_str()).copied().unwrap_or(0));
    let mut alert_lines: HashMap<EventId, BTreeSet<usize>> = HashMap::new();
    let mut by_rule: HashMap<String, Vec<AlertResult>> = HashMap::new();
    for BatchAlert { alert, .. } in alerts {
        let mut lines = BTreeSet::new();
        for id in &alert.event_ids {
            if let Some(line) = lines_of.get(id) {
                lines.insert(*line);
            } else if let Some(inner) = alert_lines.get(id) {
                lines.extend(inner.iter().copied());
            }
        }
        alert_lines.insert(alert.id, lines.clone());
        by_rule.entry(alert.rule_id.clone()).or_default().push(AlertResult {
            group: alert.group_key,
            window_start_ms: alert.window_start_ms,
            window_end_ms: alert.window_end_ms,
            lines: lines.into_iter().collect(),
        });
    }
    correlations
        .correlations
        .iter()
        .map(|correlation| {
            let mut alerts = by_rule.remove(&correlation.rule_id).unwrap_or_default();
            alerts.sort_by(|a, b| (a.window_start_ms, &a.group).cmp(&(b.window_start_ms, &b.group)));
            CorrelationResult {
                id: correlation.rule_id.clone(),
                name: correlation.name.clone(),
                title: correlation.title.clone(),
                kind: correlation.kind.as_str(),
                timespan_ms: correlation.timespan_ms,
                stored: correlations.emits_correlation(correlation.index),
                alerts,
                skipped: skipped.get(&correlation.rule_id).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The number of alerts of the correlation named `reference` (id or name), if there is one.
pub fn alert_count(results: &[CorrelationResult], reference: &str) -> Option<usize> {
    results
        .iter()
        .find(|result| result.id == reference || result.name.as_deref() == Some(reference))
        .map(|result| result.alerts.len())
}

fn time_text(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(|| ms.to_string(), |time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn group_text(group: &BTreeMap<String, String>) -> String {
    if group.is_empty() {
        return "(no group-by)".to_string();
    }
    group.iter().map(|(field, value)| format!("{field}={value}")).collect::<Vec<_>>().join(", ")
}

fn join_lines(lines: &[usize]) -> String {
    lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// The text report: one line per correlation rule, one indented line per alert.
pub fn print_text(results: &[CorrelationResult]) {
    for result in results {
        println!(
            "correlation {}: {} ({}, timespan {}s): {} alerts{}",
            result.id,
            result.title,
            result.kind,
            result.timespan_ms / 1_000,
            result.alerts.len(),
            if result.stored { "" } else { " (feeds other correlations; not stored without generate: true)" }
        );
        if result.skipped > 0 {
            println!(
                "  {} matches skipped: they lack a group-by field (or the value field) of this correlation",
                result.skipped
            );
        }
        for alert in &result.alerts {
            println!(
                "  alert group {} window [{}, {}): lines {}",
                group_text(&alert.group),
                time_text(alert.window_start_ms),
                time_text(alert.window_end_ms),
                join_lines(&alert.lines)
            );
        }
    }
}

/// The `correlations` array of the JSON report.
pub fn json(results: &[CorrelationResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|result| {
                json!({
                    "id": result.id,
                    "title": result.title,
                    "type": result.kind,
                    "timespan_ms": result.timespan_ms,
                    "stored": result.stored,
                    "alert_count": result.alerts.len(),
                    "skipped_missing_field": result.skipped,
                    "alerts": result.alerts.iter().map(|alert| json!({
                        "group": alert.group,
                        "window_start": time_text(alert.window_start_ms),
                        "window_end": time_text(alert.window_end_ms),
                        "lines": alert.lines,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
