//! Event rows for PostgreSQL: the checks that keep a row PostgreSQL would refuse out of a batch,
//! and the binary COPY encoding of the events table's columns.


use chrono::{DateTime, Utc};
use securewatch_schemas::Event;

use crate::sinks::DeadLetter;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
const POSTGRES_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
/// The earliest `timestamptz` PostgreSQL stores: 4714-11-24 BC 00:00 UTC (Julian day 0), in Unix microseconds.
const POSTGRES_MIN_TIME_US: i64 = -210_866_803_200_000_000;
/// Columns of the events table, in table order.
pub(super) const EVENT_COLUMNS: usize = 13;
/// The events table's columns, in the order of the binary COPY rows and the staging table.
pub(super) const EVENT_COLUMN_LIST: &str =
    "time, id, received, source_kind, source_name, peer, host, severity, category, message, fields, raw, tenant";

/// Creates the connection's staging table: the events table's columns without its constraints
/// (PostgreSQL checks those when rows move into `events`), emptied at each commit.
pub(super) const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS events_staging (\
     time timestamptz NOT NULL, id bytea NOT NULL, received timestamptz NOT NULL, source_kind text NOT NULL, \
     source_name text NOT NULL, peer text, host text, severity smallint NOT NULL, category text, \
     message text NOT NULL, fields jsonb NOT NULL, raw text, tenant text NOT NULL) ON COMMIT DELETE ROWS";

/// Metrics label of events PostgreSQL refused (or would refuse).
pub const REJECTED_REASON: &str = "postgres_rejected";

/// An event with its `fields` already encoded as JSON.
pub(super) struct EventRow<'a> {
    pub event: &'a Event,
    pub fields: String,
}

/// Why PostgreSQL would refuse `event` (`Err`), or its row.
pub(super) fn check_event(event: &Event) -> Result<EventRow<'_>, String> {
    for (name, time) in [("time", event.time), ("received", event.received)] {
        let micros = time.timestamp_micros();
        // PostgreSQL's upper bound (294276 AD) is past chrono's range: only the lower one can be hit.
        if micros < POSTGRES_MIN_TIME_US {
            return Err(format!("{name} {time} is outside PostgreSQL's timestamp range"));
        }
    }
    let texts = [
        ("source.kind", Some(event.source.kind.as_str())),
        ("source.name", Some(event.source.name.as_str())),
        ("source.peer", event.source.peer.as_deref()),
        ("host", event.host.as_deref()),
        ("category", event.category.as_deref()),
        ("message", Some(event.message.as_str())),
        ("raw", event.raw.as_deref()),
    ];
    for (name, text) in texts {
        if text.is_some_and(|text| text.contains('\0')) {
            return Err(format!("{name} contains a NUL byte, which PostgreSQL text cannot hold"));
        }
    }
    let fields = serde_json::to_string(&event.fields).map_err(|error| format!("fields are not JSON: {error}"))?;
    if has_nul_escape(&fields) {
        return Err("fields contain a NUL character (\\u0000), which jsonb cannot hold".to_string());
    }
    Ok(EventRow { event, fields })
}

/// Whether JSON text holds the escape `\u0000` (an escaped backslash followed by `u0000` does not count).
fn has_nul_escape(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(found) = json[from..].find("u0000") {
        let at = from + found;
        let backslashes = bytes[..at].iter().rev().take_while(|byte| **byte == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// A dead letter for an event PostgreSQL refused: the event as JSON, with the reason.
pub(super) fn rejected_event(event: &Event, detail: String) -> DeadLetter {
    DeadLetter::for_event(event, REJECTED_REASON, detail)
}

/// Text PostgreSQL accepts: NUL bytes replaced (dead letters keep the exact bytes in `body`).
pub(super) fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// `time` clamped into PostgreSQL's range.
pub(super) fn storable_time(time: DateTime<Utc>) -> DateTime<Utc> {
    let micros = time.timestamp_micros().max(POSTGRES_MIN_TIME_US);
    DateTime::from_timestamp_micros(micros).unwrap_or(time)
}

/// The binary COPY header (signature, flags, header extension length).
pub(super) fn copy_header(buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buffer.extend_from_slice(&0i32.to_be_bytes());
    buffer.extend_from_slice(&0i32.to_be_bytes());
}

/// The binary COPY trailer.
pub(super) fn copy_trailer(buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(&(-1i16).to_be_bytes());
}

/// Appends one event as a binary COPY tuple in events-table column order.
pub(super) fn copy_row(buffer: &mut Vec<u8>, row: &EventRow<'_>) {
    fn field(buffer: &mut Vec<u8>, bytes: &[u8]) {
        // Lengths fit: a PostgreSQL field is at most 1 GiB, which the server enforces.
        buffer.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buffer.extend_from_slice(bytes);
    }
    fn optional(buffer: &mut Vec<u8>, text: Option<&str>) {
        match text {
            Some(text) => field(buffer, text.as_bytes()),
            None => buffer.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    fn time(buffer: &mut Vec<u8>, time: DateTime<Utc>) {
        field(buffer, &(time.timestamp_micros() - POSTGRES_EPOCH_OFFSET_US).to_be_bytes());
    }
    let event = row.event;
    buffer.extend_from_slice(&(EVENT_COLUMNS as i16).to_be_bytes());
    time(buffer, event.time);
    field(buffer, &event.id.to_bytes());
    time(buffer, event.received);
    field(buffer, event.source.kind.as_str().as_bytes());
    field(buffer, event.source.name.as_bytes());
    optional(buffer, event.source.peer.as_deref());
    optional(buffer, event.host.as_deref());
    field(buffer, &i16::from(event.severity.code()).to_be_bytes());
    optional(buffer, event.category.as_deref());
    field(buffer, event.message.as_bytes());
    // jsonb's binary form: a version byte (1), then the JSON text.
    buffer.extend_from_slice(&(row.fields.len() as i32 + 1).to_be_bytes());
    buffer.push(1);
    buffer.extend_from_slice(row.fields.as_bytes());
    optional(buffer, event.raw.as_deref());
    field(buffer, event.tenant.as_bytes());
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_only_when_not_escaped_themselves() {
        assert!(has_nul_escape(r#"{"a":"x\u0000y"}"#));
        assert!(!has_nul_escape(r#"{"a":"x\\u0000y"}"#));
        assert!(has_nul_escape(r#"{"a":"x\\\u0000y"}"#));
        assert!(!has_nul_escape(r#"{"u0000":"plain"}"#));
    }

    #[test]
    fn time_bounds_match_postgres() {
        // 4714-11-24 BC is year -4713 in chrono's proleptic Gregorian calendar (there is a year 0);
        // the server refuses a second earlier.
        let min = chrono::NaiveDate::from_ymd_opt(-4713, 11, 24).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(min.timestamp_micros(), POSTGRES_MIN_TIME_US);
        let end = chrono::NaiveDate::from_ymd_opt(294_277, 1, 1);
        // chrono stops before year 294277; PostgreSQL's upper bound is out of its reach.
        assert!(end.is_none());
    }
}
