//! Alert reads: the filters of an alert list.

use chrono::{DateTime, Utc};

/// Filters of [`SqliteStore::alerts`]; newest `last_seen` first.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub limit: u32,
    pub rule_id: Option<String>,
    pub level: Option<String>,
    pub kind: Option<String>,
    /// Alerts whose last contributing event is at or after `from`.
    pub from: Option<DateTime<Utc>>,
    /// Alerts whose last contributing event is before `to`.
    pub to: Option<DateTime<Utc>>,
}
