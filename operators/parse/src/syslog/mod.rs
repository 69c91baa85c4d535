//! Syslog messages (RFC 5424, RFC 3164 and the variants real devices send) to the normalised [`Event`].
//!
//! Parsing is lenient and never fails: a message without usable structure is kept whole, with
//! a `parse_error` field naming the reason ([`parse_failure`]). Cutting a TCP byte stream into
//! messages (RFC 6587) is the syslog source's job.

mod header;
mod legacy;
mod rfc5424;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use securewatch_schemas::{Event, EventId, FieldValue, Fields, Severity, Source, SourceKind};

use securewatch_schemas::RawRecord;
use header::PriPart;

/// The field that marks an event whose message could not be parsed; its value is the reason.
pub const PARSE_ERROR_FIELD: &str = "parse_error";

/// RFC 3164 §4.3.3: a message without PRI gets PRI 13 (facility user, severity notice).
const DEFAULT_PRI: u8 = 13;

/// Trailing bytes that belong to the transport, not the message.
const TRAILER: [char; 3] = ['\n', '\r', '\0'];

/// A syslog message split into its parts.
#[derive(Debug, Default, PartialEq)]
struct SyslogMessage {
    /// RFC 5424 VERSION; `None` for legacy messages.
    version: Option<u32>,
    /// Cisco's sequence number.
    sequence: Option<u64>,
    timestamp: Option<DateTime<Utc>>,
    hostname: Option<String>,
    appname: Option<String>,
    procid: Option<String>,
    msgid: Option<String>,
    /// (`<SD-ID>.<PARAM-NAME>`, value) in message order.
    structured_data: Vec<(String, String)>,
    message: String,
}

/// Why a message was kept unparsed (the `parse_error` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Nothing but blanks.
    Empty,
    /// Starts with `<` but not with a PRI of 0–191.
    InvalidPri,
    /// Neither a PRI nor a timestamp: no syslog structure at all.
    NoHeader,
    /// Starts like RFC 5424 (`<PRI>1 `) but the header does not follow it.
    InvalidRfc5424,
}

impl Failure {
    fn reason(self) -> &'static str {
        match self {
            Failure::Empty => "empty",
            Failure::InvalidPri => "invalid_pri",
            Failure::NoHeader => "no_syslog_header",
            Failure::InvalidRfc5424 => "invalid_rfc5424_header",
        }
    }
}

/// Turns one syslog message into an event; never fails.
///
/// - RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) with structured data, NILVALUEs,
///   a UTF-8 BOM before MSG, fractional seconds and offsets.
/// - RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`) and variants: a year after the day, an
///   RFC 3339 timestamp instead of the BSD one, no PRI (files such as `/var/log/auth.log`), no
///   hostname, fractional seconds, a ` UTC` suffix, Cisco sequence numbers and `*`/`.` clock
///   markers, a colon after the timestamp.
/// - **Missing year and timezone** (RFC 3164): the time is read as UTC unless the message gives
///   an offset, and the year is the one that puts the timestamp closest to `record.received`,
///   so a `Dec 31 23:59:59` message received on January 1st gets the previous year.
/// - A valid PRI without a timestamp is an RFC 3164 message whose whole rest is MSG (§4.3.2).
///
/// Mapping: `time` is the message's timestamp, else `received`; `host` its hostname, else the
/// peer's IP; `severity` the PRI severity (no PRI: notice); `category` the facility name;
/// `fields` hold `syslog.facility`, `syslog.severity` (syslog keywords such as `err`, `info`),
/// `syslog.priority`, `syslog.version` (RFC 5424), `syslog.sequence` (Cisco), `appname`,
/// `procid`, `msgid`, and every SD-PARAM as `<SD-ID>.<PARAM-NAME>` (a repeated name becomes a
/// list). Trailing newlines, carriage returns and NULs are trimmed; `raw` keeps the text.
///
/// A message that cannot be parsed (empty, a bad PRI, no syslog header, a broken RFC 5424
/// header) is kept: `message` is the text, severity notice, `fields.parse_error` the reason.
///
/// The id hashes `syslog`, the peer, the received time in microseconds and the body: syslog
/// senders do not retransmit, and the received time is fixed at ingest, so replaying the
/// stored record gives the same id.
pub fn normalise(record: &RawRecord) -> Event {
    let decoded = String::from_utf8_lossy(&record.body);
    let text = decoded.trim_end_matches(TRAILER);
    let parsed = parse_text(text, record.received);
    into_event(record, text, parsed)
}

/// The `parse_error` reason of a syslog event kept unparsed, `None` for a parsed one.
pub fn parse_failure(event: &Event) -> Option<&str> {
    if event.source.kind != SourceKind::Syslog {
        return None;
    }
    event.fields.get(PARSE_ERROR_FIELD).and_then(FieldValue::as_str)
}

fn parse_text(text: &str, received: DateTime<Utc>) -> Result<(Option<u8>, SyslogMessage), Failure> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Failure::Empty);
    }
    let (pri, rest) = match header::split_pri(text) {
        PriPart::Present(pri, rest) => (Some(pri), rest),
        PriPart::Absent(rest) => (None, rest),
        PriPart::Invalid => return Err(Failure::InvalidPri),
    };
    if header::looks_like_rfc5424(rest) {
        let message = rfc5424::parse(rest).ok_or(Failure::InvalidRfc5424)?;
        return Ok((pri, message));
    }
    if let Some(message) = legacy::parse(rest, received) {
        return Ok((pri, message));
    }
    match pri {
        Some(_) => {
            let message =
                SyslogMessage { message: rest.trim().to_string(), ..SyslogMessage::default() };
            Ok((pri, message))
        }
        None => Err(Failure::NoHeader),
    }
}

fn into_event(
    record: &RawRecord,
    text: &str,
    parsed: Result<(Option<u8>, SyslogMessage), Failure>,
) -> Event {
    let peer = record.peer.as_deref().unwrap_or("");
    let received_micros = record.received.timestamp_micros().to_string();
    let id = EventId::from_parts([
        b"syslog".as_slice(),
        peer.as_bytes(),
        received_micros.as_bytes(),
        &record.body,
    ]);
    let mut event = Event {
        tenant: record.tenant.clone(),
        id,
        time: record.received,
        received: record.received,
        source: Source {
            kind: record.kind,
            name: record.source_name.to_string(),
            peer: record.peer.clone(),
        },
        host: record.peer.as_deref().map(peer_host),
        severity: Severity::Notice,
        category: None,
        message: text.to_string(),
        fields: Fields::new(),
        raw: Some(text.to_string()),
    };
    match parsed {
        Err(failure) => {
            event.fields.insert(PARSE_ERROR_FIELD.to_string(), failure.reason().into());
        }
        Ok((pri, message)) => apply_message(&mut event, pri.unwrap_or(DEFAULT_PRI), message),
    }
    event
}

fn apply_message(event: &mut Event, pri: u8, message: SyslogMessage) {
    let (facility, severity) = syslog_loose::decompose_pri(pri);
    event.severity = Severity::from_code(pri & 7);
    let fields = &mut event.fields;
    for (key, value) in message.structured_data {
        add_repeatable(fields, key, value);
    }
    if let Some(facility) = facility {
        event.category = Some(facility.as_str().to_string());
        fields.insert("syslog.facility".into(), facility.as_str().into());
    }
    if let Some(severity) = severity {
        fields.insert("syslog.severity".into(), severity.as_str().into());
    }
    fields.insert("syslog.priority".into(), FieldValue::Int(i64::from(pri)));
    if let Some(version) = message.version {
        fields.insert("syslog.version".into(), FieldValue::Int(i64::from(version)));
    }
    if let Some(sequence) = message.sequence.and_then(|sequence| i64::try_from(sequence).ok()) {
        fields.insert("syslog.sequence".into(), FieldValue::Int(sequence));
    }
    for (key, value) in
        [("appname", message.appname), ("procid", message.procid), ("msgid", message.msgid)]
    {
        if let Some(value) = value {
            fields.insert(key.into(), value.into());
        }
    }
    if let Some(timestamp) = message.timestamp {
        event.time = timestamp;
    }
    if message.hostname.is_some() {
        event.host = message.hostname;
    }
    event.message = message.message;
}

/// Inserts a structured-data value; a repeated PARAM-NAME (allowed by RFC 5424) makes a list.
fn add_repeatable(fields: &mut Fields, key: String, value: String) {
    match fields.get_mut(&key) {
        None => {
            fields.insert(key, FieldValue::Str(value));
        }
        Some(FieldValue::List(values)) => values.push(value),
        Some(existing) => {
            let first = existing.as_text();
            *existing = FieldValue::List(vec![first, value]);
        }
    }
}

/// The host part of a peer address (`192.0.2.1:514` → `192.0.2.1`, `[::1]:514` → `::1`); a peer
/// that is no socket address is used as it is.
fn peer_host(peer: &str) -> String {
    match peer.parse::<SocketAddr>() {
        Ok(address) => address.ip().to_string(),
        Err(_) => peer.to_string(),
    }
}
