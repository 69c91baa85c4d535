//! Wazuh alerts (one `alerts.json` line, an indexer document, or a JSON syslog MSG) → [`Event`].
//!
//! Wazuh's analysis daemon writes one JSON object per alert. The mapping onto the normalised
//! event is:
//!
//! - `time`: `timestamp` (`2022-05-11T12:29:19.905+0000` or RFC 3339), else `@timestamp`;
//!   when neither is a valid time (the literal `{timestamp}` placeholder counts as missing),
//!   the receive time, with `fields["parse_warning"]` saying so;
//! - `severity`: `rule.level` through [`Severity::from_wazuh_level`] (missing → informational,
//!   with a warning);
//! - `message`: `rule.description`, else `full_log`, else `wazuh alert <rule.id>`;
//! - `category`: the first element of `rule.groups`;
//! - `host`: `agent.name`, else `predecoder.hostname`, else `manager.name`;
//! - `fields`: every key of the alert, flattened under its original dotted Wazuh name
//!   (`rule.id`, `data.srcip`, `syscheck.path`, ...);
//! - `raw`: none, the fields hold everything.
//!
//! A Wazuh indexer document (the alert under `_source`) is unwrapped first.
//!
//! Event ids, in order of preference:
//! 1. the alert carries Wazuh's own `id` (`<epoch>.<offset>`, unique per manager): the id hashes
//!    `["wazuh", manager.name, id, rule.id, agent.id, timestamp]`, so the same alert read from
//!    `alerts.json`, re-read after a restart, or received through Wazuh's JSON syslog output
//!    gets the same id and collapses downstream;
//! 2. otherwise the file position of a tailed line (`["wazuh-file", identity, offset]`);
//! 3. otherwise a hash of the alert text (`["wazuh", body]`).

use chrono::{DateTime, Utc};
use securewatch_schemas::{
    flatten_json, Event, EventId, FieldValue, Fields, Severity, Source, SourceKind,
};
use serde_json::{Map, Value};

use crate::ParseError;
use securewatch_schemas::{RawRecord, RecordMeta};

/// The value Wazuh's sample generator leaves in `timestamp`; treated as a missing timestamp.
const TIMESTAMP_PLACEHOLDER: &str = "{timestamp}";

/// The Wazuh timestamp layout (`2022-05-11T12:29:19.905+0000`).
const WAZUH_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f%z";

/// The field that carries notes about values the parser had to replace.
const PARSE_WARNING: &str = "parse_warning";

/// Normalises one record of a Wazuh source: its body is one alert (an `alerts.json` line or an
/// indexer document). Errors name what is wrong; the caller dead-letters the record with them.
pub fn normalise(record: &RawRecord) -> Result<Event, ParseError> {
    normalise_alert(record, SourceKind::Wazuh, &record.body)
}

/// Normalises an alert that arrived as the MSG of a syslog message, as Wazuh's
/// `<syslog_output>` with `<format>json</format>` sends it (`<PRI>Mmm dd hh:mm:ss host ossec:
/// {alert JSON}`). `message` is the MSG part; anything before its first `{` is ignored.
///
/// The event's source keeps the record's kind (syslog) and peer. Because the alert's own `id`
/// drives the event id, an alert received both this way and from `alerts.json` is stored once.
pub fn from_syslog_message(record: &RawRecord, message: &str) -> Result<Event, ParseError> {
    let json = message.find('{').map_or(message, |start| &message[start..]);
    normalise_alert(record, record.kind, json.as_bytes())
}

/// Parses `body` as one alert and builds the event.
fn normalise_alert(record: &RawRecord, kind: SourceKind, body: &[u8]) -> Result<Event, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let document: Value =
        serde_json::from_slice(body).map_err(|error| ParseError::InvalidJson(error.to_string()))?;
    let alert = unwrap_indexer_document(document)?;
    let rule = match alert.get("rule") {
        Some(Value::Object(rule)) => rule,
        _ => return Err(ParseError::MissingField("rule")),
    };
    let rule_id =
        rule.get("id").and_then(scalar_text).ok_or(ParseError::MissingField("rule.id"))?;

    let mut warnings = Vec::new();
    let time = event_time(&alert, &mut warnings).unwrap_or(record.received);
    let severity = match rule.get("level").and_then(wazuh_level) {
        Some(level) => Severity::from_wazuh_level(level),
        None => {
            warnings.push(
                "rule.level is missing or not a number; severity set to informational".to_string(),
            );
            Severity::Informational
        }
    };
    let message = non_empty(rule.get("description"))
        .or_else(|| non_empty(alert.get("full_log")))
        .map_or_else(|| format!("wazuh alert {rule_id}"), str::to_string);
    let category = match rule.get("groups") {
        Some(Value::Array(groups)) => non_empty(groups.first()).map(str::to_string),
        _ => None,
    };
    let host = text_at(&alert, &["agent", "name"])
        .or_else(|| text_at(&alert, &["predecoder", "hostname"]))
        .or_else(|| text_at(&alert, &["manager", "name"]))
        .map(str::to_string);
    let id = event_id(&alert, &rule_id, record, body);

    let mut fields = Fields::new();
    flatten_json(String::new(), Value::Object(alert), &mut fields);
    if !warnings.is_empty() {
        fields.insert(PARSE_WARNING.to_string(), FieldValue::Str(warnings.join("; ")));
    }

    Ok(Event {
        tenant: record.tenant.clone(),
        id,
        time,
        received: record.received,
        source: Source { kind, name: record.source_name.to_string(), peer: record.peer.clone() },
        host,
        severity,
        category,
        message,
        fields,
        raw: None,
    })
}

/// The alert object: the document itself, or its `_source` when it is a Wazuh indexer document.
fn unwrap_indexer_document(document: Value) -> Result<Map<String, Value>, ParseError> {
    let Value::Object(mut object) = document else {
        return Err(ParseError::MissingField("rule"));
    };
    if !object.contains_key("rule") {
        if let Some(Value::Object(source)) = object.remove("_source") {
            return Ok(source);
        }
    }
    Ok(object)
}

/// The event time from `timestamp`, else `@timestamp`; records a warning when neither is usable.
fn event_time(alert: &Map<String, Value>, warnings: &mut Vec<String>) -> Option<DateTime<Utc>> {
    let mut invalid = None;
    for key in ["timestamp", "@timestamp"] {
        match alert.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text))
                if text.trim().is_empty() || text == TIMESTAMP_PLACEHOLDER => {}
            Some(Value::String(text)) => match parse_time(text) {
                Some(time) => return Some(time),
                None => {
                    invalid =
                        invalid.or_else(|| Some(format!("{key} {text:?} is not a valid time")))
                }
            },
            Some(other) => {
                invalid = invalid.or_else(|| Some(format!("{key} {other} is not a string")))
            }
        }
    }
    let problem = invalid.unwrap_or_else(|| "timestamp is missing".to_string());
    warnings.push(format!("{problem}; time set to the receive time"));
    None
}

/// Parses RFC 3339 or Wazuh's `+hhmm` variant of it.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, WAZUH_TIME_FORMAT))
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// `rule.level` as a number; Wazuh writes an integer, a numeric string is accepted too.
fn wazuh_level(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// The event id; see the module documentation for the order of preference.
fn event_id(alert: &Map<String, Value>, rule_id: &str, record: &RawRecord, body: &[u8]) -> EventId {
    if let Some(alert_id) = alert.get("id").and_then(scalar_text) {
        let manager = text_at(alert, &["manager", "name"]).unwrap_or_default();
        let agent = text_at(alert, &["agent", "id"]).unwrap_or_default();
        // The timestamp guards against managers or generators that reuse ids.
        let timestamp = alert.get("timestamp").and_then(scalar_text).unwrap_or_default();
        return EventId::from_parts([
            b"wazuh".as_slice(),
            manager.as_bytes(),
            alert_id.as_bytes(),
            rule_id.as_bytes(),
            agent.as_bytes(),
            timestamp.as_bytes(),
        ]);
    }
    if let RecordMeta::File { identity, offset } = &record.meta {
        let offset = offset.to_string();
        return EventId::from_parts([
            b"wazuh-file".as_slice(),
            identity.as_bytes(),
            offset.as_bytes(),
        ]);
    }
    EventId::from_parts([b"wazuh".as_slice(), body])
}

/// A non-empty string or a number, as text (ids are strings in Wazuh, numbers are tolerated).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The non-empty string at a nested path.
fn text_at<'a>(alert: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (first, rest) = path.split_first()?;
    let mut value = alert.get(*first)?;
    for key in rest {
        value = value.get(key)?;
    }
    non_empty(Some(value))
}

/// The value as a string when it is a non-blank string.
fn non_empty(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
