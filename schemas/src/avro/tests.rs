//! Avro round trips, schema evolution and wire-format errors.

use super::*;
use crate::DEFAULT_TENANT;

fn sample_event() -> Event {
    let mut fields = Fields::new();
    fields.insert("data.srcip".into(), FieldValue::from("10.0.0.5"));
    fields.insert("rule.level".into(), FieldValue::Int(10));
    fields.insert("score".into(), FieldValue::Float(0.25));
    fields.insert("flag".into(), FieldValue::Bool(false));
    fields.insert("empty".into(), FieldValue::Null);
    fields.insert("rule.groups".into(), FieldValue::List(vec!["sshd".into(), "auth".into()]));
    Event {
        id: EventId::from_parts([b"sample".as_slice()]),
        time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        received: DateTime::from_timestamp_micros(1_700_000_001_000_000).unwrap(),
        source: Source {
            kind: SourceKind::Wazuh,
            name: "wazuh".into(),
            peer: Some("/var/ossec/logs/alerts/alerts.json".into()),
        },
        tenant: Tenant::default(),
        host: Some("web-01".into()),
        severity: Severity::Error,
        category: Some("sshd".into()),
        message: "sshd: brute force".into(),
        fields,
        raw: None,
    }
}

#[test]
fn round_trip_in_wire_format() {
    let codec = EventCodec::new(7);
    let event = sample_event();
    let bytes = codec.encode(&event).unwrap();
    assert_eq!(bytes[0], MAGIC_BYTE);
    assert_eq!(&bytes[1..5], &7u32.to_be_bytes());
    assert_eq!(codec.decode(&bytes).unwrap(), event);
}

#[test]
fn header_errors_are_reported() {
    let codec = EventCodec::new(7);
    let bytes = codec.encode(&sample_event()).unwrap();
    assert!(matches!(codec.decode(&bytes[..3]), Err(AvroError::TooShort(3))));
    let mut bad = bytes.clone();
    bad[0] = 9;
    assert!(matches!(codec.decode(&bad), Err(AvroError::BadMagic(9))));
    assert!(matches!(
        EventCodec::new(8).decode(&bytes),
        Err(AvroError::SchemaMismatch { expected: 8, found: 7 })
    ));
}

fn without_field(mut value: Value, name: &str) -> Value {
    if let Value::Record(fields) = &mut value {
        fields.retain(|(field, _)| field != name);
    }
    value
}

/// A record written before tenants existed (version 1 of the schema, same schema id) reads as
/// the `default` tenant, and a version-1 reader reads current records (skipping the tenant):
/// both directions of Avro evolution.
#[test]
fn schema_evolution_both_ways() {
    let codec = EventCodec::new(1);
    let mut event = sample_event();
    event.tenant = Tenant::parse("acme").unwrap();

    let mut old_bytes = vec![MAGIC_BYTE, 0, 0, 0, 1];
    write_datum(event_schema_v1(), &without_field(event_to_value(&event), "tenant"), &mut old_bytes).unwrap();
    let read_now = codec.decode(&old_bytes).unwrap();
    assert_eq!(read_now.tenant.as_str(), DEFAULT_TENANT);
    assert_eq!(read_now, Event { tenant: Tenant::default(), ..event.clone() });

    let new_bytes = codec.encode(&event).unwrap();
    assert_eq!(codec.decode(&new_bytes).unwrap().tenant.as_str(), "acme");
    let read_by_older = codec.decode_with(&new_bytes, event_schema(), Some(event_schema_v1())).unwrap();
    assert_eq!(read_by_older, Event { tenant: Tenant::default(), ..event });
}

#[test]
fn old_alerts_read_as_the_default_tenant() {
    let codec = AlertCodec::new(1);
    let mut alert = sample_alert();
    alert.tenant = Tenant::parse("globex").unwrap();
    let mut old_bytes = vec![MAGIC_BYTE, 0, 0, 0, 1];
    let old_value = without_field(alert_to_value(&alert, true), "tenant");
    write_datum(alert_schema_v1(), &old_value, &mut old_bytes).unwrap();
    assert_eq!(codec.decode(&old_bytes).unwrap(), (Alert { tenant: Tenant::default(), ..alert.clone() }, true));
    let new_bytes = codec.encode(&alert, false).unwrap();
    assert_eq!(codec.decode(&new_bytes).unwrap(), (alert, false));
}

#[test]
fn a_truncated_record_is_still_an_error() {
    let codec = EventCodec::new(1);
    let bytes = codec.encode(&sample_event()).unwrap();
    // Cut inside the tenant: neither version reads it.
    assert!(codec.decode(&bytes[..bytes.len() - 3]).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(codec.decode(&longer).is_err());
}

#[test]
fn alert_schema_parses() {
    assert_eq!(alert_schema().name().map(|name| name.name()), Some("Alert"));
}

fn sample_alert() -> Alert {
    let mut group_key = std::collections::BTreeMap::new();
    group_key.insert("User".to_string(), "alice".to_string());
    group_key.insert("ComputerName".to_string(), "dc-01".to_string());
    Alert {
        id: Alert::correlation_id("default", "brute", &group_key, 1_700_000_000_000),
        tenant: Tenant::default(),
        rule_id: "brute".into(),
        rule_title: "Many failed logins".into(),
        kind: "event_count".into(),
        level: Some(AlertLevel::High),
        tags: vec!["attack.t1110".into(), "attack.credential-access".into()],
        group_key,
        window_start_ms: 1_700_000_000_000,
        window_end_ms: 1_700_000_600_000,
        fired_at_ms: 1_700_000_120_000,
        first_seen_ms: 1_700_000_000_000,
        last_seen_ms: 1_700_000_300_123,
        event_ids: vec![EventId(3), EventId(u128::MAX)],
    }
}

#[test]
fn alert_round_trip_in_wire_format() {
    let codec = AlertCodec::new(9);
    let alert = sample_alert();
    for retracted in [false, true] {
        let bytes = codec.encode(&alert, retracted).unwrap();
        assert_eq!(&bytes[1..5], &9u32.to_be_bytes());
        assert_eq!(codec.decode(&bytes).unwrap(), (alert.clone(), retracted));
    }
    let mut plain = alert.clone();
    plain.level = None;
    plain.group_key.clear();
    plain.tags.clear();
    plain.kind = "rule".into();
    let bytes = codec.encode(&plain, false).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), (plain, false));
    assert!(matches!(AlertCodec::new(8).decode(&bytes), Err(AvroError::SchemaMismatch { .. })));
}
