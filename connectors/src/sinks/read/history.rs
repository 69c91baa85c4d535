//! History reads for backtests: a tenant's stored events of a time range in event-time order,
//! in chunks, each continuing after the last (keyset paging on the store's `(time, id)` key).

use chrono::{DateTime, Utc};
use securewatch_schemas::EventId;

/// Where a chunk of history ended: its last event's time (µs) and id; the next chunk starts
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    /// Event time of the last event, in microseconds since the Unix epoch.
    pub time_us: i64,
    /// Its id (ties of one time are ordered by id).
    pub id: EventId,
}

/// One chunk of a history read.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Event time lower bound (inclusive).
    pub from: DateTime<Utc>,
    /// Event time upper bound (exclusive).
    pub to: DateTime<Utc>,
    /// Continue after this event of the previous chunk.
    pub after: Option<HistoryCursor>,
    /// Most events in the chunk.
    pub limit: u32,
}

impl HistoryQuery {
    /// The `(time_us, id)` the chunk continues after, or the range start (nothing is before it).
    pub(crate) fn after_key(&self) -> (i64, Vec<u8>) {
        match self.after {
            Some(cursor) => (cursor.time_us, cursor.id.to_bytes().to_vec()),
            None => (self.from.timestamp_micros() - 1, vec![0xff; 16]),
        }
    }
}
