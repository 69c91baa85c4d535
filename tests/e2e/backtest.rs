//! Backtests through the real binary: events ingested shuffled, with late arrivals, through
//! `run` raise live alerts (a single-event rule and every correlation type); a backtest of the
//! same rules over the same range raises the same alert ids with the same evidence, and a
//! changed rule shows up as only-live / only-backtest alerts. Progress, cancel, permissions
//! and tenant isolation of backtest jobs, and `securewatch rules backtest` (table, JSON,
//! `--expect` with JUnit, `--data-dir` on a stopped instance).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use securewatch_tests::instance::{binary, curl, Instance};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-backtest-hec-token";

/// A single-event rule, base rules and one correlation of each type, over linux auth logs.
const RULES: &str = "title: Root session opened
id: 6b7a0000-0000-4000-8000-000000000001
level: high
logsource: {product: linux, service: auth}
detection:
  selection:
    message|contains: 'session opened for root'
  condition: selection
---
title: Failed password
id: 6b7a0000-0000-4000-8000-000000000002
name: bt_failed
logsource: {product: linux, service: auth}
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
---
title: Accepted password
id: 6b7a0000-0000-4000-8000-000000000003
name: bt_accepted
logsource: {product: linux, service: auth}
detection:
  selection:
    message|contains: 'Accepted password'
  condition: selection
---
title: Transfer
id: 6b7a0000-0000-4000-8000-000000000004
name: bt_transfer
logsource: {product: linux, service: auth}
detection:
  selection:
    message|startswith: 'transfer'
  condition: selection
---
title: Failures on one host
id: 6b7a0000-0000-4000-8000-000000000011
correlation: {type: event_count, rules: [bt_failed], group-by: [host], timespan: 3m, condition: {gte: 3}}
level: medium
---
title: Failures for many users on one host
id: 6b7a0000-0000-4000-8000-000000000012
correlation: {type: value_count, rules: [bt_failed], group-by: [host], timespan: 10m, condition: {field: user, gte: 3}}
level: medium
---
title: Failure and success on one host
id: 6b7a0000-0000-4000-8000-000000000013
correlation: {type: temporal, rules: [bt_failed, bt_accepted], group-by: [host], timespan: 2m}
level: medium
---
title: Failure then success for one user
id: 6b7a0000-0000-4000-8000-000000000014
correlation: {type: temporal_ordered, rules: [bt_failed, bt_accepted], group-by: [user], timespan: 5m}
level: high
---
title: Large transfers from one host
id: 6b7a0000-0000-4000-8000-000000000015
correlation: {type: value_sum, rules: [bt_transfer], group-by: [host], timespan: 10m, condition: {field: bytes, gt: 1000}}
level: medium
---
title: Large average transfer on one host
id: 6b7a0000-0000-4000-8000-000000000016
correlation: {type: value_avg, rules: [bt_transfer], group-by: [host], timespan: 10m, condition: {field: bytes, gte: 500}}
level: low
";

/// One HEC event: seconds after the start, host, user, message, bytes.
struct Sample {
    offset_s: u64,
    host: &'static str,
    user: &'static str,
    message: &'static str,
    bytes: u64,
}

fn sample(offset_s: u64, host: &'static str, user: &'static str, message: &'static str, bytes: u64) -> Sample {
    Sample { offset_s, host, user, message, bytes }
}

/// The history: bursts of failures, successes after them, transfers, sessions, noise.
fn history() -> Vec<Sample> {
    let mut samples = vec![
        sample(0, "h1", "u1", "Failed password for u1", 0),
        sample(20, "h1", "u2", "Failed password for u2", 0),
        sample(40, "h1", "u3", "Failed password for u3", 0),
        sample(60, "h1", "u1", "Failed password for u1", 0),
        sample(90, "h1", "u1", "Accepted password for u1", 0),
        sample(100, "h2", "u4", "Failed password for u4", 0),
        sample(400, "h2", "u4", "Failed password for u4", 0),
        sample(420, "h2", "u4", "Accepted password for u4", 0),
        sample(200, "h3", "u2", "Failed password for u2", 0),
        sample(230, "h3", "u3", "Failed password for u3", 0),
        sample(260, "h3", "u2", "Failed password for u2", 0),
        sample(500, "h3", "u2", "Failed password for u2", 0),
        sample(30, "h1", "u1", "transfer out", 600),
        sample(300, "h1", "u1", "transfer out", 700),
        sample(50, "h2", "u4", "transfer out", 100),
        sample(350, "h2", "u4", "transfer out", 200),
        sample(120, "h1", "root", "pam: session opened for root by u1", 0),
        sample(450, "h2", "root", "pam: session opened for root by u4", 0),
        sample(470, "h3", "alice", "pam: session opened for alice by alice", 0),
    ];
    for index in 0..20 {
        samples.push(sample(index * 29, "h4", "u9", "Connection closed by peer", 0));
    }
    samples
}

/// Sends `samples` from `start_ms` shuffled, in four requests a moment apart (later requests
/// carry earlier event times: late arrivals within the allowed lateness).
fn send_shuffled(instance: &Instance, token: &str, samples: &[Sample], start_ms: i64, seed: u64) {
    let mut order: Vec<&Sample> = samples.iter().collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let auth = format!("Authorization: Splunk {token}");
    let url = instance.hec_url("/services/collector/event");
    for batch in order.chunks(order.len().div_ceil(4)) {
        let body: String = batch
            .iter()
            .map(|sample| {
                json!({
                    "time": (start_ms + sample.offset_s as i64 * 1000) as f64 / 1000.0,
                    "host": sample.host,
                    "sourcetype": "linux_secure",
                    "event": {"message": sample.message, "user": sample.user, "bytes": sample.bytes},
                })
                .to_string()
            })
            .collect();
        let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
        assert_eq!(status, 200, "{answer}");
        std::thread::sleep(Duration::from_millis(400));
    }
}

fn get(instance: &Instance, path: &str) -> Value {
    let (status, body) = curl(&[&instance.api_url(path)]).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The live alerts once they stopped changing (three seconds without a change).
fn stable_live_alerts(instance: &Instance) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (Value::Null, Instant::now());
    loop {
        let now = get(instance, "/api/v1/alerts?limit=1000");
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(3) || Instant::now() > deadline {
            return last.as_array().cloned().unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Submits a backtest with `body` (the `kind` added); answers the status code and the body.
fn submit(instance: &Instance, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut body = body;
    body["kind"] = json!("backtest");
    let url = instance.api_url("/api/v1/jobs");
    let text = body.to_string();
    let mut args = vec!["-X", "POST", url.as_str(), "-H", "Content-Type: application/json", "--data-binary", text.as_str()];
    let header = token.map(|token| format!("Authorization: Bearer {token}"));
    if let Some(header) = &header {
        args.extend(["-H", header.as_str()]);
    }
    let (status, answer) = curl(&args).unwrap();
    (status, serde_json::from_str(&answer).unwrap_or(Value::String(answer)))
}

/// Waits for job `id` to end; answers its last status.
fn finished(instance: &Instance, token: Option<&str>, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = read_as(instance, token, &format!("/api/v1/jobs/{id}"));
        if !matches!(status["state"].as_str(), Some("queued" | "running")) || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_as(instance: &Instance, token: Option<&str>, path: &str) -> Value {
    let url = instance.api_url(path);
    let header = token.map(|token| format!("Authorization: Bearer {token}"));
    let mut args = vec![url.as_str()];
    if let Some(header) = &header {
        args.extend(["-H", header.as_str()]);
    }
    let (status, body) = curl(&args).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The rows of a job's results by record: `summary`, `rule`, `alert`, `only_live`.
fn results(instance: &Instance, token: Option<&str>, id: &str) -> BTreeMap<String, Vec<Value>> {
    let page = read_as(instance, token, &format!("/api/v1/jobs/{id}/results?limit=10000"));
    assert!(page["next"].is_null(), "one page holds them all");
    let mut records: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in page["rows"].as_array().unwrap() {
        records.entry(row["record"].as_str().unwrap().to_string()).or_default().push(row["detail"].clone());
    }
    records
}

/// Alert id → its sorted evidence event ids.
fn by_id(alerts: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    alerts
        .iter()
        .map(|alert| {
            let ids = alert["event_ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_string()).collect();
            (alert["id"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

fn range(start_ms: i64) -> (f64, f64) {
    ((start_ms - 60_000) as f64 / 1000.0, (Utc::now().timestamp_millis() + 60_000) as f64 / 1000.0)
}

#[test]
fn a_backtest_raises_the_live_alerts_and_a_changed_rule_shows_in_the_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("auth.yml"), RULES).unwrap();
    let config = format!(
        "[detection]\nenabled = true\nrules_dir = \"{}\"\n[dataflow]\nlateness_secs = 1800\nretention_secs = 1800\n",
        rules.display()
    );
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    let samples = history();
    // Ten minutes of history ending a minute ago, well inside the allowed lateness.
    let start_ms = Utc::now().timestamp_millis() - 660_000;
    send_shuffled(&instance, TOKEN, &samples, start_ms, 7);
    instance.wait_events("limit=1000", samples.len()).unwrap();
    let live = stable_live_alerts(&instance);
    let kinds: BTreeSet<&str> = live.iter().map(|alert| alert["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["rule", "event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg"]),
        "every kind fired live: {live:#?}"
    );

    // The same rules (the server's rules directory) over the same range.
    let (from, to) = range(start_ms);
    let (status, job) = submit(&instance, None, json!({"rules": "", "from": from, "to": to}));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let done = finished(&instance, None, &id);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["kind"], "backtest");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["backtest"]["events_read"], samples.len(), "{done}");
    let records = results(&instance, None, &id);
    let alerts = &records["alert"];
    assert_eq!(by_id(alerts), by_id(&live), "the backtest raises exactly the live alert ids with the same evidence");
    for alert in alerts {
        assert_eq!(alert["comparison"], "same", "{alert}");
        let evidence: BTreeSet<&str> = alert["events"].as_array().unwrap().iter().map(|event| event["id"].as_str().unwrap()).collect();
        let ids: BTreeSet<&str> = alert["event_ids"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
        assert_eq!(evidence, ids, "every evidence event comes with the alert");
    }
    let summary = &records["summary"][0];
    assert_eq!((summary["same"].as_u64(), summary["only_backtest"].as_u64(), summary["only_live"].as_u64()), (Some(live.len() as u64), Some(0), Some(0)));
    assert_eq!(summary["events_read"], samples.len());
    let rule = |id: &str| records["rule"].iter().find(|rule| rule["rule_id"] == id).unwrap_or_else(|| panic!("no row of {id}")).clone();
    let failures = samples.iter().filter(|sample| sample.message.starts_with("Failed")).count();
    assert_eq!(rule("6b7a0000-0000-4000-8000-000000000002")["matches"], failures);
    let event_count = rule("6b7a0000-0000-4000-8000-000000000011");
    let live_counts = live.iter().filter(|alert| alert["kind"] == "event_count").count();
    assert_eq!(event_count["alerts"], live_counts);
    let per_day: u64 = event_count["alerts_per_day"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(per_day, live_counts as u64);
    assert!(!event_count["top_groups"].as_array().unwrap().is_empty(), "{event_count}");

    // A changed rule set sent as YAML: the session rule widened, the event count out of reach.
    let changed = RULES.replace("'session opened for root'", "'session opened'").replace("condition: {gte: 3}", "condition: {gte: 50}");
    let (status, job) = submit(&instance, None, json!({"rules": changed, "from": from, "to": to}));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(finished(&instance, None, &id)["state"], "done");
    let records = results(&instance, None, &id);
    let sessions_not_root = samples.iter().filter(|sample| sample.message.contains("session opened") && sample.user != "root").count();
    let summary = &records["summary"][0];
    assert_eq!(summary["only_backtest"], sessions_not_root, "{summary}");
    assert_eq!(summary["only_live"], live_counts, "{summary}");
    assert_eq!(summary["same"], live.len() - live_counts, "{summary}");
    let only_live = &records["only_live"];
    assert!(only_live.iter().all(|alert| alert["kind"] == "event_count"), "{only_live:#?}");
    let only_backtest: Vec<&Value> = records["alert"].iter().filter(|alert| alert["comparison"] == "only_backtest").collect();
    assert!(only_backtest.iter().all(|alert| alert["events"][0]["message"] == "pam: session opened for alice by alice"), "{only_backtest:#?}");
    let rows = &records["rule"];
    let changed_count = rows.iter().find(|rule| rule["rule_id"] == "6b7a0000-0000-4000-8000-000000000011").unwrap();
    assert_eq!((changed_count["alerts"].as_u64(), changed_count["only_live"].as_u64()), (Some(0), Some(live_counts as u64)));

    // Bad submissions are refused with the reason.
    let (status, answer) = submit(&instance, None, json!({"rules": "../", "from": from}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("inside the server's rules directory"), "{answer}");
    let (status, answer) = submit(&instance, None, json!({"rules": "title: broken\nlogsource: {product: linux}\ndetection: {}\n"}));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("rules: 1 rejected"), "{answer}");
}

/// A rule over the failures and a correlation, sent as YAML by the tenant tests.
const FAILURE_RULES: &str = "title: Failed password
id: 6b7a0000-0000-4000-8000-000000000021
logsource: {product: linux, service: auth}
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
level: low
";

/// Stores `count` failures of `tenant` (its HEC token), one every 100 ms from `start_ms`,
/// over `hosts` hosts, in requests of 1000.
fn store_failures(instance: &Instance, token: &str, count: usize, hosts: usize, start_ms: i64) {
    let auth = format!("Authorization: Splunk {token}");
    let url = instance.hec_url("/services/collector/event");
    let all: Vec<usize> = (0..count).collect();
    for batch in all.chunks(1000) {
        let body: String = batch
            .iter()
            .map(|n| {
                json!({
                    "time": (start_ms + *n as i64 * 100) as f64 / 1000.0,
                    "host": format!("host-{}", n % hosts),
                    "sourcetype": "linux_secure",
                    "event": {"message": format!("Failed password for user-{n}")},
                })
                .to_string()
            })
            .collect();
        let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

/// Stored events of every tenant (the admin's search), once there are `count`.
fn wait_stored(instance: &Instance, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body = json!({"query": "events | count", "from": "-3h", "wait_ms": 10000}).to_string();
        let url = instance.api_url("/api/v1/search");
        let (status, answer) = curl(&["-X", "POST", &url, "-H", "Content-Type: application/json", "--data-binary", &body]).unwrap();
        assert_eq!(status, 200, "{answer}");
        let stored = serde_json::from_str::<Value>(&answer).unwrap()["rows"][0]["count_"].as_u64().unwrap_or(0);
        if stored >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{stored} of {count} events stored");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn token_of(instance: &Instance, tenant: &str, role: &str) -> String {
    let output = Command::new(binary())
        .args(["token", "create", "--name", &format!("{tenant}-{role}"), "--role", role, "--tenant", tenant, "--data-dir"])
        .arg(&instance.data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn backtest_jobs_report_progress_keep_what_a_cancel_found_and_read_only_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::new();
    for tenant in ["acme", "globex"] {
        config.push_str(&format!("[[sources.hec.tokens]]\nname = \"{tenant}\"\ntoken = \"{tenant}-hec-token-0123456789\"\ntenant = \"{tenant}\"\n\n"));
    }
    let instance = Instance::start(dir.path(), &config, &[]).unwrap();
    let start_ms = Utc::now().timestamp_millis() - 3_600_000;
    let (acme_events, globex_events) = (20_000, 50);
    store_failures(&instance, "acme-hec-token-0123456789", acme_events, 40, start_ms);
    store_failures(&instance, "globex-hec-token-0123456789", globex_events, 3, start_ms);
    wait_stored(&instance, (acme_events + globex_events) as u64);
    let (acme, globex) = (token_of(&instance, "acme", "engineer"), token_of(&instance, "globex", "engineer"));
    let (from, to) = ((start_ms - 1000) as f64 / 1000.0, Utc::now().timestamp_millis() as f64 / 1000.0);
    let body = json!({"rules": FAILURE_RULES, "from": from, "to": to, "chunk_events": 100});

    // Who may run one: a viewer has no jobs:run, an analyst no backtests:run.
    let (status, _) = submit(&instance, Some(&token_of(&instance, "acme", "viewer")), body.clone());
    assert_eq!(status, 403);
    let (status, answer) = submit(&instance, Some(&token_of(&instance, "acme", "analyst")), body.clone());
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("backtests:run"), "{answer}");

    // Progress while it runs, then a cancel that keeps what was found. A run that ends before
    // the cancel lands is tried again.
    let mut cancelled = None;
    for _attempt in 0..4 {
        let (status, job) = submit(&instance, Some(&acme), body.clone());
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        let mut seen: Vec<Value> = Vec::new();
        loop {
            let status = read_as(&instance, Some(&acme), &format!("/api/v1/jobs/{id}"));
            let running = status["state"] == "running";
            let read = status["backtest"]["events_read"].as_u64().unwrap_or(0);
            seen.push(status);
            if !running && read > 0 {
                break;
            }
            if running && read >= 300 {
                let url = instance.api_url(&format!("/api/v1/jobs/{id}"));
                let (code, _) = curl(&["-X", "DELETE", &url, "-H", &format!("Authorization: Bearer {acme}")]).unwrap();
                assert_eq!(code, 200);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for pair in seen.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(a["progress"].as_f64() <= b["progress"].as_f64(), "progress only grows: {a} {b}");
            assert!(a["backtest"]["events_read"].as_u64() <= b["backtest"]["events_read"].as_u64(), "{a} {b}");
            assert!(a["backtest"]["cursor"].as_str() <= b["backtest"]["cursor"].as_str(), "{a} {b}");
        }
        let end = finished(&instance, Some(&acme), &id);
        if end["state"] == "cancelled" {
            cancelled = Some((id, end));
            break;
        }
        assert_eq!(end["state"], "done", "{end}");
        assert_eq!(end["backtest"]["events_read"], acme_events, "a whole run reads every acme event: {end}");
    }
    let (id, end) = cancelled.expect("one of four runs was cancelled while running");
    let read = end["backtest"]["events_read"].as_u64().unwrap();
    assert!(read >= 300 && read < acme_events as u64, "{end}");
    assert!(end["progress"].as_f64().unwrap() < 1.0, "{end}");
    let records = results(&instance, Some(&acme), &id);
    let summary = &records["summary"][0];
    assert_eq!((summary["cancelled"].as_bool(), summary["events_read"].as_u64()), (Some(true), Some(read)), "{summary}");
    let alerts = &records["alert"];
    assert_eq!(alerts.len() as u64, read, "one alert per failure read, kept after the cancel");
    assert!(alerts.iter().all(|alert| alert["tenant"] == "acme"));

    // Tenant isolation: globex's backtest reads globex's 50 events only; acme's job is not
    // globex's to see.
    let (status, job) = submit(&instance, Some(&globex), body.clone());
    assert_eq!(status, 202, "{job}");
    let globex_id = job["id"].as_str().unwrap().to_string();
    let end = finished(&instance, Some(&globex), &globex_id);
    assert_eq!((end["state"].as_str(), end["backtest"]["events_read"].as_u64()), (Some("done"), Some(globex_events as u64)), "{end}");
    assert_eq!(end["tenants"], json!(["globex"]));
    let records = results(&instance, Some(&globex), &globex_id);
    assert_eq!(records["alert"].len(), globex_events);
    assert!(records["alert"].iter().all(|alert| alert["tenant"] == "globex" && alert["events"][0]["tenant"] == "globex"));
    let url = instance.api_url(&format!("/api/v1/jobs/{id}"));
    let (status, _) = curl(&[&url, "-H", &format!("Authorization: Bearer {globex}")]).unwrap();
    assert_eq!(status, 404, "acme's job reads as absent to globex");
}

/// Runs `securewatch rules backtest` with `args`; answers the exit code, stdout and stderr.
fn rules_backtest(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary()).args(["rules", "backtest"]).args(args).env_remove("SECUREWATCH_API_TOKEN").output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

#[test]
fn the_cli_prints_checks_expectations_with_junit_and_reads_a_stopped_instance() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("auth.yml"), RULES).unwrap();
    let config = format!(
        "[detection]\nenabled = true\nrules_dir = \"{}\"\n[dataflow]\nlateness_secs = 1800\nretention_secs = 1800\n",
        rules.display()
    );
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    let samples = history();
    let start_ms = Utc::now().timestamp_millis() - 660_000;
    send_shuffled(&instance, TOKEN, &samples, start_ms, 19);
    instance.wait_events("limit=1000", samples.len()).unwrap();
    let live = stable_live_alerts(&instance);
    let (from, to) = range(start_ms);
    let (from, to) = (format!("{from}"), format!("{to}"));
    let rules_dir = rules.display().to_string();
    let (server, token) = (instance.api_url(""), instance.api_token());
    let remote = ["--from", from.as_str(), "--to", to.as_str(), "--server", server.as_str(), "--token", token.as_str()];

    // The table: one line per rule, and the summary on stderr.
    let (code, stdout, stderr) = rules_backtest(&[&[rules_dir.as_str(), "--quiet"][..], &remote[..]].concat());
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("RULE") && lines[0].contains("ONLY LIVE"), "{stdout}");
    assert_eq!(lines.len(), 1 + 10, "a header and the ten rules: {stdout}");
    assert!(stderr.contains(&format!("{} events read from sqlite", samples.len())), "{stderr}");
    assert!(stderr.contains(&format!("{} same, 0 only backtest, 0 only live", live.len())), "{stderr}");

    // Expectations: met (exit 0), then broken (exit 1); JUnit either way.
    let roots = samples.iter().filter(|sample| sample.message.contains("session opened for root")).count();
    let expect = dir.path().join("expect.yml");
    let junit = dir.path().join("junit.xml");
    let (expect_arg, junit_arg) = (expect.display().to_string(), junit.display().to_string());
    std::fs::write(
        &expect,
        format!(
            "defaults:\n  unexpected_detections: fail\nexpectations:\n  - rule: Root session opened\n    exactly: {roots}\n  - rule: 6b7a0000-0000-4000-8000-000000000011\n    at_least: 1\n  - rule: Failures for many users on one host\n    at_least: 1\n  - rule: 6b7a0000-0000-4000-8000-000000000013\n    at_least: 1\n  - rule: 6b7a0000-0000-4000-8000-000000000014\n    at_least: 1\n  - rule: 6b7a0000-0000-4000-8000-000000000015\n    at_least: 1\n  - rule: 6b7a0000-0000-4000-8000-000000000016\n    at_most: 100\n"
        ),
    )
    .unwrap();
    let checked = [rules_dir.as_str(), "--quiet", "--expect", expect_arg.as_str(), "--junit", junit_arg.as_str(), "--format", "json"];
    let (code, stdout, stderr) = rules_backtest(&[&checked[..], &remote[..]].concat());
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["same"], live.len());
    assert_eq!(by_id(report["alerts"].as_array().unwrap()), by_id(&live));
    assert_eq!(report["expectations"].as_array().unwrap().len(), 7);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuites tests=\"7\" failures=\"0\">"), "{xml}");
    std::fs::write(&expect, format!("expectations:\n  - rule: Root session opened\n    exactly: {}\n", roots + 1)).unwrap();
    let (code, _, stderr) = rules_backtest(&[&checked[..], &remote[..]].concat());
    assert_eq!(code, 1, "a failed expectation is the verdict: {stderr}");
    assert!(stderr.contains(&format!("FAILED Root session opened: expected exactly {}, got {roots}", roots + 1)), "{stderr}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(&format!("<failure message=\"expected exactly {}, got {roots}\">", roots + 1)), "{xml}");
    assert!(xml.contains("classname=\"securewatch.backtest.unexpected\""), "unexpected rules are listed (warn): {xml}");

    // A stopped instance's data directory, without the server: the same alerts, compared with
    // the live alerts it stored.
    let config_path = instance.config_path.display().to_string();
    instance.terminate().unwrap();
    let data_dir = dir.path().display().to_string();
    let local = [rules_dir.as_str(), "--quiet", "--format", "json", "--from", from.as_str(), "--to", to.as_str(), "--data-dir", data_dir.as_str(), "--config", config_path.as_str()];
    let (code, stdout, stderr) = rules_backtest(&local);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(by_id(report["alerts"].as_array().unwrap()), by_id(&live));
    assert_eq!((report["summary"]["same"].as_u64(), report["summary"]["only_live"].as_u64()), (Some(live.len() as u64), Some(0)));
    let (code, _, stderr) = rules_backtest(&["missing-rules", "--from", "-1h", "--data-dir", "/nonexistent"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds no store"), "{stderr}");
}
