//! A backtest's results: a summary, one row per rule (matches, alerts, alerts per day, top
//! groups, comparison with live), one per alert with its evidence events, and one per live
//! alert the backtest did not raise.

use std::collections::{BTreeMap, BTreeSet};

use securewatch_connectors::sinks::read::{AlertQuery, ReadError};
use securewatch_schemas::{Alert, EventId};
use serde_json::{json, Value as Json};

use super::replay::{Found, Plan};
use super::tally::{Comparison, RuleTally};
use crate::api::AlertBody;

/// Live alerts read per rule for the comparison.
pub const LIVE_ALERTS_PER_RULE: u32 = 100_000;
/// Evidence events listed per alert (all event ids are listed).
pub const EVIDENCE_PER_ALERT: usize = 100;
/// Groups listed per rule.
pub const TOP_GROUPS: usize = 10;

/// The results of a backtest, ready to be written as rows.
pub struct Report {
    summary: Json,
    rules: Vec<(String, Json)>,
    alerts: Vec<(String, Json)>,
    only_live: Vec<(String, Json)>,
}

fn sorted_ids(alert: &Alert) -> BTreeSet<EventId> {
    alert.event_ids.iter().copied().collect()
}


impl Report {
    /// Builds the report of `found`, reading the live alerts of the emitting rules over the
    /// same range and tenants.
    pub async fn build(plan: &Plan, found: Found) -> Result<Report, ReadError> {
        let mut live: BTreeMap<EventId, Alert> = BTreeMap::new();
        for entry in plan.rules.catalogue.iter().filter(|entry| entry.emits) {
            let query = AlertQuery {
                limit: LIVE_ALERTS_PER_RULE,
                rule_id: Some(entry.rule_id.clone()),
                from: Some(plan.from),
                to: Some(plan.to),
                ..AlertQuery::default()
            };
            for alert in plan.reader.alerts(&query, &plan.scope).await? {
                live.insert(alert.id, alert);
            }
        }
        Ok(Report::compare(plan, found, live))
    }

    /// The report of `found` against the `live` alerts.
    pub fn compare(plan: &Plan, mut found: Found, mut live: BTreeMap<EventId, Alert>) -> Report {
        let mut alerts = std::mem::take(&mut found.alerts);
        alerts.sort_by(|a, b| (&a.rule_id, a.window_start_ms, a.id).cmp(&(&b.rule_id, b.window_start_ms, b.id)));
        let days = ((plan.to - plan.from).num_milliseconds() as f64 / 86_400_000.0).max(1.0 / 24.0);
        let not_compared: u64 = found.overflow.values().map(|tally| tally.alerts).sum();
        let mut per_rule: BTreeMap<String, RuleTally> = std::mem::take(&mut found.overflow);
        let mut rows = Vec::with_capacity(alerts.len());
        let mut totals = RuleTally::default();
        for alert in &alerts {
            let comparison = match live.remove(&alert.id) {
                Some(stored) if sorted_ids(&stored) == sorted_ids(alert) => Comparison::Same,
                Some(_) => Comparison::EvidenceDiffers,
                None => Comparison::OnlyBacktest,
            };
            let tally = per_rule.entry(alert.rule_id.clone()).or_default();
            let host = alert.event_ids.first().and_then(|id| found.evidence.get(id)).and_then(|event| event.host.as_deref());
            tally.count(alert, comparison, host);
            totals.count(alert, comparison, host);
            let evidence: Vec<_> =
                alert.event_ids.iter().filter_map(|id| found.evidence.get(id)).take(EVIDENCE_PER_ALERT).cloned().collect();
            let truncated = evidence.len() < alert.event_ids.len();
            let mut detail = serde_json::to_value(AlertBody::new(alert.clone(), Some(evidence))).unwrap_or_default();
            detail["comparison"] = json!(comparison.as_str());
            detail["evidence_truncated"] = json!(truncated);
            rows.push((alert.rule_id.clone(), detail));
        }
        let mut only_live = Vec::with_capacity(live.len());
        for alert in live.into_values() {
            per_rule.entry(alert.rule_id.clone()).or_default().only_live += 1;
            totals.only_live += 1;
            only_live.push((alert.rule_id.clone(), serde_json::to_value(AlertBody::new(alert, None)).unwrap_or_default()));
        }
        let rules = plan
            .rules
            .catalogue
            .iter()
            .map(|entry| {
                let tally = per_rule.remove(entry.rule_id.as_str()).unwrap_or_default();
                let matches = (entry.kind == "rule").then(|| found.matches.get(&entry.rule_id).copied().unwrap_or(0));
                let mut top: Vec<(String, u64)> = tally.groups.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let top_groups: Vec<Json> = top
                    .into_iter()
                    .take(TOP_GROUPS)
                    .map(|(group, alerts)| json!({"group": serde_json::from_str::<Json>(&group).unwrap_or_default(), "alerts": alerts}))
                    .collect();
                let detail = json!({
                    "rule_id": entry.rule_id, "title": entry.title, "kind": entry.kind, "emits": entry.emits,
                    "matches": matches, "alerts": tally.alerts,
                    "alerts_per_day": tally.per_day, "alerts_per_day_average": tally.alerts as f64 / days,
                    "top_groups": top_groups,
                    "same": tally.same, "evidence_differs": tally.differs, "only_backtest": tally.only_backtest, "only_live": tally.only_live,
                    "not_compared": tally.not_compared,
                });
                (entry.rule_id.clone(), detail)
            })
            .collect();
        let progress = &found.progress;
        let summary = json!({
            "from": plan.from, "to": plan.to, "store": progress.store, "cursor": progress.cursor,
            "events_read": progress.events_read, "matches": progress.matches, "alerts": alerts.len() as u64 + not_compared,
            "not_compared": not_compared,
            "same": totals.same, "evidence_differs": totals.differs, "only_backtest": totals.only_backtest, "only_live": totals.only_live,
            "cancelled": found.cancelled,
            "evidence_capped": found.evidence.len() >= super::replay::MAX_EVIDENCE_EVENTS,
        });
        Report { summary, rules, alerts: rows, only_live }
    }

    /// The result rows, in the job's [`super::COLUMNS`]: the summary, the rules, the alerts,
    /// the live alerts only live raised.
    pub fn rows(self) -> impl Iterator<Item = Vec<Json>> {
        let summary = std::iter::once(vec![json!("summary"), Json::Null, self.summary]);
        let tagged = |record: &'static str, rows: Vec<(String, Json)>| {
            rows.into_iter().map(move |(rule, detail)| vec![json!(record), json!(rule), detail])
        };
        summary.chain(tagged("rule", self.rules)).chain(tagged("alert", self.alerts)).chain(tagged("only_live", self.only_live))
    }
}
