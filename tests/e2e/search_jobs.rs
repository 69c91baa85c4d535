//! Search jobs through the real binary with real clients, over 1.2M events written into its
//! store (so a job runs for a while): a job waits `queued` behind `[jobs] concurrency` and runs
//! when the slot frees; `DELETE` cancels a running job and keeps the rows it read; Ctrl-C
//! (SIGINT) to `securewatch search` cancels its job on the server; a job running when the
//! server is killed reads `failed`, "interrupted by restart", after it starts again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use securewatch_tests::instance::{binary, curl, Instance};
use serde_json::Value;

/// Events written: one every 2 ms from 2 h 40 min ago back (outside the dataflow's lateness,
/// so the restarts do not replay them), hosts web-0..web-3.
const EVENTS: u64 = 1_200_000;
/// A query that writes every event as a result row: long enough to act on while it runs.
const SLOW: &str = r#"events | where message contains "user" | project time, host, message"#;

/// Writes the events with Python's `sqlite3` into the stopped instance's store.
fn write_events(data_dir: &std::path::Path) {
    let script = r#"
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now_us = int(time.time() * 1e6)
db.execute("""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
    INSERT INTO events (id, time_us, received_us, source_kind, source_name, host, severity, message, fields)
    SELECT randomblob(16), ? - 9600000000 - i * 2000, ?, 'hec', 'main', 'web-' || (i % 4), 6,
        'login failed for user-' || i, '{}' FROM n""", (int(sys.argv[2]) - 1, now_us, now_us))
db.commit()
print(db.execute("SELECT count(*) FROM events").fetchone()[0])
"#;
    let output = Command::new("python3").args(["-c", script]).arg(data_dir.join("securewatch.db")).arg(EVENTS.to_string()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), EVENTS.to_string());
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

fn submit(instance: &Instance, query: &str) -> String {
    let body = serde_json::json!({"query": query, "from": "-4h"}).to_string();
    let (status, answer) = curl(&["-X", "POST", &instance.api_url("/api/v1/jobs"), "-H", "Content-Type: application/json", "-d", &body]).unwrap();
    assert_eq!(status, 202, "{answer}");
    json(&answer)["id"].as_str().unwrap().to_owned()
}

fn job(instance: &Instance, id: &str) -> Value {
    let (status, answer) = curl(&[&instance.api_url(&format!("/api/v1/jobs/{id}"))]).unwrap();
    assert_eq!(status, 200, "{answer}");
    json(&answer)
}

/// Polls until `done(job)` holds; panics after 60 s.
fn wait_for(instance: &Instance, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = job(instance, id);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "job {id} never got {what}: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Running with rows already visible.
fn running_with_rows(job: &Value) -> bool {
    assert!(matches!(job["state"].as_str(), Some("queued" | "running")), "it ended before it could be stopped: {job}");
    job["state"] == "running" && job["rows_matched"].as_u64() > Some(0)
}

#[test]
fn jobs_queue_cancel_keep_rows_stop_on_ctrl_c_and_fail_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[jobs]\nconcurrency = 1\nrow_cap = 10000000\n";
    Instance::start(dir.path(), config, &[]).unwrap().terminate().unwrap();
    write_events(dir.path());
    let instance = Instance::start(dir.path(), config, &[]).unwrap();

    // One slot: the second job waits, queued, while the first runs.
    let slow = submit(&instance, SLOW);
    let count = submit(&instance, "events | count");
    wait_for(&instance, &slow, "rows while running", running_with_rows);
    let queued = job(&instance, &count);
    assert_eq!((queued["state"].as_str(), queued["started"].as_str()), (Some("queued"), None), "{queued}");

    // DELETE stops the running job; the rows it read stay readable.
    let (status, answer) = curl(&["-X", "DELETE", &instance.api_url(&format!("/api/v1/jobs/{slow}"))]).unwrap();
    let cancelled = json(&answer);
    assert_eq!((status, cancelled["state"].as_str()), (200, Some("cancelled")), "{answer}");
    let kept = cancelled["rows_matched"].as_u64().unwrap();
    assert!(kept > 0 && kept < EVENTS, "partial rows: {cancelled}");
    let (status, page) = curl(&[&instance.api_url(&format!("/api/v1/jobs/{slow}/results?format=ndjson&limit=1000000"))]).unwrap();
    assert_eq!(status, 200);
    let rows: Vec<Value> = page.lines().map(json).collect();
    assert_eq!(rows.len() as u64, kept, "every row counted is readable");
    assert!(rows.iter().all(|row| row["message"].as_str().unwrap().starts_with("login failed for user-")), "{:?}", &rows[..1]);

    // The queued job then runs, to the whole count.
    let done = wait_for(&instance, &count, "done", |job| job["state"] == "done");
    let time = |value: &Value| chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
    assert!(time(&done["started"]) >= time(&cancelled["finished"]), "it started once the slot freed: {done} {cancelled}");
    assert_eq!(done["rows_scanned"].as_u64(), Some(EVENTS), "{done}");
    let (_, page) = curl(&[&instance.api_url(&format!("/api/v1/jobs/{count}/results"))]).unwrap();
    assert_eq!(json(&page)["rows"], serde_json::json!([{"count_": EVENTS}]));

    // Ctrl-C to `securewatch search` cancels its job on the server.
    let mut cli = Command::new(binary())
        .args(["search", SLOW, "--from", "-4h", "--server", &instance.api_url(""), "--token", &instance.api_token()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let (_, list) = curl(&[&instance.api_url("/api/v1/jobs")]).unwrap();
        let newest = json(&list)[0].clone();
        if newest["query"] == SLOW && newest["id"] != slow.as_str() && running_with_rows(&newest) {
            break newest["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the CLI's job never ran: {newest}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(Command::new("kill").args(["-INT", &cli.id().to_string()]).status().unwrap().success());
    let output = cli.wait_with_output_within(Duration::from_secs(30));
    assert_eq!(output.0, Some(130), "the CLI exits 130 on Ctrl-C: {}", output.1);
    assert!(output.1.contains(&format!("cancelled job {id}")), "{}", output.1);
    let after = job(&instance, &id);
    assert_eq!(after["state"], "cancelled", "{after}");

    // Killed while a job runs: after the restart the job reads failed, interrupted.
    let interrupted = submit(&instance, SLOW);
    wait_for(&instance, &interrupted, "rows while running", running_with_rows);
    instance.kill().unwrap();
    let instance = Instance::start(dir.path(), config, &[]).unwrap();
    let failed = job(&instance, &interrupted);
    assert_eq!((failed["state"].as_str(), failed["error"]["message"].as_str()), (Some("failed"), Some("interrupted by restart")), "{failed}");
    let cancelled_before = job(&instance, &slow);
    assert_eq!((cancelled_before["state"].as_str(), cancelled_before["rows_matched"].as_u64()), (Some("cancelled"), Some(kept)), "finished jobs stay as they were");
}

/// Waiting for a child with a deadline: its exit code and its stderr.
trait WaitWithin {
    fn wait_with_output_within(&mut self, limit: Duration) -> (Option<i32>, String);
}

impl WaitWithin for std::process::Child {
    fn wait_with_output_within(&mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                break self.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
        }
        (status.code(), stderr)
    }
}
