//! Fixture tests of the syslog parser: RFC 5424, RFC 3164, vendor variants and failures.

use chrono::{DateTime, TimeZone, Utc};
use securewatch_schemas::{Event, FieldValue, Severity, SourceKind};

use super::{normalise, parse_failure};
use securewatch_schemas::{RawRecord, RecordMeta};

const PEER: &str = "192.0.2.7:51400";

fn june_2024() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 15, 12, 0, 0).unwrap() + chrono::Duration::microseconds(123_456)
}

fn record_at(body: &[u8], received: DateTime<Utc>, peer: Option<&str>) -> RawRecord {
    RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Syslog,
        source_name: "edge".into(),
        peer: peer.map(str::to_string),
        received,
        body: body.to_vec(),
        meta: RecordMeta::None,
    }
}

fn parse(text: &str) -> Event {
    normalise(&record_at(text.as_bytes(), june_2024(), Some(PEER)))
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn field<'a>(event: &'a Event, key: &str) -> &'a FieldValue {
    event.fields.get(key).unwrap_or_else(|| panic!("no field {key} in {:#?}", event.fields))
}

fn text_field<'a>(event: &'a Event, key: &str) -> &'a str {
    field(event, key).as_str().unwrap_or_else(|| panic!("field {key} is not a string"))
}

fn assert_parsed(event: &Event) {
    assert_eq!(parse_failure(event), None, "unexpected parse failure: {event:#?}");
}

#[test]
fn rfc5424_with_bom_milliseconds_and_zulu() {
    let event = parse(
        "<34>1 2021-03-04T05:06:07.089Z web01.example.org sudo - AUTH01 - \u{feff}bob ran /bin/ls",
    );
    assert_parsed(&event);
    assert_eq!(event.time, utc("2021-03-04T05:06:07.089Z"));
    assert_eq!(event.host.as_deref(), Some("web01.example.org"));
    assert_eq!(event.severity, Severity::Critical);
    assert_eq!(event.category.as_deref(), Some("auth"));
    assert_eq!(event.message, "bob ran /bin/ls");
    assert_eq!(text_field(&event, "appname"), "sudo");
    assert_eq!(text_field(&event, "msgid"), "AUTH01");
    assert!(!event.fields.contains_key("procid"), "NILVALUE procid must be absent");
    assert_eq!(field(&event, "syslog.version"), &FieldValue::Int(1));
    assert_eq!(field(&event, "syslog.priority"), &FieldValue::Int(34));
    assert_eq!(text_field(&event, "syslog.facility"), "auth");
    assert_eq!(text_field(&event, "syslog.severity"), "crit");
}

#[test]
fn rfc5424_negative_offset_and_microseconds() {
    let event = parse(
        "<165>1 2022-11-05T08:09:10.000042-07:00 192.0.2.1 billing 8710 - - Invoice batch closed.",
    );
    assert_parsed(&event);
    assert_eq!(event.time, utc("2022-11-05T15:09:10.000042Z"));
    assert_eq!(event.host.as_deref(), Some("192.0.2.1"));
    assert_eq!(text_field(&event, "procid"), "8710");
    assert_eq!(event.severity, Severity::Notice);
    assert_eq!(event.category.as_deref(), Some("local4"));
    assert_eq!(event.message, "Invoice batch closed.");
}

#[test]
fn rfc5424_positive_offset() {
    let event = parse("<13>1 2024-02-29T23:30:00+02:00 h1 app 77 M1 - leap day");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-02-29T21:30:00Z"));
}

#[test]
fn rfc5424_structured_data_elements_become_fields() {
    let event = parse(
        "<165>1 2022-11-05T08:09:10Z gw01 evtlog - EV1 [audit@32473 user=\"alice\" action=\"login\"][meta@32473 seq=\"7\"] Login ok",
    );
    assert_parsed(&event);
    assert_eq!(text_field(&event, "audit@32473.user"), "alice");
    assert_eq!(text_field(&event, "audit@32473.action"), "login");
    assert_eq!(text_field(&event, "meta@32473.seq"), "7");
    assert_eq!(event.message, "Login ok");
}

#[test]
fn rfc5424_structured_data_escapes() {
    let event = parse(
        r#"<14>1 2022-11-05T08:09:10Z h app - - [x@1 quote="say \"hi\"" back="C:\\dir" bracket="a\]b" other="keep\n"] m"#,
    );
    assert_parsed(&event);
    assert_eq!(text_field(&event, "x@1.quote"), r#"say "hi""#);
    assert_eq!(text_field(&event, "x@1.back"), r"C:\dir");
    assert_eq!(text_field(&event, "x@1.bracket"), "a]b");
    assert_eq!(text_field(&event, "x@1.other"), r"keep\n");
    assert_eq!(event.message, "m");
}

#[test]
fn rfc5424_structured_data_without_message() {
    let event =
        parse(r#"<165>1 2022-11-05T08:09:10Z gw01 evtlog - EV2 [audit@32473 result="denied"]"#);
    assert_parsed(&event);
    assert_eq!(text_field(&event, "audit@32473.result"), "denied");
    assert_eq!(event.message, "");
}

#[test]
fn rfc5424_repeated_param_becomes_a_list() {
    let event =
        parse(r#"<14>1 2022-11-05T08:09:10Z h app - - [ip@1 addr="10.0.0.1" addr="10.0.0.2"] m"#);
    assert_eq!(
        field(&event, "ip@1.addr"),
        &FieldValue::List(vec!["10.0.0.1".into(), "10.0.0.2".into()])
    );
}

#[test]
fn rfc5424_all_nilvalues() {
    let event = parse("<14>1 - - - - - -");
    assert_parsed(&event);
    assert_eq!(event.time, june_2024(), "no timestamp: time falls back to received");
    assert_eq!(event.host.as_deref(), Some("192.0.2.7"), "no hostname: the peer's IP");
    assert!(!event.fields.contains_key("appname"));
    assert!(!event.fields.contains_key("msgid"));
    assert_eq!(event.message, "");
    assert_eq!(event.severity, Severity::Informational);
}

#[test]
fn rfc5424_broken_header_is_kept_with_a_reason() {
    let text = "<13>1 2024-99-99T00:00:00Z host app - - - msg";
    let event = parse(text);
    assert_eq!(parse_failure(&event), Some("invalid_rfc5424_header"));
    assert_eq!(event.message, text);
    assert_eq!(event.severity, Severity::Notice);
    assert_eq!(event.time, event.received);
}

#[test]
fn rfc3164_with_host_tag_and_pid() {
    let event = parse("<38>Feb  3 04:05:06 bastion sshd[4242]: Accepted publickey for deploy");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-02-03T04:05:06Z"));
    assert_eq!(event.host.as_deref(), Some("bastion"));
    assert_eq!(text_field(&event, "appname"), "sshd");
    assert_eq!(text_field(&event, "procid"), "4242");
    assert_eq!(event.severity, Severity::Informational);
    assert_eq!(event.category.as_deref(), Some("auth"));
    assert_eq!(event.message, "Accepted publickey for deploy");
    assert!(!event.fields.contains_key("syslog.version"));
}

#[test]
fn rfc3164_with_year_and_colon_after_time() {
    let event = parse("<38>Feb 3 2019 04:05:06: bastion sshd[1]: old entry");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2019-02-03T04:05:06Z"));
    assert_eq!(event.host.as_deref(), Some("bastion"));
    assert_eq!(event.message, "old entry");
}

#[test]
fn rfc3164_december_message_received_in_january_gets_previous_year() {
    let received = utc("2025-01-01T00:00:05Z");
    let event = normalise(&record_at(b"<13>Dec 31 23:59:58 h app: late", received, Some(PEER)));
    assert_eq!(event.time, utc("2024-12-31T23:59:58Z"));
    let received = utc("2024-12-31T23:59:59Z");
    let event = normalise(&record_at(b"<13>Jan  1 00:00:01 h app: early", received, Some(PEER)));
    assert_eq!(event.time, utc("2025-01-01T00:00:01Z"));
}

#[test]
fn file_line_without_pri_gets_the_default_priority() {
    let event = parse("Mar  2 07:08:09 files01 cron(pam_unix)[311]: session opened for user root");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-03-02T07:08:09Z"));
    assert_eq!(event.host.as_deref(), Some("files01"));
    assert_eq!(text_field(&event, "appname"), "cron(pam_unix)");
    assert_eq!(text_field(&event, "procid"), "311");
    assert_eq!(event.severity, Severity::Notice);
    assert_eq!(event.category.as_deref(), Some("user"));
    assert_eq!(field(&event, "syslog.priority"), &FieldValue::Int(13));
}

#[test]
fn missing_hostname_with_pid_tag_uses_the_peer() {
    let event = parse("<13>Mar  2 07:08:09 backupd[77]: done");
    assert_parsed(&event);
    assert_eq!(event.host.as_deref(), Some("192.0.2.7"));
    assert_eq!(text_field(&event, "appname"), "backupd");
    assert_eq!(event.message, "done");
}

#[test]
fn missing_hostname_with_colon_tag_uses_the_peer() {
    let event = parse("<13>Mar  2 07:08:09 backupd: done again");
    assert_parsed(&event);
    assert_eq!(event.host.as_deref(), Some("192.0.2.7"));
    assert_eq!(text_field(&event, "appname"), "backupd");
    assert_eq!(event.message, "done again");
}

#[test]
fn missing_hostname_and_peer_leaves_host_empty() {
    let event = normalise(&record_at(b"<13>Mar  2 07:08:09 backupd: x", june_2024(), None));
    assert_eq!(event.host, None);
    assert_eq!(event.source.peer, None);
}

#[test]
fn ipv6_peer_gives_a_bare_address() {
    let event = normalise(&record_at(
        b"<13>Mar  2 07:08:09 app: x",
        june_2024(),
        Some("[2001:db8::5]:514"),
    ));
    assert_eq!(event.host.as_deref(), Some("2001:db8::5"));
}

#[test]
fn rfc3339_timestamp_in_a_legacy_message() {
    let event = parse("<13>2024-05-06T07:08:09.5+01:00 host01 app[9]: hello");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-05-06T06:08:09.5Z"));
    assert_eq!(event.host.as_deref(), Some("host01"));
    assert_eq!(text_field(&event, "appname"), "app");
    assert_eq!(event.message, "hello");
}

#[test]
fn cisco_ios_sequence_marker_and_milliseconds() {
    let event = parse("<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.5)");
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-03-01T18:46:11.123Z"));
    assert_eq!(field(&event, "syslog.sequence"), &FieldValue::Int(123));
    assert_eq!(text_field(&event, "appname"), "%SYS-5-CONFIG_I");
    assert_eq!(event.host.as_deref(), Some("192.0.2.7"));
    assert_eq!(event.severity, Severity::Notice);
    assert_eq!(event.category.as_deref(), Some("local7"));
    assert_eq!(event.message, "Configured from console by vty0 (10.0.0.5)");
}

#[test]
fn cisco_utc_suffix_without_sequence() {
    let event = parse(
        "<187>Apr  9 10:11:12.345 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
    );
    assert_parsed(&event);
    assert_eq!(event.time, utc("2024-04-09T10:11:12.345Z"));
    assert_eq!(event.severity, Severity::Error);
    assert_eq!(text_field(&event, "appname"), "%LINK-3-UPDOWN");
    assert_eq!(event.message, "Interface Gi0/1, changed state to down");
}

#[test]
fn cisco_asa_with_detached_colon() {
    let event = parse("<166>Jun 22 12:00:00 fw1 : %ASA-6-302013: Built outbound TCP connection 42");
    assert_parsed(&event);
    assert_eq!(event.host.as_deref(), Some("fw1"));
    assert_eq!(event.time, utc("2024-06-22T12:00:00Z"));
    assert_eq!(event.severity, Severity::Informational);
    assert_eq!(event.category.as_deref(), Some("local4"));
    assert_eq!(event.message, "%ASA-6-302013: Built outbound TCP connection 42");
}

#[test]
fn trailing_newline_and_nul_are_trimmed() {
    let event =
        normalise(&record_at(b"<13>Mar  2 07:08:09 h app: bye\r\n\0", june_2024(), Some(PEER)));
    assert_parsed(&event);
    assert_eq!(event.message, "bye");
    assert_eq!(event.raw.as_deref(), Some("<13>Mar  2 07:08:09 h app: bye"));
}

#[test]
fn pri_without_timestamp_is_all_message() {
    let event = parse("<11>disk almost full");
    assert_parsed(&event);
    assert_eq!(event.message, "disk almost full");
    assert_eq!(event.severity, Severity::Error);
    assert_eq!(event.category.as_deref(), Some("user"));
    assert_eq!(event.time, event.received);
    assert_eq!(event.host.as_deref(), Some("192.0.2.7"));
}

#[test]
fn eight_bit_bytes_are_kept_lossily() {
    let event =
        normalise(&record_at(b"<14>Mar  2 07:08:09 h app: caf\xe9 ok", june_2024(), Some(PEER)));
    assert_parsed(&event);
    assert_eq!(event.message, "caf\u{fffd} ok");
}

#[test]
fn empty_body_is_kept_with_a_reason() {
    for body in [b"".as_slice(), b"\n", b"  \r\n\0"] {
        let event = normalise(&record_at(body, june_2024(), Some(PEER)));
        assert_eq!(parse_failure(&event), Some("empty"));
        assert_eq!(event.severity, Severity::Notice);
        assert_eq!(event.time, event.received);
        assert_eq!(event.host.as_deref(), Some("192.0.2.7"));
        assert_eq!(event.category, None);
    }
}

#[test]
fn binary_garbage_is_kept_with_a_reason() {
    let event =
        normalise(&record_at(&[0x01, 0xff, 0xfe, b'x', 0x00, 0x02], june_2024(), Some(PEER)));
    assert_eq!(parse_failure(&event), Some("no_syslog_header"));
    assert_eq!(event.message, "\u{1}\u{fffd}\u{fffd}x\u{0}\u{2}");
    assert_eq!(event.raw.as_deref(), Some(event.message.as_str()));
    assert_eq!(event.fields.len(), 1, "only parse_error: {:?}", event.fields);
}

#[test]
fn plain_text_and_bad_pri_are_kept_with_reasons() {
    assert_eq!(parse_failure(&parse("hello world")), Some("no_syslog_header"));
    let event = parse("<999>Mar  2 07:08:09 h app: x");
    assert_eq!(parse_failure(&event), Some("invalid_pri"));
    assert_eq!(event.message, "<999>Mar  2 07:08:09 h app: x");
}

#[test]
fn source_and_received_are_carried_over() {
    let event = parse("<13>Mar  2 07:08:09 h app: x");
    assert_eq!(event.source.kind, SourceKind::Syslog);
    assert_eq!(event.source.name, "edge");
    assert_eq!(event.source.peer.as_deref(), Some(PEER));
    assert_eq!(event.received, june_2024());
}

#[test]
fn id_depends_on_peer_received_time_and_body_only() {
    let base = record_at(b"<13>Mar  2 07:08:09 h app: same", june_2024(), Some(PEER));
    let first = normalise(&base);
    assert_eq!(normalise(&base), first, "normalising is deterministic, id included");
    let later = record_at(&base.body, june_2024() + chrono::Duration::microseconds(1), Some(PEER));
    assert_ne!(normalise(&later).id, first.id);
    let other_peer = record_at(&base.body, june_2024(), Some("192.0.2.8:51400"));
    assert_ne!(normalise(&other_peer).id, first.id);
    let other_body = record_at(b"<13>Mar  2 07:08:09 h app: diff", june_2024(), Some(PEER));
    assert_ne!(normalise(&other_body).id, first.id);
}

#[test]
fn parse_failure_ignores_other_sources() {
    let mut event = parse("hello world");
    assert!(parse_failure(&event).is_some());
    event.source.kind = SourceKind::Hec;
    assert_eq!(parse_failure(&event), None);
}
