//! Test fixtures the SQLite and PostgreSQL tests share: a deterministic generator and an alert.

use std::collections::BTreeMap;

use securewatch_schemas::{Alert, AlertLevel, Event, EventId};

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub(crate) struct Xorshift(pub u64);

impl Xorshift {
    /// The next number below `bound`.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// A correlation alert of `rule` at `level` over `events`: grouped by one user, a five-minute
/// window from the first event, fired at the last.
pub(crate) fn alert(rule: &str, level: AlertLevel, events: &[&Event]) -> Alert {
    let first = events.iter().map(|event| event.time.timestamp_millis() as u64).min().unwrap();
    let last = events.iter().map(|event| event.time.timestamp_millis() as u64).max().unwrap();
    let group = BTreeMap::from([("TargetUserName".to_string(), "admin".to_string())]);
    let mut event_ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    event_ids.sort();
    Alert {
        tenant: Default::default(),
        id: Alert::correlation_id("default", rule, &group, first),
        rule_id: rule.into(),
        rule_title: format!("{rule} title"),
        kind: "event_count".into(),
        level: Some(level),
        tags: vec!["attack.t1110".into(), "attack.credential_access".into()],
        group_key: group,
        window_start_ms: first,
        window_end_ms: first + 300_000,
        fired_at_ms: last,
        first_seen_ms: first,
        last_seen_ms: last,
        event_ids,
    }
}
