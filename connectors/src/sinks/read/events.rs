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
    /// Continue after this event of an earlier page (its [`EventPage::next`]).
    pub after: Option<EventCursor>,
    /// Stop once the events read hold this many bytes of message, fields and raw text (at
    /// least one event is returned); `None`: no cap.
    pub max_bytes: Option<usize>,
}

/// Where a page of events ended: the last event's time and store sequence. Its text form
/// (`time_us.seq`) is what the API hands out as an opaque cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    /// Event time of the last event, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// Its sequence in the store (ties of one time).
    pub seq: i64,
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{}", self.time_us, self.seq)
    }
}

impl std::str::FromStr for EventCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("{text:?} is not a cursor of this API");
        let (time_us, seq) = text.split_once('.').ok_or_else(invalid)?;
        Ok(EventCursor { time_us: time_us.parse().map_err(|_| invalid())?, seq: seq.parse().map_err(|_| invalid())? })
    }
}

/// A page of events, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// Set when the byte cap ended the page before `limit`: pass it as `after` for the rest.
    pub next: Option<EventCursor>,
}

/// An event as the API returns it.
pub type StoredEvent = Event;

/// A dead letter as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredDeadLetter {
    /// When the record was received (ingest time).
    pub received: DateTime<Utc>,
    /// The kind of source it came from.
    pub source_kind: String,
    /// The configured name of that source.
    pub source_name: String,
    /// The tenant its source assigns.
    pub tenant: String,
    /// Remote address (`ip:port`) for network sources; the file path for tailed files.
    pub peer: Option<String>,
    /// Why it was dead-lettered (metrics label, e.g. `invalid_json`).
    pub reason: String,
    /// Human-readable explanation.
    pub detail: String,
    /// The record as received (lossy UTF-8).
    pub body: String,
}
