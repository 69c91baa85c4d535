//! HEC through the real binary with curl: events come back with the right fields; errors
//! answer with Splunk's status and code.

use securewatch_tests::instance::{curl, Instance};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-token-1234";

fn start() -> (tempfile::TempDir, Instance) {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    (dir, instance)
}

fn post(instance: &Instance, path: &str, extra: &[&str], body: &str) -> (u16, Value) {
    let url = instance.hec_url(path);
    let mut args = vec!["-X", "POST", url.as_str(), "--data-binary", body];
    args.extend_from_slice(extra);
    let (status, text) = curl(&args).unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

#[test]
fn events_round_trip_with_time_host_severity_message_and_fields() {
    let (_dir, instance) = start();
    let auth = format!("Authorization: Splunk {TOKEN}");
    let body = concat!(
        r#"{"time": 1700000000.25, "host": "web-01", "source": "/var/log/app.log", "sourcetype": "app:json", "#,
        r#""event": {"message": "login failed", "user": "alice", "severity": "warning"}, "fields": {"dc": "eu-1"}}"#,
        r#"{"time": "1700000001", "host": "web-02", "event": "plain text event"}"#
    );
    let (status, answer) = post(&instance, "/services/collector/event", &["-H", &auth], body);
    assert_eq!((status, answer), (200, json!({"text": "Success", "code": 0})));

    let events = instance.wait_events("source=hec&limit=10", 2).unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    let (newest, oldest) = (&events[0], &events[1]);
    assert_eq!(newest["host"], "web-02");
    assert_eq!(newest["message"], "plain text event");
    assert_eq!(newest["time"], "2023-11-14T22:13:21Z");
    assert_eq!(oldest["host"], "web-01");
    assert_eq!(oldest["time"], "2023-11-14T22:13:20.250Z");
    assert_eq!(oldest["message"], "login failed");
    assert_eq!(oldest["severity"], "warning");
    assert_eq!(oldest["category"], "app:json");
    assert_eq!(oldest["fields"]["user"], "alice");
    assert_eq!(oldest["fields"]["dc"], "eu-1");
    assert_eq!(oldest["fields"]["sourcetype"], "app:json");
    assert_eq!(oldest["source"]["kind"], "hec");

    let raw_url = "/services/collector/raw?host=db-01&sourcetype=mysql&time=1700000100";
    let (status, _) = post(&instance, raw_url, &["-H", &auth], "line one\nline two\n");
    assert_eq!(status, 200);
    let raw = instance.wait_events("host=db-01", 2).unwrap();
    assert_eq!(raw.len(), 2);
    assert!(raw.iter().all(|event| event["category"] == "mysql"));
    let mut messages: Vec<_> = raw.iter().map(|event| event["message"].as_str().unwrap()).collect();
    messages.sort();
    assert_eq!(messages, ["line one", "line two"]);

    // Re-sending the same time-stamped request stores nothing new (deterministic ids).
    let (status, _) = post(&instance, "/services/collector/event", &["-H", &auth], body);
    assert_eq!(status, 200);
    assert_eq!(instance.events("source=hec&limit=100").unwrap().len(), 4);

    let (_, q) = curl(&[&instance.api_url("/api/v1/events?q=LOGIN")]).unwrap();
    let q: Vec<Value> = serde_json::from_str(&q).unwrap();
    assert_eq!(q.len(), 1, "q= is a case-insensitive substring search");
}

/// What the HEC source hands over normalises with the metadata a user set: each token's own
/// defaults, the host falling back to the sender's address, and a raw request's query string.
#[test]
fn tokens_and_raw_query_strings_set_the_metadata_of_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = concat!(
        "[[sources.hec.tokens]]\nname = \"ops\"\ntoken = \"ops-0123456789\"\nsourcetype = \"ops:log\"\n\n",
        "[[sources.hec.tokens]]\nname = \"web\"\ntoken = \"web-9876543210\"\nhost = \"web-fleet\"\n",
        "sourcetype = \"web:access\"\nindex = \"web\"\n"
    );
    let instance = Instance::start(dir.path(), tokens, &[]).unwrap();
    let (ops, web) = ("Authorization: Splunk ops-0123456789", "Authorization: Splunk web-9876543210");

    let body = r#"{"event":"one","time":1700000000}{"event":{"msg":"two"}}"#;
    assert_eq!(post(&instance, "/services/collector/event", &["-H", ops], body).0, 200);
    let events = instance.wait_events("source=hec&limit=10", 2).unwrap();
    let one = events.iter().find(|event| event["message"] == "one").expect("one");
    assert_eq!(one["time"], "2023-11-14T22:13:20Z");
    assert_eq!(one["category"], "ops:log", "the token's sourcetype");
    assert_eq!(one["host"], "127.0.0.1", "no host given: the sender's address");
    assert!(events.iter().any(|event| event["message"] == "two"), "{events:#?}");

    let same = r#"{"event":"same event","time":1700000050}"#;
    for token in [ops, web] {
        assert_eq!(post(&instance, "/services/collector", &["-H", token], same).0, 200);
    }
    let same_events = instance.wait_events("q=same%20event&limit=10", 2).unwrap();
    assert_eq!(same_events.len(), 2, "the token is part of the id: {same_events:#?}");
    let from_web = same_events.iter().find(|event| event["category"] == "web:access").expect("web's sourcetype");
    assert_eq!(from_web["host"], "web-fleet");
    assert_eq!(from_web["fields"]["index"], "web");
    assert!(same_events.iter().any(|event| event["category"] == "ops:log"));

    let raw = "/services/collector/raw?host=edge-7&sourcetype=fw:line&index=net&time=1700000000.5&channel=ch-query";
    assert_eq!(post(&instance, raw, &["-H", web], "first line\r\nsecond line\n").0, 200);
    let lines = instance.wait_events("host=edge-7&limit=10", 2).unwrap();
    let first = lines.iter().find(|event| event["message"] == "first line").expect("first line");
    assert_eq!(first["category"], "fw:line", "the query's sourcetype wins over the token's");
    assert_eq!(first["fields"]["index"], "net");
    assert_eq!(first["time"], "2023-11-14T22:13:20.500Z");
}

#[test]
fn gzip_body_is_accepted() {
    let (dir, instance) = start();
    let plain = dir.path().join("body.json");
    std::fs::write(&plain, r#"{"event": "compressed hello", "host": "gz-host"}"#).unwrap();
    let status = std::process::Command::new("gzip").arg("-k").arg(&plain).status().unwrap();
    assert!(status.success());
    let file_arg = format!("@{}.gz", plain.display());
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    let (status, _) = curl(&[
        "-X", "POST", &url, "-H", &auth, "-H", "Content-Encoding: gzip", "--data-binary", &file_arg,
    ])
    .unwrap();
    assert_eq!(status, 200);
    let events = instance.wait_events("host=gz-host", 1).unwrap();
    assert_eq!(events[0]["message"], "compressed hello");
}

#[test]
fn errors_answer_with_splunk_status_and_code() {
    let (_dir, instance) = start();
    let good = format!("Authorization: Splunk {TOKEN}");
    let event = r#"{"event": "x"}"#;
    let cases: Vec<(&str, Vec<&str>, &str, u16, Value)> = vec![
        ("no token", vec![], event, 401, json!({"text": "Token is required", "code": 2})),
        ("bad scheme", vec!["-H", "Authorization: Basic abc"], event, 401,
            json!({"text": "Invalid authorization", "code": 3})),
        ("bad token", vec!["-H", "Authorization: Splunk nope"], event, 403,
            json!({"text": "Invalid token", "code": 4})),
        ("no data", vec!["-H", good.as_str()], "", 400, json!({"text": "No data", "code": 5})),
        ("invalid second envelope", vec!["-H", good.as_str()], r#"{"event": "ok"}{"event": "#, 400,
            json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1})),
        ("event missing", vec!["-H", good.as_str()], r#"{"host": "h"}"#, 400,
            json!({"text": "Event field is required", "code": 12, "invalid-event-number": 0})),
        ("event blank", vec!["-H", good.as_str()], r#"{"event": ""}"#, 400,
            json!({"text": "Event field cannot be blank", "code": 13, "invalid-event-number": 0})),
    ];
    for (name, headers, body, status, expected) in cases {
        let (got_status, got) = post(&instance, "/services/collector/event", &headers, body);
        assert_eq!((got_status, &got), (status, &expected), "case {name}");
    }
    let (status, health) = curl(&[&instance.hec_url("/services/collector/health")]).unwrap();
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&health).unwrap(), json!({"text": "HEC is healthy", "code": 17}));

    // Every rejection is counted by reason.
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    for reason in ["no_token", "invalid_token", "no_data", "invalid_data"] {
        assert!(
            metrics.lines().any(|line| line.starts_with("securewatch_source_rejected_total")
                && line.contains(&format!("reason=\"{reason}\""))),
            "no rejected counter for {reason}:\n{metrics}"
        );
    }
    assert!(instance.events("source=hec").unwrap().is_empty(), "rejected requests store nothing");
}

#[test]
fn too_deep_and_out_of_range_envelopes_are_refused_at_the_edge() {
    // Issue 24 finding 4: both answered 200 Success, then went to the dead letters.
    let (_dir, instance) = start();
    let auth = format!("Authorization: Splunk {TOKEN}");
    let deep = format!(r#"{{"event":{}{}}}"#, "[".repeat(127), "]".repeat(127));
    let (status, answer) = post(&instance, "/services/collector/event", &["-H", &auth], &deep);
    assert_eq!((status, answer), (400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0})));
    let huge = format!(r#"{{"event":"ok"}}{{"event":{{"n":{}}}}}"#, "7".repeat(400));
    let (status, answer) = post(&instance, "/services/collector/event", &["-H", &auth], &huge);
    assert_eq!((status, answer), (400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1})));
    // One level less and a big but representable number pass and are stored, not dead-lettered.
    let fits = format!(r#"{{"event":{{"n":{}}},"host":"deep-ok","fields":{{"k":{}1{}}}}}"#, "7".repeat(300), "[".repeat(125), "]".repeat(125));
    let (status, _) = post(&instance, "/services/collector/event", &["-H", &auth], &fits);
    assert_eq!(status, 200);
    assert_eq!(instance.wait_events("host=deep-ok", 1).unwrap().len(), 1);
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    for reason in ["too_deep", "number_out_of_range"] {
        assert!(
            metrics.lines().any(|line| line.starts_with("securewatch_source_rejected_total")
                && line.contains(&format!("reason=\"{reason}\""))),
            "no rejected counter for {reason}:\n{metrics}"
        );
    }
}

#[test]
fn body_over_the_configured_cap_answers_413() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SECUREWATCH_HEC_TOKEN", TOKEN), ("SECUREWATCH_SOURCES__HEC__MAX_BODY_BYTES", "1000")];
    let instance = Instance::start(dir.path(), "", &env).unwrap();
    let auth = format!("Authorization: Splunk {TOKEN}");
    let big = format!(r#"{{"event": "{}"}}"#, "x".repeat(2000));
    let (status, answer) = post(&instance, "/services/collector/event", &["-H", &auth], &big);
    assert_eq!((status, answer), (413, json!({"text": "Content too large", "code": 27})));
    let (status, _) = post(&instance, "/services/collector/event", &["-H", &auth], r#"{"event": "small"}"#);
    assert_eq!(status, 200, "bodies under the cap still pass");
}
