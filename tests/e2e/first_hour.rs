//! The rough edges of a newcomer's first hour (issue 25), through the real binary: refused configs, messages, start-up order, metrics at zero, rule reports that explain a zero.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use securewatch_tests::instance::{binary, config_text, curl, Instance, Ports};
use serde_json::Value;

fn securewatch(args: &[&str]) -> Output {
    Command::new(binary()).args(args).env_remove("SECUREWATCH_HEC_TOKEN").output().expect("run securewatch")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn config_check_refuses_unusable_settings_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[sources.syslog]\nudp_listen = \"off\"\ntcp_listen = \"off\"\n",
            vec!["[sources.syslog]", "nothing to listen on", "enabled = false"],
        ),
        ("[log]\nlevel = \"loud\"\n", vec!["[log]", "\"loud\"", "trace, debug, info, warn, error, off"]),
        (
            "[dataflow]\nlateness_secs = 60\nretention_secs = 30\n",
            vec!["[dataflow]", "retention_secs (30 s)", "lateness_secs (60 s)"],
        ),
    ];
    for (number, (config, expected)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("case{number}.toml"), config);
        let output = securewatch(&["config", "check", &file]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{config}: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{config}: {part:?} not in {stderr}");
        }
        assert!(!stderr.contains(" ms"), "the keys are in seconds: {stderr}");
    }
}

#[test]
fn run_refuses_a_syslog_source_with_nothing_to_listen_on_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let config = format!(
        "[api]\nlisten = \"127.0.0.1:{}\"\n[sources.hec]\nlisten = \"127.0.0.1:{}\"\n\
         [sources.syslog]\nudp_listen = \"off\"\ntcp_listen = \"off\"\n",
        ports.api, ports.hec
    );
    let file = write(dir.path(), "syslog-off.toml", &config);
    let data = dir.path().join("data");
    let output = securewatch(&["run", "--config", &file, "--data-dir", data.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nothing to listen on") && !stderr.contains("a source stopped"), "{stderr}");
    assert!(!data.exists(), "nothing started");
}

#[test]
fn config_check_lists_what_each_role_starts() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let worker = repository.join("deploy/worker.toml");
    let output = securewatch(&["config", "check", worker.to_str().unwrap(), "--role", "worker"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("securewatch worker: reading kafka, API 0.0.0.0:8080"), "{stdout}");
    assert!(!stdout.contains("HEC") && !stdout.contains("syslog"), "a worker starts no listener for events: {stdout}");
    let output = securewatch(&["config", "check", worker.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    // The admin token comes from the environment where the server runs: a warning here.
    assert!(stdout.contains("warning: [api.auth] tokens[\"admin\"]: token_env: SECUREWATCH_API_TOKEN is not set"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|line| !line.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[1].contains("securewatch ingest: HEC") && lines[2].contains("securewatch worker:"), "{stdout}");
    assert!(lines[3].contains("API access control: on"), "{stdout}");
    assert!(!lines[2].contains("HEC"), "{stdout}");

    let example = repository.join("deploy/securewatch.example.toml");
    let output = securewatch(&["config", "check", example.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("securewatch run: HEC 127.0.0.1:8088, syslog udp 127.0.0.1:5514"), "{stdout}");
    let output = securewatch(&["config", "check", example.to_str().unwrap(), "--role", "worker"]);
    assert!(text(&output.stderr).contains("[bus] kind must be"), "{}", text(&output.stderr));
}

#[test]
fn help_says_what_securewatch_is_for_its_user() {
    let output = securewatch(&["--help"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("SecureWatch collects security events"), "{stdout}");
    assert!(stdout.contains("Start with `securewatch run`"), "{stdout}");
    assert!(!stdout.contains("runtime wiring"), "developer text: {stdout}");
}

/// `error: ...` with the OS error exactly once.
fn assert_os_error_once(output: &Output, what: &str) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{what}: {stderr}");
    let line = stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_else(|| panic!("{what}: {stderr}"));
    assert_eq!(line.matches("(os error").count(), 1, "{what}: {line}");
}

#[test]
fn os_errors_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let output = securewatch(&["config", "check", missing.to_str().unwrap()]);
    assert_os_error_once(&output, "missing config file");
    assert!(text(&output.stderr).contains("nope.toml: cannot read"), "{}", text(&output.stderr));

    let output = securewatch(&["rules", "check", dir.path().join("no-rules").to_str().unwrap()]);
    assert_os_error_once(&output, "missing rules directory");

    let ports = Ports::free();
    let taken = TcpListener::bind(("127.0.0.1", ports.hec)).unwrap();
    let file = write(dir.path(), "hec.toml", &config_text(ports, ""));
    let output = securewatch(&["run", "--config", &file, "--data-dir", dir.path().join("data").to_str().unwrap()]);
    assert_os_error_once(&output, "busy HEC port");
    assert!(text(&output.stderr).contains(&format!("HEC cannot listen on 127.0.0.1:{}", ports.hec)));
    drop(taken);
}

#[test]
fn a_taken_api_port_stops_run_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let taken = TcpListener::bind(("127.0.0.1", ports.api)).unwrap();
    let file = write(dir.path(), "api.toml", &config_text(ports, ""));
    let data = dir.path().join("data");
    let started = Instant::now();
    let output = securewatch(&["run", "--config", &file, "--data-dir", data.to_str().unwrap()]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains(&format!("API: cannot listen on 127.0.0.1:{}", ports.api)), "{stderr}");
    assert!(!stdout.contains("HEC token"), "no token generated or printed: {stdout}");
    assert!(!data.exists(), "no data directory, store or token file: {:?}", std::fs::read_dir(&data).ok());
    for started in ["HEC source listening", "Listening.", "dataflow", "SecureWatch is running"] {
        assert!(!stderr.contains(started), "{started:?} before the failure: {stderr}");
    }
    drop(taken);
}

#[test]
fn metrics_list_source_counters_at_zero_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let (status, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    assert_eq!(status, 200);
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    };
    for source in ["source=\"hec\"", "source=\"syslog\""] {
        for reason in ["reason=\"queue_full\"", "reason=\"too_large\""] {
            assert_eq!(value("securewatch_source_rejected_total", &[source, reason]), Some(0.0), "{metrics}");
        }
        assert_eq!(value("securewatch_source_received_total", &[source]), Some(0.0), "{metrics}");
        assert_eq!(value("securewatch_source_accepted_total", &[source]), Some(0.0), "{metrics}");
    }
    for counter in ["securewatch_store_written_total", "securewatch_rollup_late_events_total", "securewatch_parse_failures_total"] {
        assert_eq!(value(counter, &[]), Some(0.0), "{counter}: {metrics}");
    }
}

const AUTH_RULE: &str = "title: Failed login
id: 7c1e0c2a-0000-4000-8000-000000000001
name: failed_login
logsource:
    product: linux
    service: auth
detection:
    selection:
        outcome: failure
    condition: selection
level: low
";

const EVENTS: &str = r#"{"time": "2026-03-01T10:00:00Z", "user": "alice", "outcome": "failure"}
{"time": "2026-03-01T10:00:10Z", "user": "alice", "outcome": "failure"}
{"time": "2026-03-01T10:00:20Z", "user": "bob", "outcome": "success"}
"#;

#[test]
fn rules_test_counts_events_no_rule_was_tried_on_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let rule = write(dir.path(), "rule.yml", AUTH_RULE);
    let events = write(dir.path(), "events.jsonl", EVENTS);
    let output = securewatch(&["rules", "test", &rule, "--events", &events]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("warning: 3 of 3 events reached no rule"), "{stdout}");
    assert!(stdout.contains("--logsource any") && stdout.contains("--logsource product=linux,service=auth"), "{stdout}");
    let output = securewatch(&["rules", "test", &rule, "--events", &events, "--format", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events_unrouted"], 3, "{report}");
    assert!(report["unrouted_hint"].as_str().unwrap().contains("--logsource any"), "{report}");
    // The fix it names gives the right answer, and nothing is left unrouted.
    let output = securewatch(&["rules", "test", &rule, "--events", &events, "--format", "json", "--logsource", "any"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((report["events_unrouted"].as_u64(), report["rules"][0]["matches"].as_u64()), (Some(0), Some(2)), "{report}");
    let output = securewatch(&["rules", "test", &rule, "--events", &events, "--logsource", "product=linux,service=auth"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains(": 2 matches (lines 1, 2)") && !stdout.contains("reached no rule"), "{stdout}");
}

#[test]
fn rules_test_reports_matches_a_correlation_skipped_for_a_missing_group_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let correlation = "---
title: Repeated failures from one address
id: 7c1e0c2a-0000-4000-8000-000000000002
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [src_ip]
    timespan: 10m
    condition:
        gte: 2
level: high
";
    let rules = write(dir.path(), "rules.yml", &format!("{AUTH_RULE}{correlation}"));
    let events = write(dir.path(), "events.jsonl", EVENTS);
    let args = ["rules", "test", &rules, "--events", &events, "--logsource", "any"];
    let stdout = text(&securewatch(&args).stdout);
    assert!(stdout.contains("Repeated failures from one address (event_count, timespan 600s): 0 alerts"), "{stdout}");
    assert!(stdout.contains("  2 matches skipped: they lack a group-by field"), "{stdout}");
    let output = securewatch(&[&args[..], &["--format", "json"]].concat());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["correlations"][0]["skipped_missing_field"], 2, "{report}");
    // With the field present nothing is skipped and the correlation fires.
    let with_address = EVENTS.replace("\"user\"", "\"src_ip\": \"203.0.113.9\", \"user\"");
    let events = write(dir.path(), "events-with-address.jsonl", &with_address);
    let args = ["rules", "test", &rules, "--events", &events, "--logsource", "any", "--format", "json"];
    let report: Value = serde_json::from_slice(&securewatch(&args).stdout).unwrap();
    let correlation = &report["correlations"][0];
    assert_eq!((correlation["skipped_missing_field"].as_u64(), correlation["alert_count"].as_u64()), (Some(0), Some(1)), "{report}");
}

#[test]
fn rules_check_summary_adds_up_and_keeps_ids_and_titles_apart() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(&rules, "a-good.yml", AUTH_RULE);
    let bad_regex = AUTH_RULE
        .replace("000000000001", "000000000003")
        .replace("name: failed_login\n", "")
        .replace("outcome: failure", "outcome|re: '(unclosed'");
    write(&rules, "b-regex.yml", &bad_regex);
    write(&rules, "c-syntax.yml", "title: Broken YAML\ndetection:\n  selection: [unclosed\n  condition: selection\n");
    let output = securewatch(&["rules", "check", rules.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("3 documents: 1 rule, 0 filters, 0 correlations loaded; 2 rejected"), "{stdout}");
    let syntax = stdout.lines().find(|line| line.contains("c-syntax.yml")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(syntax.contains("c-syntax.yml: -: ") && syntax.ends_with("(title: Broken YAML)"), "{syntax}");
}
