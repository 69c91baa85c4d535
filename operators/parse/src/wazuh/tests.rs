//! Tests of the Wazuh alert parser against fixture alerts written for this project.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use securewatch_schemas::{EventId, FieldValue, Severity, SourceKind};

use super::{from_syslog_message, normalise};
use crate::ParseError;
use securewatch_schemas::{RawRecord, RecordMeta};

const SSHD: &str = include_str!("../../tests/fixtures/wazuh-sshd-brute-force.json");
const WINDOWS: &str = include_str!("../../tests/fixtures/wazuh-windows-eventchannel.json");
const SYSCHECK: &str = include_str!("../../tests/fixtures/wazuh-syscheck.json");
const INDEXER: &str = include_str!("../../tests/fixtures/wazuh-indexer-document.json");

fn record(body: &str) -> RawRecord {
    RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Wazuh,
        source_name: Arc::from("wazuh-main"),
        peer: Some("/var/ossec/logs/alerts/alerts.json".to_string()),
        received: Utc.with_ymd_and_hms(2024, 3, 2, 12, 0, 0).single().expect("valid date"),
        body: body.trim_end_matches('\n').as_bytes().to_vec(),
        meta: RecordMeta::File { identity: "2049:1234".to_string(), offset: 4096 },
    }
}

fn text(value: &str) -> FieldValue {
    FieldValue::from(value)
}

fn list(values: &[&str]) -> FieldValue {
    FieldValue::List(values.iter().map(|value| value.to_string()).collect())
}

#[test]
fn sshd_brute_force_alert_maps_every_part() {
    let event = normalise(&record(SSHD)).expect("valid alert");
    let expected_time = Utc.with_ymd_and_hms(2024, 3, 2, 7, 15, 42).single().expect("valid date")
        + chrono::Duration::milliseconds(118);
    assert_eq!(event.time, expected_time, "the +0100 offset is applied");
    assert_eq!(event.received, record(SSHD).received);
    assert_eq!(event.severity, Severity::Error, "level 10");
    assert_eq!(
        event.message,
        "sshd: brute force trying to get access to the system. Authentication failed."
    );
    assert_eq!(event.category.as_deref(), Some("syslog"));
    assert_eq!(event.host.as_deref(), Some("bastion-eu-1"));
    assert_eq!(event.source.kind, SourceKind::Wazuh);
    assert_eq!(event.source.name, "wazuh-main");
    assert_eq!(event.source.peer.as_deref(), Some("/var/ossec/logs/alerts/alerts.json"));
    assert_eq!(event.raw, None);

    let fields = &event.fields;
    assert_eq!(fields["rule.id"], text("5763"));
    assert_eq!(fields["rule.level"], FieldValue::Int(10));
    assert_eq!(fields["rule.frequency"], FieldValue::Int(8));
    assert_eq!(fields["rule.mail"], FieldValue::Bool(false));
    assert_eq!(fields["rule.groups"], list(&["syslog", "sshd", "authentication_failures"]));
    assert_eq!(fields["rule.mitre.id"], list(&["T1110"]));
    assert_eq!(fields["rule.mitre.tactic"], list(&["Credential Access"]));
    assert_eq!(fields["agent.id"], text("017"));
    assert_eq!(fields["agent.ip"], text("10.20.30.40"));
    assert_eq!(fields["manager.name"], text("wazuh-mgr-a"));
    assert_eq!(fields["cluster.node"], text("worker-2"));
    assert_eq!(fields["decoder.name"], text("sshd"));
    assert_eq!(fields["decoder.parent"], text("sshd"));
    assert_eq!(fields["predecoder.program_name"], text("sshd"));
    assert_eq!(fields["data.srcip"], text("198.51.100.23"));
    assert_eq!(fields["data.dstuser"], text("root"));
    assert_eq!(fields["location"], text("/var/log/auth.log"));
    assert_eq!(fields["id"], text("1709363742.7742019"));
    assert!(fields["full_log"].as_text().contains("Failed password for root"));
    assert!(fields["previous_output"].as_text().contains('\n'), "multi-line previous_output kept");
    assert!(!fields.contains_key("parse_warning"), "nothing was replaced");

    let expected_id = EventId::from_parts([
        b"wazuh".as_slice(),
        b"wazuh-mgr-a",
        b"1709363742.7742019",
        b"5763",
        b"017",
        b"2024-03-02T08:15:42.118+0100",
    ]);
    assert_eq!(event.id, expected_id, "the id comes from Wazuh's alert id, not the file position");
}

#[test]
fn windows_eventchannel_alert_keeps_win_fields() {
    let event = normalise(&record(WINDOWS)).expect("valid alert");
    assert_eq!(event.severity, Severity::Critical, "level 12");
    assert_eq!(event.category.as_deref(), Some("windows"));
    assert_eq!(event.host.as_deref(), Some("WS-FIN-0193"));
    assert_eq!(
        event.time,
        Utc.with_ymd_and_hms(2024, 3, 2, 9, 1, 5).single().expect("date")
            + chrono::Duration::milliseconds(4)
    );
    let fields = &event.fields;
    assert_eq!(
        fields["data.win.eventdata.image"],
        text("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
    );
    assert_eq!(
        fields["data.win.eventdata.commandLine"],
        text("powershell.exe -nop -w hidden -enc SQBFAFgA")
    );
    assert_eq!(fields["data.win.system.eventID"], text("1"));
    assert_eq!(fields["data.win.system.channel"], text("Microsoft-Windows-Sysmon/Operational"));
    assert_eq!(fields["rule.mitre.id"], list(&["T1059.001"]));
    assert_eq!(fields["location"], text("EventChannel"));
}

#[test]
fn syscheck_alert_keeps_syscheck_fields() {
    let event = normalise(&record(SYSCHECK)).expect("valid alert");
    assert_eq!(event.severity, Severity::Warning, "level 7");
    assert_eq!(event.category.as_deref(), Some("ossec"));
    assert_eq!(event.host.as_deref(), Some("db-primary"));
    assert_eq!(event.message, "Integrity checksum changed.");
    let fields = &event.fields;
    assert_eq!(fields["syscheck.path"], text("/etc/sudoers"));
    assert_eq!(fields["syscheck.event"], text("modified"));
    assert_eq!(fields["syscheck.inode_after"], FieldValue::Int(393522));
    assert_eq!(fields["syscheck.changed_attributes"], list(&["size", "mtime", "md5"]));
    assert_eq!(fields["decoder.name"], text("syscheck_integrity_changed"));
}

#[test]
fn indexer_document_is_unwrapped() {
    let event = normalise(&record(INDEXER)).expect("indexer document holds an alert");
    assert_eq!(event.message, "Web attack: SQL injection attempt");
    assert_eq!(event.host.as_deref(), Some("web-front-3"));
    assert_eq!(event.severity, Severity::Warning, "level 6");
    assert_eq!(event.fields["rule.id"], text("31103"));
    assert_eq!(event.fields["data.srcip"], text("203.0.113.77"));
    assert!(!event.fields.contains_key("_index"), "indexer metadata is not part of the alert");
    assert!(!event.fields.contains_key("_source.rule.id"));
    assert_eq!(
        event.time,
        Utc.with_ymd_and_hms(2024, 3, 2, 11, 13, 20).single().expect("date")
            + chrono::Duration::milliseconds(250)
    );
}

#[test]
fn invalid_json_reports_serde_message_with_column() {
    let error = normalise(&record(r#"{"timestamp":"2024-03-02T10:00:00Z",:{"level":3}}"#))
        .expect_err("broken JSON");
    match &error {
        ParseError::InvalidJson(message) => assert!(message.contains("column 37"), "{message}"),
        other => panic!("expected InvalidJson, got {other:?}"),
    }
    assert_eq!(error.reason(), "invalid_json");
}

#[test]
fn missing_rule_or_rule_id_is_rejected() {
    let no_rule = r#"{"timestamp":"2024-03-02T10:00:00Z","agent":{"id":"001"}}"#;
    assert_eq!(normalise(&record(no_rule)), Err(ParseError::MissingField("rule")));
    let rule_not_object = r#"{"rule":"5712"}"#;
    assert_eq!(normalise(&record(rule_not_object)), Err(ParseError::MissingField("rule")));
    let no_rule_id = r#"{"rule":{"level":5,"description":"x"}}"#;
    assert_eq!(normalise(&record(no_rule_id)), Err(ParseError::MissingField("rule.id")));
    let blank_rule_id = r#"{"rule":{"id":"","level":5}}"#;
    assert_eq!(normalise(&record(blank_rule_id)), Err(ParseError::MissingField("rule.id")));
}

#[test]
fn non_object_json_and_empty_records_are_rejected() {
    for body in [r#"["rule"]"#, "42", r#""alert""#, "null"] {
        assert_eq!(normalise(&record(body)), Err(ParseError::MissingField("rule")), "{body}");
    }
    assert_eq!(normalise(&record("")), Err(ParseError::Empty));
    assert_eq!(normalise(&record("  \t ")), Err(ParseError::Empty));
}

#[test]
fn placeholder_or_invalid_timestamp_falls_back_to_received() {
    let placeholder =
        r#"{"timestamp":"{timestamp}","@timestamp":"{timestamp}","rule":{"id":"510","level":7}}"#;
    let event = normalise(&record(placeholder)).expect("placeholder is accepted");
    assert_eq!(event.time, event.received);
    let warning = event.fields["parse_warning"].as_text();
    assert!(warning.contains("timestamp is missing"), "{warning}");

    let invalid = r#"{"timestamp":"yesterday","rule":{"id":"510","level":7}}"#;
    let event = normalise(&record(invalid)).expect("invalid timestamp is accepted");
    assert_eq!(event.time, event.received);
    assert!(event.fields["parse_warning"].as_text().contains("\"yesterday\" is not a valid time"));

    let missing = r#"{"rule":{"id":"510","level":7}}"#;
    let event = normalise(&record(missing)).expect("missing timestamp is accepted");
    assert_eq!(event.time, event.received);
    assert!(event.fields["parse_warning"].as_text().contains("timestamp is missing"));
}

#[test]
fn at_timestamp_and_rfc3339_are_accepted() {
    let body = serde_json::json!({
        "timestamp": "{timestamp}",
        "@timestamp": "2024-03-02T11:00:00.5Z",
        "rule": {"id": "1", "level": 3}
    });
    let event = normalise(&record(&body.to_string())).expect("valid");
    assert_eq!(
        event.time,
        Utc.with_ymd_and_hms(2024, 3, 2, 11, 0, 0).single().expect("date")
            + chrono::Duration::milliseconds(500)
    );
    assert!(!event.fields.contains_key("parse_warning"));

    let body = r#"{"timestamp":"2024-03-02T13:00:00+02:00","rule":{"id":"1","level":3}}"#;
    let event = normalise(&record(body)).expect("valid");
    assert_eq!(event.time, Utc.with_ymd_and_hms(2024, 3, 2, 11, 0, 0).single().expect("date"));

    let body = r#"{"timestamp":"2024-03-02T11:00:00+0000","rule":{"id":"1","level":3}}"#;
    let event = normalise(&record(body)).expect("wazuh layout without fraction");
    assert_eq!(event.time, Utc.with_ymd_and_hms(2024, 3, 2, 11, 0, 0).single().expect("date"));
}

#[test]
fn rule_levels_map_onto_the_syslog_scale() {
    let cases = [
        ("0", Severity::Debug),
        ("2", Severity::Debug),
        ("3", Severity::Informational),
        ("5", Severity::Notice),
        ("7", Severity::Warning),
        ("10", Severity::Error),
        ("12", Severity::Critical),
        ("14", Severity::Alert),
        ("15", Severity::Emergency),
        ("\"9\"", Severity::Error),
    ];
    for (level, expected) in cases {
        let body = format!(r#"{{"rule":{{"id":"1","level":{level}}}}}"#);
        let event = normalise(&record(&body)).expect("valid");
        assert_eq!(event.severity, expected, "level {level}");
        assert!(!event.fields["parse_warning"].as_text().contains("rule.level"));
    }
    let event = normalise(&record(r#"{"rule":{"id":"1","level":-4}}"#)).expect("valid");
    assert_eq!(event.severity, Severity::Informational);
    assert!(event.fields["parse_warning"].as_text().contains("rule.level"));
}

#[test]
fn message_and_host_fallbacks() {
    let body = serde_json::json!({
        "rule": {"id": "2902", "level": 7},
        "full_log": "New dpkg (Debian Package) installed.",
        "predecoder": {"hostname": "edge-7"},
        "manager": {"name": "mgr"}
    });
    let event = normalise(&record(&body.to_string())).expect("valid");
    assert_eq!(event.message, "New dpkg (Debian Package) installed.");
    assert_eq!(event.host.as_deref(), Some("edge-7"));
    assert_eq!(event.category, None);

    let body = serde_json::json!({
        "rule": {"id": "2902", "level": 7, "description": "", "groups": []},
        "manager": {"name": "mgr"},
        "agent": {"name": ""}
    });
    let event = normalise(&record(&body.to_string())).expect("valid");
    assert_eq!(event.message, "wazuh alert 2902");
    assert_eq!(event.host.as_deref(), Some("mgr"));
    assert_eq!(event.category, None);
}

#[test]
fn id_falls_back_to_file_position_then_content() {
    let body = r#"{"rule":{"id":"1","level":3}}"#;
    let event = normalise(&record(body)).expect("valid");
    let by_position = EventId::from_parts([b"wazuh-file".as_slice(), b"2049:1234", b"4096"]);
    assert_eq!(event.id, by_position);

    let mut pushed = record(body);
    pushed.meta = RecordMeta::None;
    let event = normalise(&pushed).expect("valid");
    assert_eq!(event.id, EventId::from_parts([b"wazuh".as_slice(), body.as_bytes()]));

    let mut moved = record(SSHD);
    moved.meta = RecordMeta::File { identity: "1:1".to_string(), offset: 0 };
    assert_eq!(
        normalise(&moved).expect("valid").id,
        normalise(&record(SSHD)).expect("valid").id,
        "an alert id does not depend on where the line was read"
    );
}

#[test]
fn syslog_json_output_gives_the_same_event_id() {
    let mut syslog = record(SSHD);
    syslog.kind = SourceKind::Syslog;
    syslog.meta = RecordMeta::None;
    syslog.peer = Some("192.0.2.10:51514".to_string());
    let message = format!("ossec: {}", SSHD.trim_end());
    let from_syslog = from_syslog_message(&syslog, &message).expect("alert in MSG");
    let from_file = normalise(&record(SSHD)).expect("valid");
    assert_eq!(from_syslog.id, from_file.id);
    assert_eq!(from_syslog.source.kind, SourceKind::Syslog);
    assert_eq!(from_syslog.source.peer.as_deref(), Some("192.0.2.10:51514"));
    assert_eq!(from_syslog.fields, from_file.fields);

    let truncated = &SSHD[..200];
    assert!(matches!(from_syslog_message(&syslog, truncated), Err(ParseError::InvalidJson(_))));
    assert!(matches!(
        from_syslog_message(&syslog, "ossec: no json"),
        Err(ParseError::InvalidJson(_))
    ));
    assert_eq!(from_syslog_message(&syslog, ""), Err(ParseError::Empty));
}
