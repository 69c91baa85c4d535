//! Alert reads: the filters of an alert list.

use chrono::{DateTime, Utc};

/// Filters of [`SqliteStore::alerts`]; newest `last_seen` first.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    /// At most this many alerts.
    pub limit: u32,
    /// Only alerts of this rule id.
    pub rule_id: Option<String>,
    /// Only alerts of this level.
    pub level: Option<String>,
    /// Only alerts of this kind.
    pub kind: Option<String>,
    /// Alerts whose last contributing event is at or after `from`.
    pub from: Option<DateTime<Utc>>,
    /// Alerts whose last contributing event is before `to`.
    pub to: Option<DateTime<Utc>>,
}
