//! One HEC envelope or raw line → the normalised [`Event`].

use std::net::SocketAddr;

use securewatch_schemas::{flatten_json, Event, EventId, FieldValue, Fields, Severity, Source};
use serde_json::{Map, Value};

use securewatch_schemas::{epoch_from_number, parse_epoch_seconds};
use crate::ParseError;
use securewatch_schemas::{HecMeta, RawRecord};

/// Keys of an event object that name its message, in order of preference.
const MESSAGE_KEYS: [&str; 3] = ["message", "msg", "_raw"];
/// Keys of an event object (or of the indexed `fields`) that name its severity.
const SEVERITY_KEYS: [&str; 3] = ["severity", "level", "log_level"];

/// Normalises one `/services/collector/event` envelope (`record.body`).
///
/// - `time`: the envelope's `time`, else `meta.defaults.time`, else `record.received`;
/// - `host`: the envelope's `host`, else the token default, else the peer's IP address;
/// - `message`: the event when it is a string; for an object its `message`, `msg` or `_raw`
///   string, else its compact JSON;
/// - `fields`: the event object flattened under its own key names, the envelope's indexed
///   `fields` (under `hec.fields.<key>` where the event has the same key), and the effective
///   `source`, `sourcetype`, `index` (under `hec.<name>` where the event has the same key);
/// - `category`: the sourcetype; `severity`: the event's `severity` / `level` / `log_level`,
///   else the indexed `fields.severity`, else informational.
///
/// Errors mirror [`split_events`](super::split_events)' checks, for records that reach
/// normalisation by another path than the HEC source.
pub fn normalise_event(
    record: &RawRecord,
    meta: &HecMeta,
    index: u32,
) -> Result<Event, ParseError> {
    let mut envelope = match serde_json::from_slice::<Value>(&record.body) {
        Ok(Value::Object(envelope)) => envelope,
        Ok(_) => {
            return Err(ParseError::InvalidJson("a HEC envelope must be a JSON object".into()))
        }
        Err(error) => return Err(ParseError::InvalidJson(error.to_string())),
    };
    let event = match envelope.remove("event") {
        None => return Err(ParseError::MissingField("event")),
        Some(Value::Null) => return Err(invalid("event", "it is null")),
        Some(Value::String(text)) if text.trim().is_empty() => {
            return Err(invalid("event", "it is blank"))
        }
        Some(event) => event,
    };
    let sender_time = match envelope.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => Some(epoch_from_number(number)),
        Some(Value::String(text)) => Some(parse_epoch_seconds(text)),
        Some(_) => Some(None),
    };
    let sender_time = match sender_time {
        Some(None) => return Err(invalid("time", "not epoch seconds")),
        Some(time) => time,
        None => meta.defaults.time,
    };
    let defaults = &meta.defaults;
    let host = text_key(&mut envelope, "host")?.or_else(|| defaults.host.clone());
    let source = text_key(&mut envelope, "source")?.or_else(|| defaults.source.clone());
    let sourcetype = text_key(&mut envelope, "sourcetype")?.or_else(|| defaults.sourcetype.clone());
    let hec_index = text_key(&mut envelope, "index")?.or_else(|| defaults.index.clone());
    let indexed = match envelope.remove("fields") {
        None | Some(Value::Null) => None,
        Some(Value::Object(indexed)) => Some(indexed),
        Some(_) => return Err(invalid("fields", "not an object")),
    };

    let severity = match &event {
        Value::Object(object) => severity_in(object),
        _ => None,
    }
    .or_else(|| indexed.as_ref().and_then(severity_in))
    .unwrap_or(Severity::Informational);
    let message = message_of(&event);

    let mut fields = Fields::new();
    if event.is_object() {
        flatten_json(String::new(), event, &mut fields);
    }
    if let Some(indexed) = indexed {
        let mut flat = Fields::new();
        for (key, value) in indexed {
            flatten_json(key, value, &mut flat);
        }
        for (key, value) in flat {
            insert_unless_taken(&mut fields, key, value, "hec.fields.");
        }
    }
    add_metadata_fields(&mut fields, &source, &sourcetype, &hec_index);

    Ok(Event {
        tenant: record.tenant.clone(),
        id: event_id(record, meta, index, sender_time.is_some()),
        time: sender_time.unwrap_or(record.received),
        received: record.received,
        source: source_of(record),
        host: host.or_else(|| peer_ip(record.peer.as_deref())),
        severity,
        category: sourcetype,
        message,
        fields,
        raw: None,
    })
}

/// Normalises one `/services/collector/raw` line (`record.body`): the message is the line
/// (lossy UTF-8), the metadata comes from `meta.defaults` (token defaults overridden by the
/// request's query string), the host falls back to the peer's IP address.
pub fn normalise_raw(record: &RawRecord, meta: &HecMeta, index: u32) -> Event {
    let defaults = &meta.defaults;
    let mut fields = Fields::new();
    add_metadata_fields(&mut fields, &defaults.source, &defaults.sourcetype, &defaults.index);
    Event {
        tenant: record.tenant.clone(),
        id: event_id(record, meta, index, defaults.time.is_some()),
        time: defaults.time.unwrap_or(record.received),
        received: record.received,
        source: source_of(record),
        host: defaults.host.clone().or_else(|| peer_ip(record.peer.as_deref())),
        severity: Severity::Informational,
        category: defaults.sourcetype.clone(),
        message: String::from_utf8_lossy(&record.body).into_owned(),
        fields,
        raw: None,
    }
}

/// The id rule described in the module documentation.
fn event_id(record: &RawRecord, meta: &HecMeta, index: u32, sender_timed: bool) -> EventId {
    let received_micros =
        if sender_timed { String::new() } else { record.received.timestamp_micros().to_string() };
    EventId::from_parts([
        b"hec".as_slice(),
        meta.token_name.as_bytes(),
        meta.channel.as_deref().unwrap_or_default().as_bytes(),
        &index.to_be_bytes(),
        &record.body,
        received_micros.as_bytes(),
    ])
}

fn invalid(field: &'static str, reason: &str) -> ParseError {
    ParseError::InvalidField { field, reason: reason.to_string() }
}

/// A metadata key: a non-empty string, absent / null / empty (→ `None`), or an error.
fn text_key(
    envelope: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, ParseError> {
    match envelope.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(key, "not a string")),
    }
}

fn insert_unless_taken(fields: &mut Fields, key: String, value: FieldValue, fallback_prefix: &str) {
    let key = if fields.contains_key(&key) { format!("{fallback_prefix}{key}") } else { key };
    fields.insert(key, value);
}

fn add_metadata_fields(
    fields: &mut Fields,
    source: &Option<String>,
    sourcetype: &Option<String>,
    index: &Option<String>,
) {
    for (name, value) in [("source", source), ("sourcetype", sourcetype), ("index", index)] {
        if let Some(value) = value {
            insert_unless_taken(fields, name.to_string(), FieldValue::from(value.as_str()), "hec.");
        }
    }
}

fn message_of(event: &Value) -> String {
    match event {
        Value::String(text) => text.clone(),
        Value::Object(object) => MESSAGE_KEYS
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str))
            .map_or_else(|| event.to_string(), str::to_string),
        other => other.to_string(),
    }
}

fn severity_in(object: &Map<String, Value>) -> Option<Severity> {
    SEVERITY_KEYS.iter().find_map(|key| match object.get(*key)? {
        Value::String(text) => Severity::from_name(text),
        Value::Number(number) => Severity::from_name(&number.to_string()),
        _ => None,
    })
}

fn source_of(record: &RawRecord) -> Source {
    Source { kind: record.kind, name: record.source_name.to_string(), peer: record.peer.clone() }
}

/// The IP address of an `ip:port` peer (the text as is when it is not one).
fn peer_ip(peer: Option<&str>) -> Option<String> {
    let peer = peer?;
    Some(peer.parse::<SocketAddr>().map_or_else(|_| peer.to_string(), |addr| addr.ip().to_string()))
}
