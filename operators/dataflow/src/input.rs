//! The rollup input record and its derivation from a normalised `Event`.

use securewatch_schemas::{Event, Severity, SourceKind, Tenant};
use serde::{Deserialize, Serialize};

/// What the rollups need to know about one event; the caller derives it with [`rollup_input`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RollupInput {
    /// Whose event it is: every rollup row is per tenant.
    pub tenant: Tenant,
    /// Event time in milliseconds since the Unix epoch (times before 1970 are clamped to 0).
    pub event_time_ms: u64,
    /// The kind of connector the event came through.
    pub kind: SourceKind,
    /// The host the event is about, when known.
    pub host: Option<String>,
    /// Severity on the syslog scale.
    pub severity: Severity,
    /// The coarse category, when known.
    pub category: Option<String>,
}

/// Derives the rollup record of an event (pure; no allocation beyond the two strings: the
/// tenant is a shared reference).
pub fn rollup_input(event: &Event) -> RollupInput {
    RollupInput {
        tenant: event.tenant.clone(),
        event_time_ms: u64::try_from(event.time.timestamp_millis()).unwrap_or(0),
        kind: event.source.kind,
        host: event.host.clone(),
        severity: event.severity,
        category: event.category.clone(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use securewatch_schemas::{EventId, Fields, Source};

    use super::*;

    fn event(time_ms: i64) -> Event {
        Event {
            tenant: Default::default(),
            id: EventId(7),
            time: Utc.timestamp_millis_opt(time_ms).unwrap(),
            received: Utc.timestamp_millis_opt(1_700_000_999_000).unwrap(),
            source: Source {
                kind: SourceKind::Wazuh,
                name: "wazuh-main".into(),
                peer: None,
            },
            host: Some("db-1".into()),
            severity: Severity::Error,
            category: Some("authentication_failed".into()),
            message: "login failed".into(),
            fields: Fields::new(),
            raw: None,
        }
    }

    #[test]
    fn takes_event_time_not_receive_time() {
        let input = rollup_input(&event(1_700_000_123_456));
        assert_eq!(
            input,
            RollupInput {
                tenant: Tenant::default(),
                event_time_ms: 1_700_000_123_456,
                kind: SourceKind::Wazuh,
                host: Some("db-1".into()),
                severity: Severity::Error,
                category: Some("authentication_failed".into()),
            }
        );
    }

    #[test]
    fn clamps_times_before_1970() {
        assert_eq!(rollup_input(&event(-5_000)).event_time_ms, 0);
    }
}
