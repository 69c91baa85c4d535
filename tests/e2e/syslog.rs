//! Syslog through the real binary with util-linux `logger`: UDP and TCP, RFC 5424 and 3164,
//! octet counting.

use std::io::Write;
use std::net::TcpStream;

use securewatch_tests::instance::{logger, Instance};
use serde_json::Value;

fn local_hostname() -> String {
    let output = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn find<'a>(events: &'a [Value], message: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["message"] == message)
        .unwrap_or_else(|| panic!("no event with message {message:?} in {events:#?}"))
}

#[test]
fn logger_over_udp_and_tcp_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let port = instance.ports.syslog.to_string();
    let base = ["--server", "127.0.0.1", "--port", port.as_str()];
    let send = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        logger(&args).unwrap();
    };
    send(&["--udp", "--rfc5424", "-p", "auth.warning", "-t", "sshd", "--msgid", "LOGIN",
        "--sd-id", "origin@32473", "--sd-param", "user=\"bob\"", "udp 5424 message"]);
    send(&["--udp", "--rfc3164", "-p", "local4.err", "-t", "app", "udp 3164 message"]);
    send(&["--tcp", "--rfc5424", "-p", "daemon.info", "-t", "cron", "tcp 5424 message"]);
    send(&["--tcp", "--rfc3164", "-p", "daemon.crit", "-t", "ntpd", "tcp 3164 message"]);
    send(&["--tcp", "--octet-count", "--rfc5424", "-p", "user.notice", "-t", "oc", "octet counted message"]);

    let events = instance.wait_events("source=syslog&limit=50", 5).unwrap();
    assert_eq!(events.len(), 5, "{events:#?}");
    let hostname = local_hostname();
    let now = chrono::Utc::now();

    let udp5424 = find(&events, "udp 5424 message");
    assert_eq!(udp5424["host"], hostname.as_str());
    assert_eq!(udp5424["severity"], "warning");
    assert_eq!(udp5424["category"], "auth");
    assert_eq!(udp5424["fields"]["appname"], "sshd");
    assert_eq!(udp5424["fields"]["msgid"], "LOGIN");
    assert_eq!(udp5424["fields"]["origin@32473.user"], "bob");
    assert!(udp5424["source"]["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    let udp3164 = find(&events, "udp 3164 message");
    assert_eq!(udp3164["severity"], "error");
    assert_eq!(udp3164["category"], "local4");
    assert_eq!(udp3164["fields"]["appname"], "app");

    assert_eq!(find(&events, "tcp 5424 message")["severity"], "informational");
    assert_eq!(find(&events, "tcp 3164 message")["severity"], "critical");
    assert_eq!(find(&events, "tcp 3164 message")["category"], "daemon");
    assert_eq!(find(&events, "octet counted message")["severity"], "notice");

    for event in &events {
        let time: chrono::DateTime<chrono::Utc> = event["time"].as_str().unwrap().parse().unwrap();
        let skew = (now - time).num_seconds().abs();
        assert!(skew < 120, "event time {time} is {skew}s away from now: {event:#}");
        assert!(event["fields"].get("parse_error").is_none(), "{event:#}");
    }
}

#[test]
fn unparseable_syslog_is_kept_with_a_parse_error_mark() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let mut stream = TcpStream::connect(instance.syslog_addr()).unwrap();
    stream.write_all(b"\x01\x02 garbage without structure\n").unwrap();
    drop(stream);
    let events = instance.wait_events("source=syslog", 1).unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0]["fields"]["parse_error"].is_string(), "{:#}", events[0]);
    assert!(events[0]["message"].as_str().unwrap().contains("garbage without structure"));
}

/// Wazuh's `<syslog_output>` with `<format>json</format>` sends `ossec: {alert JSON}`; it is
/// mapped like an alerts.json line.
#[test]
fn wazuh_json_syslog_output_is_mapped_as_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let port = instance.ports.syslog.to_string();
    let alert = r#"{"timestamp":"2024-03-01T10:00:00.000+0000","rule":{"level":12,"description":"Multiple authentication failures","id":"40111","groups":["authentication_failures"]},"agent":{"id":"004","name":"db-07"},"manager":{"name":"mgr"},"id":"1709287200.99","data":{"srcip":"198.51.100.4"}}"#;
    logger(&["--server", "127.0.0.1", "--port", &port, "--udp", "--rfc3164", "-p", "local0.alert", "-t", "ossec", alert]).unwrap();
    let events = instance.wait_events("host=db-07", 1).unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["message"], "Multiple authentication failures");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["fields"]["rule.id"], "40111");
    assert_eq!(event["fields"]["data.srcip"], "198.51.100.4");
    assert_eq!(event["time"], "2024-03-01T10:00:00Z");
    assert_eq!(event["source"]["kind"], "syslog");
}
