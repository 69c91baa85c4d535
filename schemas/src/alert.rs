//! The alert a detection produces: a single-rule match or a correlation that started to hold.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{EventId, Tenant};

/// Sigma's rule levels, in the order of the Avro enum `Level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    /// `informational`
    Informational,
    /// `low`
    Low,
    /// `medium`
    Medium,
    /// `high`
    High,
    /// `critical`
    Critical,
}

impl AlertLevel {
    /// All levels in Avro symbol order.
    pub const ALL: [AlertLevel; 5] =
        [AlertLevel::Informational, AlertLevel::Low, AlertLevel::Medium, AlertLevel::High, AlertLevel::Critical];

    /// The Sigma spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Informational => "informational",
            AlertLevel::Low => "low",
            AlertLevel::Medium => "medium",
            AlertLevel::High => "high",
            AlertLevel::Critical => "critical",
        }
    }

    /// Inverse of [`AlertLevel::as_str`].
    pub fn parse(text: &str) -> Option<AlertLevel> {
        AlertLevel::ALL.into_iter().find(|level| level.as_str() == text)
    }
}

impl fmt::Display for AlertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert. Correlation alerts are identified by (rule, group key, window start), single-rule
/// alerts by (rule, event); the id is a hash of exactly that, so a replay produces the same ids
/// and a store that upserts by id never duplicates an alert.
///
/// Times are event times in milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alert {
    /// See [`Alert::correlation_id`] and [`Alert::rule_id_for_event`].
    pub id: EventId,
    /// The tenant of the events it is about (a correlation never joins two tenants).
    #[serde(default)]
    pub tenant: Tenant,
    /// The rule's id, else its name, else its title.
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// `rule` for a single-rule alert, else the correlation type (`event_count`, ...).
    pub kind: String,
    /// The rule's level, when it states one.
    pub level: Option<AlertLevel>,
    /// The rule's tags (ATT&CK techniques and others).
    pub tags: Vec<String>,
    /// Group-by field (or alias) to value; empty for single-rule alerts.
    pub group_key: BTreeMap<String, String>,
    /// Window start (inclusive); the event's time for single-rule alerts.
    pub window_start_ms: u64,
    /// Window end (exclusive); equal to the start for single-rule alerts.
    pub window_end_ms: u64,
    /// Event time at which the condition first held inside the window.
    pub fired_at_ms: u64,
    /// Earliest event time among the contributing events.
    pub first_seen_ms: u64,
    /// Latest event time among the contributing events.
    pub last_seen_ms: u64,
    /// The contributing events, sorted.
    pub event_ids: Vec<EventId>,
}

impl Alert {
    /// The id of a correlation alert: a hash of (tenant, rule id, group key, window start).
    /// The `default` tenant adds nothing to the hash, so single-tenant ids stay what they were
    /// before tenants existed.
    pub fn correlation_id(
        tenant: &str,
        rule_id: &str,
        group_key: &BTreeMap<String, String>,
        window_start_ms: u64,
    ) -> EventId {
        let start = window_start_ms.to_be_bytes();
        let mut parts: Vec<&[u8]> = vec![b"correlation", rule_id.as_bytes()];
        if tenant != crate::DEFAULT_TENANT {
            parts.push(b"tenant");
            parts.push(tenant.as_bytes());
        }
        for (field, value) in group_key {
            parts.push(field.as_bytes());
            parts.push(value.as_bytes());
        }
        parts.push(&start);
        EventId::from_parts(parts)
    }

    /// The id of a single-rule alert: a hash of (rule id, event id).
    pub fn rule_id_for_event(rule_id: &str, event: EventId) -> EventId {
        let event = event.to_bytes();
        EventId::from_parts([b"rule".as_slice(), rule_id.as_bytes(), &event])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_rule_group_and_window_only() {
        let mut group = BTreeMap::new();
        group.insert("User".to_string(), "alice".to_string());
        let a = Alert::correlation_id("default", "r1", &group, 1_000);
        assert_eq!(a, Alert::correlation_id("default", "r1", &group, 1_000));
        assert_ne!(a, Alert::correlation_id("default", "r1", &group, 1_001));
        assert_ne!(a, Alert::correlation_id("default", "r2", &group, 1_000));
        let mut other = group.clone();
        other.insert("User".to_string(), "bob".to_string());
        assert_ne!(a, Alert::correlation_id("default", "r1", &other, 1_000));
        // Field and value boundaries are part of the hash.
        let mut shifted = BTreeMap::new();
        shifted.insert("Usera".to_string(), "lice".to_string());
        assert_ne!(a, Alert::correlation_id("default", "r1", &shifted, 1_000));
        // Another tenant's group with the same values is another alert.
        assert_ne!(a, Alert::correlation_id("acme", "r1", &group, 1_000));
        assert_ne!(Alert::rule_id_for_event("r1", EventId(1)), Alert::rule_id_for_event("r1", EventId(2)));
    }

    #[test]
    fn level_names_round_trip() {
        for level in AlertLevel::ALL {
            assert_eq!(AlertLevel::parse(level.as_str()), Some(level));
        }
    }
}
