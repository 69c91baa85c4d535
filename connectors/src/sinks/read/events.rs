//! Event and dead-letter reads: the filters a caller gives and the rows it gets back.

use chrono::{DateTime, Utc};
use securewatch_schemas::Event;
use serde::Serialize;

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Most events returned.
    pub limit: u32,
    /// Source kind (`hec`, `syslog`, `wazuh`) or configured source name.
    pub source: Option<String>,
    /// Exact host.
    pub host: Option<String>,
    /// Case-insensitive substring of the message.
    pub q: Option<String>,
    /// Event time lower bound (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Event time upper bound (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// An event as the API returns it.
pub type StoredEvent = Event;

/// A dead letter as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredDeadLetter {
    pub received: DateTime<Utc>,
    pub source_kind: String,
    pub source_name: String,
    pub peer: Option<String>,
    pub reason: String,
    pub detail: String,
    /// The record as received (lossy UTF-8).
    pub body: String,
}
