//! `_bulk` NDJSON: documents from events, batches bounded by bytes and count, item results.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, SecondsFormat, Utc};
use securewatch_schemas::{Event, EventId, Fields, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{IndexMode, OpenSearchConfig};
use super::OpenSearchError;

/// One event as its two NDJSON lines (`create` action + document), each ending in `\n`.
#[derive(Debug, Clone)]
pub(super) struct Encoded {
    pub id: EventId,
    pub index: String,
    pub lines: Vec<u8>,
}

/// The document stored for an event.
#[derive(Serialize)]
struct Document<'a> {
    id: String,
    time: String,
    received: String,
    source: &'a Source,
    tenant: &'a str,
    host: Option<&'a str>,
    severity: &'static str,
    severity_code: u8,
    category: Option<&'a str>,
    message: &'a str,
    fields: &'a Fields,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
}

#[derive(Serialize)]
struct Action<'a> {
    create: Target<'a>,
}

#[derive(Serialize)]
struct Target<'a> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a str,
}

/// The index (or data stream) an event goes to: daily indices by the UTC day of its time;
/// with `index_per_tenant`, the tenant's own (`<prefix>-<tenant>-YYYY.MM.DD`, or
/// `<data_stream>-<tenant>`; tenant names are valid in index names).
pub(super) fn index_for(config: &OpenSearchConfig, event: &Event) -> String {
    let day = event.time.format("%Y.%m.%d");
    match (config.index_mode, config.index_per_tenant) {
        (IndexMode::Daily, false) => format!("{}-{day}", config.index_prefix),
        (IndexMode::Daily, true) => format!("{}-{}-{day}", config.index_prefix, event.tenant),
        (IndexMode::DataStream, false) => config.data_stream.clone(),
        (IndexMode::DataStream, true) => format!("{}-{}", config.data_stream, event.tenant),
    }
}

fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Encodes an event as its `create` action and document lines.
pub(super) fn encode(config: &OpenSearchConfig, event: &Event) -> Encoded {
    let id = event.id.to_string();
    let index = index_for(config, event);
    let document = Document {
        id: id.clone(),
        time: timestamp(&event.time),
        received: timestamp(&event.received),
        source: &event.source,
        tenant: event.tenant.as_str(),
        host: event.host.as_deref(),
        severity: event.severity.name(),
        severity_code: event.severity.code(),
        category: event.category.as_deref(),
        message: &event.message,
        fields: &event.fields,
        raw: event.raw.as_deref(),
    };
    let mut lines = Vec::with_capacity(256 + event.message.len());
    // Neither can fail: plain structs of strings and numbers (non-finite floats become null).
    serde_json::to_writer(&mut lines, &Action { create: Target { index: &index, id: &id } })
        .expect("action serialises");
    lines.push(b'\n');
    serde_json::to_writer(&mut lines, &document).expect("document serialises");
    lines.push(b'\n');
    Encoded { id: event.id, index, lines }
}

/// Cuts `encoded` into consecutive ranges of at most `max_docs` documents and `max_bytes`
/// bytes; a document larger than `max_bytes` on its own gets a range of its own.
pub(super) fn batches(encoded: &[Encoded], max_bytes: usize, max_docs: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (position, item) in encoded.iter().enumerate() {
        let full = position - start == max_docs || bytes + item.lines.len() > max_bytes;
        if position > start && full {
            ranges.push(start..position);
            (start, bytes) = (position, 0);
        }
        bytes += item.lines.len();
    }
    if start < encoded.len() {
        ranges.push(start..encoded.len());
    }
    ranges
}

/// The request body of the documents at `positions`.
pub(super) fn body(encoded: &[Encoded], positions: &[usize]) -> Vec<u8> {
    let size = positions.iter().map(|&position| encoded[position].lines.len()).sum();
    let mut body = Vec::with_capacity(size);
    for &position in positions {
        body.extend_from_slice(&encoded[position].lines);
    }
    body
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ItemResult {
    /// 2xx: created.
    Stored,
    /// 409: a document with this id exists (stored by an earlier delivery).
    Duplicate,
    /// 429 or 5xx: send again.
    Retry { status: u16, reason: String },
    /// Any other status: the cluster will never take it as it is.
    Reject { status: u16, reason: String },
}

#[derive(Deserialize)]
struct Response {
    items: Vec<BTreeMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "_id")]
    id: Option<String>,
    status: u16,
    error: Option<Value>,
}

/// Reads a `_bulk` answer: one result per document, in request order. The item count and ids
/// must match the request; anything else is a protocol error (the caller retries nothing it
/// cannot attribute).
pub(super) fn parse_response(body: &[u8], expected: &[EventId]) -> Result<Vec<ItemResult>, OpenSearchError> {
    let protocol = |detail: String| OpenSearchError::Protocol { what: "bulk", detail };
    let response: Response =
        serde_json::from_slice(body).map_err(|error| protocol(format!("not a bulk response: {error}")))?;
    if response.items.len() != expected.len() {
        return Err(protocol(format!("{} items for {} documents", response.items.len(), expected.len())));
    }
    let mut results = Vec::with_capacity(expected.len());
    for (item, id) in response.items.into_iter().zip(expected) {
        let Some(item) = item.into_values().next() else {
            return Err(protocol("an item without an action".into()));
        };
        if let Some(answered) = &item.id {
            if *answered != id.to_string() {
                return Err(protocol(format!("item for `{answered}` where `{id}` was sent")));
            }
        }
        let reason = || error_reason(item.error.as_ref(), item.status);
        results.push(match item.status {
            200..=299 => ItemResult::Stored,
            409 => ItemResult::Duplicate,
            429 | 500..=599 => ItemResult::Retry { status: item.status, reason: reason() },
            status => ItemResult::Reject { status, reason: reason() },
        });
    }
    Ok(results)
}

/// `type: reason` of an item error (`caused_by` appended when present).
fn error_reason(error: Option<&Value>, status: u16) -> String {
    let Some(error) = error else { return format!("status {status}") };
    if let Some(text) = error.as_str() {
        return text.to_string();
    }
    let kind = error["type"].as_str().unwrap_or("error");
    let mut reason = format!("{kind}: {}", error["reason"].as_str().unwrap_or(""));
    if let Some(cause) = error["caused_by"]["reason"].as_str() {
        reason.push_str(&format!(" (caused by {cause})"));
    }
    reason
}

/// The error type of a reason (`mapper_parsing_exception`), for metric labels.
pub(super) fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use securewatch_schemas::{FieldValue, Severity, SourceKind};

    pub(crate) fn event(n: u64, time: &str) -> Event {
        let mut fields = Fields::new();
        fields.insert("data.srcip".into(), FieldValue::from("10.0.0.1"));
        fields.insert("count".into(), FieldValue::Int(n as i64));
        Event {
            tenant: Default::default(),
            id: EventId::from_parts([n.to_le_bytes().as_slice()]),
            time: time.parse().unwrap(),
            received: "2026-11-21T09:00:00Z".parse().unwrap(),
            source: Source { kind: SourceKind::Syslog, name: "fw".into(), peer: None },
            host: Some("fw-01".into()),
            severity: Severity::Warning,
            category: Some("firewall".into()),
            message: format!("event {n}"),
            fields,
            raw: None,
        }
    }

    #[test]
    fn encodes_a_create_action_and_the_document_on_two_lines() {
        let config = OpenSearchConfig::default();
        let event = event(1, "2026-03-04T23:59:59.5-02:00");
        let encoded = encode(&config, &event);
        let text = String::from_utf8(encoded.lines.clone()).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 2, "{text:?}");
        let mut lines = text.lines();
        let action: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        // 23:59:59.5 at UTC-2 is 01:59:59.5 UTC on the next day: the index follows UTC.
        assert_eq!(action["create"]["_index"], "securewatch-events-2026.03.05");
        assert_eq!(action["create"]["_id"], event.id.to_string());
        let document: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(document["id"], event.id.to_string());
        assert_eq!(document["time"], "2026-03-05T01:59:59.500000Z");
        assert_eq!(document["severity"], "warning");
        assert_eq!(document["severity_code"], 4);
        assert_eq!(document["source"]["kind"], "syslog");
        assert_eq!(document["fields"]["data.srcip"], "10.0.0.1");
        assert!(document.get("raw").is_none());
    }

    #[test]
    fn an_index_per_tenant_puts_the_tenant_in_the_name_and_the_document() {
        let mut event = event(1, "2026-03-05T10:00:00Z");
        event.tenant = securewatch_schemas::Tenant::parse("acme").unwrap();
        let daily = OpenSearchConfig { index_per_tenant: true, ..OpenSearchConfig::default() };
        let encoded = encode(&daily, &event);
        assert_eq!(encoded.index, "securewatch-events-acme-2026.03.05");
        let text = String::from_utf8(encoded.lines).unwrap();
        let document: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(document["tenant"], "acme");
        let stream = OpenSearchConfig { index_mode: IndexMode::DataStream, ..daily };
        assert_eq!(encode(&stream, &event).index, "securewatch-events-acme");
        assert_eq!(encode(&OpenSearchConfig::default(), &event).index, "securewatch-events-2026.03.05");
    }

    #[test]
    fn data_stream_mode_targets_the_stream() {
        let config = OpenSearchConfig {
            index_mode: IndexMode::DataStream,
            data_stream: "logs-siem".into(),
            ..OpenSearchConfig::default()
        };
        assert_eq!(encode(&config, &event(1, "2026-01-01T00:00:00Z")).index, "logs-siem");
    }

    #[test]
    fn batches_respect_bytes_and_count() {
        let sized = |sizes: &[usize]| -> Vec<Encoded> {
            sizes
                .iter()
                .map(|&size| Encoded { id: EventId(0), index: String::new(), lines: vec![b'x'; size] })
                .collect()
        };
        let items = sized(&[10; 7]);
        assert_eq!(batches(&items, 1000, 3), vec![0..3, 3..6, 6..7]);
        assert_eq!(batches(&items, 25, 100), vec![0..2, 2..4, 4..6, 6..7]);
        assert_eq!(batches(&items, 30, 100), vec![0..3, 3..6, 6..7], "exactly max_bytes fits");
        // A document above the byte limit travels alone; its neighbours are not held back.
        let items = sized(&[5, 50, 5, 5]);
        assert_eq!(batches(&items, 20, 100), vec![0..1, 1..2, 2..4]);
        assert!(batches(&[], 20, 100).is_empty());
    }

    #[test]
    fn parses_item_results_in_order() {
        let ids: Vec<EventId> = (1..=5).map(EventId).collect();
        let item = |id: &EventId, status: u16, error: Value| serde_json::json!({ "create": { "_index": "i", "_id": id.to_string(), "status": status, "error": error } });
        let body = serde_json::json!({ "took": 3, "errors": true, "items": [
            item(&ids[0], 201, Value::Null),
            item(&ids[1], 409, serde_json::json!({"type": "version_conflict_engine_exception", "reason": "exists"})),
            item(&ids[2], 429, serde_json::json!({"type": "es_rejected_execution_exception", "reason": "queue full"})),
            item(&ids[3], 400, serde_json::json!({"type": "mapper_parsing_exception", "reason": "failed to parse",
                "caused_by": {"type": "x", "reason": "bad date"}})),
            item(&ids[4], 503, serde_json::json!({"type": "unavailable_shards_exception", "reason": "primary"})),
        ]});
        let results = parse_response(body.to_string().as_bytes(), &ids).unwrap();
        assert_eq!(results[0], ItemResult::Stored);
        assert_eq!(results[1], ItemResult::Duplicate);
        assert!(matches!(&results[2], ItemResult::Retry { status: 429, reason } if reason.starts_with("es_rejected")));
        let ItemResult::Reject { status: 400, reason } = &results[3] else { panic!("{:?}", results[3]) };
        assert_eq!(reason, "mapper_parsing_exception: failed to parse (caused by bad date)");
        assert_eq!(reason_kind(reason), "mapper_parsing_exception");
        assert!(matches!(results[4], ItemResult::Retry { status: 503, .. }));
    }

    #[test]
    fn mismatched_answers_are_protocol_errors() {
        let ids = [EventId(1), EventId(2)];
        let one = serde_json::json!({"items": [{"create": {"_id": EventId(1).to_string(), "status": 201}}]});
        let error = parse_response(one.to_string().as_bytes(), &ids).unwrap_err().to_string();
        assert!(error.contains("1 items for 2 documents"), "{error}");
        let swapped = serde_json::json!({"items": [
            {"create": {"_id": EventId(2).to_string(), "status": 201}},
            {"create": {"_id": EventId(1).to_string(), "status": 201}}]});
        let error = parse_response(swapped.to_string().as_bytes(), &ids).unwrap_err().to_string();
        assert!(error.contains("where"), "{error}");
        assert!(parse_response(b"<html>", &ids).is_err());
    }
}
