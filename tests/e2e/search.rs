//! Search through the real binary: `securewatch search` prints rows and explains; a job's
//! WebSocket, read by Python's `websockets` client, pushes progress, previews and the end, and
//! refuses a caller without a credential.

use std::process::Command;
use std::time::{Duration, Instant};

use securewatch_tests::instance::{binary, curl, Instance};
use serde_json::Value;

/// Starts an instance and stores 40 HEC events of hosts web-0..web-3.
fn instance_with_events() -> (tempfile::TempDir, Instance) {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let token = std::fs::read_to_string(dir.path().join("hec_token")).unwrap();
    let body: String = (0..40).map(|n| format!(r#"{{"host": "web-{}", "event": "login failed for user-{n}"}}"#, n % 4)).collect();
    let auth = format!("Authorization: Splunk {}", token.trim());
    let (status, answer) = curl(&["-X", "POST", &instance.hec_url("/services/collector/event"), "-H", &auth, "--data-binary", &body]).unwrap();
    assert_eq!(status, 200, "{answer}");
    instance.wait_events("limit=100", 40).unwrap();
    (dir, instance)
}

fn search(instance: &Instance, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary())
        .arg("search")
        .args(args)
        .args(["--server", &instance.api_url(""), "--token", &instance.api_token()])
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[test]
fn the_cli_prints_rows_in_each_format_and_points_at_errors() {
    let (_dir, instance) = instance_with_events();
    let (code, stdout, stderr) = search(&instance, &["events | where host == \"web-1\" | project host, message | take 3", "--from", "-1h"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows: {stdout}");
    assert!(lines[0].starts_with("host") && lines[1..].iter().all(|line| line.starts_with("web-1  login failed")), "{stdout}");

    let (code, stdout, _) = search(&instance, &["events | where message has 'failed' | summarize n = count() by host | sort by host asc", "--format", "csv"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "host,n\nweb-0,10\nweb-1,10\nweb-2,10\nweb-3,10\n");
    let (_, stdout, _) = search(&instance, &["events | where host == 'web-2' | count", "--format", "ndjson"]);
    assert_eq!(stdout.trim(), r#"{"count_":10}"#);
    let (_, stdout, _) = search(&instance, &["events | where host == 'web-2' | take 1", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()[0]["host"], "web-2");

    let (code, stdout, _) = search(&instance, &["events | summarize count() by bin(time, 1h), host", "--explain"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("path: hour_rollup\nsql: SELECT"), "{stdout}");
    let (_, stdout, _) = search(&instance, &["events | summarize count() by bin(time, 5m), host", "--explain"]);
    assert!(stdout.starts_with("path: rollup\nsql: SELECT"), "{stdout}");

    let (code, _, stderr) = search(&instance, &["events | where host = 'a'"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: line 1, column 21: expected"), "{stderr}");
    assert!(stderr.contains("events | where host = 'a'\n                    ^"), "{stderr}");
}

/// A Python `websockets` client: connects with `token` (none: no header) and prints one JSON
/// line per message received, with the milliseconds since the connection opened.
const CLIENT: &str = r#"
import json, sys, time
from websockets.sync.client import connect
from websockets.exceptions import InvalidStatus
url, token = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + token} if token else {}
try:
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        opened = time.monotonic()
        for message in socket:
            print(json.dumps({"ms": (time.monotonic() - opened) * 1000, "message": json.loads(message)}), flush=True)
except InvalidStatus as error:
    print(json.dumps({"refused": error.response.status_code}))
"#;

fn websocket_messages(url: &str, token: &str) -> Vec<Value> {
    let output = Command::new("python3").args(["-c", CLIENT, url, token]).output().expect("python3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'websockets'") {
        assert!(std::env::var("SECUREWATCH_REQUIRE_WEBSOCKETS_TEST").as_deref() != Ok("1"), "websockets is required: {stderr}");
        eprintln!("skipped: Python websockets is not installed (tests/run.sh installs it)");
        return Vec::new();
    }
    assert!(output.status.success(), "{stderr}");
    String::from_utf8_lossy(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn a_job_websocket_pushes_progress_previews_and_the_end_to_a_real_client() {
    let (_dir, instance) = instance_with_events();
    let body = r#"{"query": "events | where message has \"failed\" | project host, message", "from": "-1h"}"#;
    let (status, answer) = curl(&["-X", "POST", &instance.api_url("/api/v1/jobs"), "-H", "Content-Type: application/json", "-d", body]).unwrap();
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["id"].as_str().unwrap().to_owned();
    let url = instance.api_url(&format!("/api/v1/jobs/{id}/ws")).replace("http://", "ws://");

    let started = Instant::now();
    let messages = websocket_messages(&url, &instance.api_token());
    if messages.is_empty() {
        return;
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    let kinds: Vec<&str> = messages.iter().map(|line| line["message"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"progress"), "{messages:?}");
    assert_eq!(kinds.last(), Some(&"end"), "{messages:?}");
    assert!(kinds.contains(&"preview"), "{messages:?}");
    let end = &messages.last().unwrap()["message"]["job"];
    assert_eq!((end["state"].as_str(), end["rows_matched"].as_u64(), end["progress"].as_f64()), (Some("done"), Some(40), Some(1.0)));
    let previewed: usize = messages.iter().filter_map(|line| line["message"]["rows"].as_array()).map(Vec::len).sum();
    assert_eq!(previewed, 20, "the preview holds the first rows");
    let progress = messages.iter().filter(|line| line["message"]["type"] == "progress").map(|line| line["message"]["job"]["progress"].as_f64().unwrap());
    assert!(progress.clone().zip(progress.skip(1)).all(|(a, b)| a <= b), "progress never goes back");

    // Without a credential the upgrade is refused like any API call.
    assert_eq!(websocket_messages(&url, ""), vec![serde_json::json!({"refused": 401})]);
}
