//! Fixture tests for HEC normalisation.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use securewatch_schemas::{FieldValue, Severity, SourceKind};

use super::*;
use crate::{normalise, ParseError};
use securewatch_schemas::{HecDefaults, HecMeta, RawRecord, RecordMeta};

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

fn meta(defaults: HecDefaults) -> HecMeta {
    HecMeta { token_name: "ops".into(), channel: None, defaults }
}

fn token_defaults() -> HecDefaults {
    HecDefaults {
        host: Some("default-host".into()),
        source: Some("default-source".into()),
        sourcetype: Some("default:type".into()),
        index: Some("main".into()),
        time: None,
    }
}

fn record(body: &str) -> RawRecord {
    RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Hec,
        source_name: "hec".into(),
        peer: Some("10.1.2.3:51000".into()),
        received: received(),
        body: body.as_bytes().to_vec(),
        meta: RecordMeta::None,
    }
}

fn event(body: &str, defaults: HecDefaults) -> securewatch_schemas::Event {
    normalise_event(&record(body), &meta(defaults), 0).unwrap()
}

fn text(value: &str) -> FieldValue {
    FieldValue::from(value)
}

#[test]
fn string_event_takes_token_defaults() {
    let event =
        event(r#"{"event":"sshd: Failed password for root","time":1714564800}"#, token_defaults());
    assert_eq!(event.message, "sshd: Failed password for root");
    assert_eq!(event.time, Utc.timestamp_opt(1_714_564_800, 0).unwrap());
    assert_eq!(event.received, received());
    assert_eq!(event.host.as_deref(), Some("default-host"));
    assert_eq!(event.category.as_deref(), Some("default:type"));
    assert_eq!(event.severity, Severity::Informational);
    assert_eq!(event.source.kind, SourceKind::Hec);
    assert_eq!(event.source.name, "hec");
    assert_eq!(event.source.peer.as_deref(), Some("10.1.2.3:51000"));
    assert_eq!(event.raw, None);
    assert_eq!(event.fields.len(), 3);
    assert_eq!(event.fields["source"], text("default-source"));
    assert_eq!(event.fields["sourcetype"], text("default:type"));
    assert_eq!(event.fields["index"], text("main"));
}

#[test]
fn envelope_metadata_wins_over_defaults() {
    let body = r#"{"event":"x","host":"web-1","source":"/var/log/app","sourcetype":"app:log","index":"sec"}"#;
    let event = event(body, token_defaults());
    assert_eq!(event.host.as_deref(), Some("web-1"));
    assert_eq!(event.category.as_deref(), Some("app:log"));
    assert_eq!(event.fields["source"], text("/var/log/app"));
    assert_eq!(event.fields["index"], text("sec"));
}

#[test]
fn host_falls_back_to_the_peer_ip() {
    let event = event(r#"{"event":"x","host":""}"#, HecDefaults::default());
    assert_eq!(event.host.as_deref(), Some("10.1.2.3"));
    assert_eq!(event.category, None);
    assert!(event.fields.is_empty());
    let mut v6 = record(r#"{"event":"x"}"#);
    v6.peer = Some("[::1]:8088".into());
    let event = normalise_event(&v6, &meta(HecDefaults::default()), 0).unwrap();
    assert_eq!(event.host.as_deref(), Some("::1"));
}

#[test]
fn time_forms_and_fallbacks() {
    let exact = |body: &str| event(body, HecDefaults::default()).time;
    assert_eq!(
        exact(r#"{"event":"x","time":1714564800.123}"#),
        Utc.timestamp_opt(1_714_564_800, 123_000_000).unwrap()
    );
    assert_eq!(
        exact(r#"{"event":"x","time":"1714564800.5"}"#),
        Utc.timestamp_opt(1_714_564_800, 500_000_000).unwrap()
    );
    assert_eq!(exact(r#"{"event":"x"}"#), received());
    let request_time = Utc.timestamp_opt(1_600_000_000, 0).unwrap();
    let defaults = HecDefaults { time: Some(request_time), ..HecDefaults::default() };
    assert_eq!(event(r#"{"event":"x"}"#, defaults.clone()).time, request_time);
    assert_eq!(event(r#"{"event":"x","time":1}"#, defaults).time, Utc.timestamp_opt(1, 0).unwrap());
}

#[test]
fn object_event_is_flattened_under_its_own_names() {
    let body = r#"{"event":{"message":"login failed","user":{"name":"bob"},"tags":["a","b"],"level":"error","source":"pam"},"source":"auth"}"#;
    let event = event(body, token_defaults());
    assert_eq!(event.message, "login failed");
    assert_eq!(event.severity, Severity::Error);
    assert_eq!(event.fields["user.name"], text("bob"));
    assert_eq!(event.fields["tags"], FieldValue::List(vec!["a".into(), "b".into()]));
    assert_eq!(event.fields["source"], text("pam"), "the event's own key stays");
    assert_eq!(event.fields["hec.source"], text("auth"));
    assert_eq!(event.fields["sourcetype"], text("default:type"));
}

#[test]
fn message_of_an_object_event() {
    let message = |body: &str| event(body, HecDefaults::default()).message;
    assert_eq!(message(r#"{"event":{"msg":"short","message":7}}"#), "short");
    assert_eq!(message(r#"{"event":{"_raw":"raw text"}}"#), "raw text");
    let compact = message(r#"{"event": {"b": 1, "a": "x"}}"#);
    assert!(!compact.contains(' '), "compact JSON: {compact}");
    let reparsed: serde_json::Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(reparsed, serde_json::json!({"a": "x", "b": 1}));
    assert_eq!(message(r#"{"event":42}"#), "42");
}

#[test]
fn indexed_fields_are_added_without_overwriting_the_event() {
    let body = r#"{"event":{"action":"deny","zone":"dmz"},"fields":{"zone":"edge","dc":"fra","severity":"warning","ports":["22","443"]}}"#;
    let event = event(body, HecDefaults::default());
    assert_eq!(event.fields["zone"], text("dmz"));
    assert_eq!(event.fields["hec.fields.zone"], text("edge"));
    assert_eq!(event.fields["dc"], text("fra"));
    assert_eq!(event.fields["ports"], FieldValue::List(vec!["22".into(), "443".into()]));
    assert_eq!(event.severity, Severity::Warning, "from fields.severity");
}

#[test]
fn severity_from_event_keys() {
    let severity = |body: &str| event(body, HecDefaults::default()).severity;
    assert_eq!(severity(r#"{"event":{"severity":"crit"}}"#), Severity::Critical);
    assert_eq!(severity(r#"{"event":{"log_level":"DEBUG"}}"#), Severity::Debug);
    assert_eq!(severity(r#"{"event":{"level":3}}"#), Severity::Error);
    assert_eq!(severity(r#"{"event":{"level":"verbose"}}"#), Severity::Informational);
    assert_eq!(
        severity(r#"{"event":{"severity":"unknown"},"fields":{"severity":"alert"}}"#),
        Severity::Alert
    );
}

#[test]
fn invalid_envelopes_are_errors() {
    let error =
        |body: &str| normalise_event(&record(body), &meta(HecDefaults::default()), 0).unwrap_err();
    assert!(matches!(error("{\"event\":"), ParseError::InvalidJson(_)));
    assert!(matches!(error("[1]"), ParseError::InvalidJson(_)));
    assert_eq!(error(r#"{"time":1}"#), ParseError::MissingField("event"));
    assert!(matches!(error(r#"{"event":" "}"#), ParseError::InvalidField { field: "event", .. }));
    assert!(matches!(error(r#"{"event":null}"#), ParseError::InvalidField { field: "event", .. }));
    assert!(matches!(
        error(r#"{"event":"x","time":"soon"}"#),
        ParseError::InvalidField { field: "time", .. }
    ));
    assert!(matches!(
        error(r#"{"event":"x","time":[1]}"#),
        ParseError::InvalidField { field: "time", .. }
    ));
    assert!(matches!(
        error(r#"{"event":"x","fields":[1]}"#),
        ParseError::InvalidField { field: "fields", .. }
    ));
    assert!(matches!(
        error(r#"{"event":"x","index":{}}"#),
        ParseError::InvalidField { field: "index", .. }
    ));
}

#[test]
fn ids_collapse_retries_that_carry_their_time() {
    let body = r#"{"event":"x","time":1714564800}"#;
    let first = record(body);
    let mut retry = record(body);
    retry.received = received() + chrono::Duration::seconds(30);
    let hec_meta = meta(HecDefaults::default());
    let id = |record: &RawRecord, meta: &HecMeta, index| {
        normalise_event(record, meta, index).unwrap().id
    };
    assert_eq!(id(&first, &hec_meta, 4), id(&retry, &hec_meta, 4));
    assert_ne!(
        id(&first, &hec_meta, 4),
        id(&first, &hec_meta, 5),
        "position in the request counts"
    );
    let channelled = HecMeta { channel: Some("c0ffee".into()), ..hec_meta.clone() };
    assert_ne!(id(&first, &hec_meta, 4), id(&first, &channelled, 4), "channel counts");
    let other_token = HecMeta { token_name: "other".into(), ..hec_meta.clone() };
    assert_ne!(id(&first, &hec_meta, 4), id(&first, &other_token, 4), "token counts");
}

#[test]
fn ids_never_merge_timeless_events_received_apart() {
    let body = r#"{"event":"x"}"#;
    let hec_meta = meta(HecDefaults::default());
    let first = normalise_event(&record(body), &hec_meta, 0).unwrap();
    let mut later = record(body);
    later.received = received() + chrono::Duration::microseconds(1);
    let second = normalise_event(&later, &hec_meta, 0).unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(first.id, normalise_event(&record(body), &hec_meta, 0).unwrap().id);
}

#[test]
fn raw_line_uses_request_metadata() {
    let request_time = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let defaults = HecDefaults { time: Some(request_time), ..token_defaults() };
    let mut line = record("");
    line.body = b"caf\xe9 opened".to_vec();
    let event = normalise_raw(&line, &meta(defaults.clone()), 2);
    assert_eq!(event.message, "caf\u{fffd} opened");
    assert_eq!(event.time, request_time);
    assert_eq!(event.host.as_deref(), Some("default-host"));
    assert_eq!(event.category.as_deref(), Some("default:type"));
    assert_eq!(event.fields["index"], text("main"));
    assert_eq!(event.severity, Severity::Informational);
    let mut retry = line.clone();
    retry.received = received() + chrono::Duration::seconds(5);
    assert_eq!(normalise_raw(&retry, &meta(defaults), 2).id, event.id, "sender time → stable id");

    let timeless = normalise_raw(&line, &meta(HecDefaults::default()), 2);
    assert_eq!(timeless.time, received());
    assert_eq!(timeless.host.as_deref(), Some("10.1.2.3"));
    assert_ne!(normalise_raw(&retry, &meta(HecDefaults::default()), 2).id, timeless.id);
}

#[test]
fn dispatch_reaches_the_hec_parsers() {
    let hec_meta = Arc::new(meta(token_defaults()));
    let mut envelope = record(r#"{"event":"via dispatch"}"#);
    envelope.meta = RecordMeta::HecEvent { meta: Arc::clone(&hec_meta), index: 0 };
    assert_eq!(normalise(&envelope).unwrap().message, "via dispatch");
    let mut line = record("raw via dispatch");
    line.meta = RecordMeta::HecRaw { meta: hec_meta, index: 0 };
    assert_eq!(normalise(&line).unwrap().message, "raw via dispatch");
}
