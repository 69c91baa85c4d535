//! Sigma detection inside `securewatch run`: rules raise alerts on matching events, the alerts
//! API lists them with their events, and editing the rules directory reloads them without a
//! restart (a broken edit keeps the old rules and is reported).

use std::time::{Duration, Instant};

use chrono::Utc;
use securewatch_tests::instance::{curl, Instance};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-detection-token";

const FAILED_LOGIN_RULE: &str = "title: Failed SSH password
id: 5d1c8a4e-0000-4000-8000-000000000001
status: test
level: medium
tags:
  - attack.credential_access
  - attack.t1110
logsource:
  product: linux
  service: auth
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
";

const ROOT_LOGIN_RULE: &str = "title: Root session opened
id: 5d1c8a4e-0000-4000-8000-000000000002
level: high
logsource:
  product: linux
  service: auth
detection:
  selection:
    message|contains|all:
      - 'session opened'
      - 'root'
  condition: selection
";

fn send(instance: &Instance, sourcetype: &str, message: &str) {
    send_from(instance, "bastion-1", sourcetype, message);
}

fn send_from(instance: &Instance, host: &str, sourcetype: &str, message: &str) {
    let body = json!({
        "time": Utc::now().timestamp_millis() as f64 / 1000.0,
        "host": host,
        "sourcetype": sourcetype,
        "event": {"message": message},
    })
    .to_string();
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
    assert_eq!(status, 200, "{answer}");
}

fn alerts(instance: &Instance, query: &str) -> Vec<Value> {
    let (status, body) = curl(&[&instance.api_url(&format!("/api/v1/alerts?{query}"))]).unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The alerts of `query` once `done` holds for them (or the last answer at the deadline).
fn alerts_when(instance: &Instance, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = alerts(instance, query);
        if done(&found) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts an instance whose rules directory holds `file` with `text`; returns the directory too.
fn start_with_rules(dir: &tempfile::TempDir, file: &str, text: &str, extra: &str) -> (Instance, std::path::PathBuf) {
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join(file), text).unwrap();
    let config = format!("[detection]\nenabled = true\nrules_dir = \"{}\"\n{extra}", rules.display());
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    (instance, rules)
}

#[test]
fn rules_raise_alerts_with_their_events_and_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (instance, rules) = start_with_rules(&dir, "ssh.yml", FAILED_LOGIN_RULE, "poll_interval_ms = 100\n");

    send(&instance, "linux_secure", "Failed password for root from 203.0.113.9 port 22 ssh2");
    send(&instance, "linux_secure", "Accepted publickey for alice");
    send(&instance, "nginx", "Failed password appears in a web log, not an auth log");
    let raised = alerts_when(&instance, "", |found| !found.is_empty());
    assert_eq!(raised.len(), 1, "one auth event matches; the web log is another log source: {raised:?}");
    let alert = &raised[0];
    assert_eq!(alert["rule_id"], "5d1c8a4e-0000-4000-8000-000000000001");
    assert_eq!(alert["level"], "medium");
    assert_eq!(alert["kind"], "rule");
    assert_eq!(alert["tags"], json!(["attack.credential_access", "attack.t1110"]));
    let id = alert["id"].as_str().unwrap();
    let (status, body) = curl(&[&instance.api_url(&format!("/api/v1/alerts/{id}"))]).unwrap();
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["events"][0]["message"], "Failed password for root from 203.0.113.9 port 22 ssh2");
    let (status, _) = curl(&[&instance.api_url("/api/v1/alerts/00000000000000000000000000000001")]).unwrap();
    assert_eq!(status, 404);
    let (status, _) = curl(&[&instance.api_url("/api/v1/alerts?level=severe")]).unwrap();
    assert_eq!(status, 400);

    // A new rule file is picked up by polling; events after the reload see it.
    std::fs::write(rules.join("root.yml"), ROOT_LOGIN_RULE).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let root_alerts = loop {
        send(&instance, "linux_secure", "pam_unix(sshd:session): session opened for user root");
        let found = alerts(&instance, "level=high");
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!root_alerts.is_empty(), "the added rule raised no alert");
    assert!(root_alerts.iter().all(|alert| alert["rule_id"] == "5d1c8a4e-0000-4000-8000-000000000002"));

    // A broken rule: the reload is refused with the reason and the old rules keep running.
    std::fs::write(rules.join("broken.yml"), "title: Broken\nlogsource:\n  product: linux\ndetection:\n  selection:\n    message: x\n  condition: selection and missing\n").unwrap();
    let (status, body) = curl(&["-X", "POST", &instance.api_url("/api/v1/rules/reload")]).unwrap();
    assert_eq!(status, 422, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["applied"], false);
    let new_errors = report["new_errors"].as_array().unwrap();
    assert_eq!(new_errors.len(), 1, "{report}");
    assert_eq!(new_errors[0]["file"], "broken.yml", "paths relative to the rules directory: {report}");
    let before = alerts(&instance, "rule=5d1c8a4e-0000-4000-8000-000000000001").len();
    send(&instance, "linux_secure", "Failed password for admin from 198.51.100.4 port 22 ssh2");
    let after = alerts_when(&instance, "rule=5d1c8a4e-0000-4000-8000-000000000001", |found| found.len() > before);
    assert_eq!(after.len(), before + 1, "the old rules still run after a refused reload");

    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    assert!(metrics.contains("securewatch_detection_reloads_total{outcome=\"refused\"}"), "{metrics}");
    assert!(metrics.contains("securewatch_alerts_total"), "{metrics}");
    assert!(instance.terminate().unwrap().success());
}

const BRUTE_FORCE: &str = "title: Failed SSH password
id: 5d1c8a4e-0000-4000-8000-000000000011
name: failed_ssh_password
level: low
logsource:
  product: linux
  service: auth
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
---
title: SSH brute force
id: 5d1c8a4e-0000-4000-8000-000000000012
level: high
tags:
  - attack.t1110
correlation:
  type: event_count
  rules:
    - failed_ssh_password
  group-by:
    - host
  timespan: 5m
  condition:
    gte: 3
";

#[test]
fn a_correlation_rule_raises_one_alert_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let (instance, _) = start_with_rules(&dir, "brute.yml", BRUTE_FORCE, "");

    for attempt in 0..4 {
        send_from(&instance, "bastion-7", "linux_secure", &format!("Failed password for root port {attempt}"));
    }
    send_from(&instance, "bastion-8", "linux_secure", "Failed password for root port 9");
    let raised = alerts_when(&instance, "", |found| !found.is_empty());
    assert_eq!(raised.len(), 1, "one group crossed the threshold; the base rule raises none itself: {raised:?}");
    let alert = &raised[0];
    assert_eq!(alert["kind"], "event_count");
    assert_eq!(alert["rule_id"], "5d1c8a4e-0000-4000-8000-000000000012");
    assert_eq!(alert["group"], json!({"host": "bastion-7"}));
    let events = alert["event_ids"].as_array().unwrap().len();
    assert!((3..=4).contains(&events), "{alert}");
    let (status, body) = curl(&[&instance.api_url(&format!("/api/v1/alerts/{}", alert["id"].as_str().unwrap()))]).unwrap();
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["events"].as_array().unwrap().len(), events, "{detail}");
    // Still exactly one alert once everything is durable (no re-firing while the condition holds).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts(&instance, "").len(), 1);
    assert!(instance.terminate().unwrap().success());
}

#[test]
fn a_correlation_added_by_a_reload_sees_the_events_from_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let base_rule_only = BRUTE_FORCE.split("\n---\n").next().unwrap().to_string() + "\n";
    let (instance, rules) = start_with_rules(&dir, "brute.yml", &base_rule_only, "poll_interval_ms = 0\n");
    for attempt in 0..3 {
        send_from(&instance, "bastion-7", "linux_secure", &format!("Failed password for root port {attempt}"));
    }
    // Without the correlation the base rule raises its own alerts: once they are there, the
    // events are stored.
    let single = alerts_when(&instance, "kind=rule", |found| found.len() == 3);
    assert_eq!(single.len(), 3, "{single:?}");

    std::fs::write(rules.join("brute.yml"), BRUTE_FORCE).unwrap();
    let (status, body) = curl(&["-X", "POST", &instance.api_url("/api/v1/rules/reload")]).unwrap();
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["new_correlations"], json!(["5d1c8a4e-0000-4000-8000-000000000012"]), "{report}");
    assert_eq!(report["backfill"]["matches"], 3, "{report}");
    assert_eq!(report["backfill"]["complete"], true, "{report}");

    // No new event: the correlation fires on the three stored ones.
    let raised = alerts_when(&instance, "kind=event_count", |found| !found.is_empty());
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["group"], json!({"host": "bastion-7"}));
    assert_eq!(raised[0]["event_ids"].as_array().unwrap().len(), 3, "{raised:?}");

    // Two attempts on another host (stored when HEC answers): below the threshold, they wait in
    // that group's window.
    for attempt in 0..2 {
        send_from(&instance, "bastion-9", "linux_secure", &format!("Failed password for root port {attempt}"));
    }
    // Reloading the same set again brings nothing new and feeds nothing.
    let (status, body) = curl(&["-X", "POST", &instance.api_url("/api/v1/rules/reload")]).unwrap();
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["new_correlations"], json!([]), "{report}");
    assert!(report["backfill"].is_null(), "{report}");
    // The unchanged correlation kept its windows: a third attempt on the other host completes
    // the window that began before the reload.
    send_from(&instance, "bastion-9", "linux_secure", "Failed password for root port 2");
    let both = alerts_when(&instance, "kind=event_count", |found| found.len() == 2);
    assert_eq!(both.len(), 2, "{both:?}");
    let completed = both.iter().find(|alert| alert["group"] == json!({"host": "bastion-9"})).expect("bastion-9's alert");
    assert_eq!(completed["event_ids"].as_array().unwrap().len(), 3, "{completed}");
    // The first alert is as it was raised.
    let first = both.iter().find(|alert| alert["group"] == json!({"host": "bastion-7"})).expect("bastion-7's alert");
    assert_eq!(first, &raised[0]);
    assert!(instance.terminate().unwrap().success());
}
