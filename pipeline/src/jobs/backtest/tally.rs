//! What a backtest counts per rule: alerts, alerts per day, groups, and how its alerts compare
//! with the live ones.

use std::collections::BTreeMap;

use securewatch_schemas::Alert;
use serde_json::json;

/// How a backtest alert compares with the live alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Live raised it too (same id), with the same evidence.
    Same,
    /// Live raised the same alert id with other evidence events.
    EvidenceDiffers,
    /// Only the backtest raised it.
    OnlyBacktest,
}

impl Comparison {
    /// Its name in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Same => "same",
            Comparison::EvidenceDiffers => "evidence_differs",
            Comparison::OnlyBacktest => "only_backtest",
        }
    }
}

/// The UTC day of a time in ms, `YYYY-MM-DD`.
pub fn day_of(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// What the results count per rule.
#[derive(Debug, Default)]
pub struct RuleTally {
    /// Alerts.
    pub alerts: u64,
    /// Alerts counted without being kept (past the cap).
    pub not_compared: u64,
    /// Alerts per day they fired (UTC).
    pub per_day: BTreeMap<String, u64>,
    /// Alerts per group (JSON of the group key).
    pub groups: BTreeMap<String, u64>,
    /// Alerts live raised too, same evidence.
    pub same: u64,
    /// Alerts live raised with other evidence.
    pub differs: u64,
    /// Alerts only the backtest raised.
    pub only_backtest: u64,
    /// Live alerts the backtest did not raise.
    pub only_live: u64,
}

impl RuleTally {
    /// Counts an alert beyond the ones kept in full: in the volume and the groups only.
    pub fn count_uncompared(&mut self, alert: &Alert, host: Option<&str>) {
        self.aggregate(alert, host);
        self.not_compared += 1;
    }

    fn aggregate(&mut self, alert: &Alert, host: Option<&str>) {
        self.alerts += 1;
        *self.per_day.entry(day_of(alert.fired_at_ms)).or_insert(0) += 1;
        let group = if alert.group_key.is_empty() {
            // A single-rule alert: its event's host.
            json!({"host": host}).to_string()
        } else {
            serde_json::to_string(&alert.group_key).unwrap_or_default()
        };
        *self.groups.entry(group).or_insert(0) += 1;
    }

    /// Counts an alert kept in full, with how it compares with live.
    pub fn count(&mut self, alert: &Alert, comparison: Comparison, host: Option<&str>) {
        self.aggregate(alert, host);
        match comparison {
            Comparison::Same => self.same += 1,
            Comparison::EvidenceDiffers => self.differs += 1,
            Comparison::OnlyBacktest => self.only_backtest += 1,
        }
    }
}
