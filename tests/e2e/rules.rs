//! `securewatch rules check|test` through the real binary, with the fixture rules and events in
//! `tests/fixtures/` (correlations: `tests/fixtures/correlations/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use securewatch_tests::instance::binary;
use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(path)
}

fn securewatch(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run securewatch")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn check_accepts_a_valid_directory() {
    let output = securewatch(&["rules", "check", path(&fixture("rules"))]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("4 documents: 3 rules, 0 filters, 1 correlation loaded; 0 rejected"), "{text}");
}

#[test]
fn check_lists_each_rejection_and_fails() {
    let output = securewatch(&["rules", "check", path(&fixture("rules-broken"))]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let file = fixture("rules-broken/broken.yml");
    let file = file.display();
    assert!(text.contains(&format!("{file}: 5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a11: unknown detection identifier: other")), "{text}");
    assert!(text.contains(&format!("{file}: 5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a12: invalid regex pattern")), "{text}");
    assert!(text.contains(&format!("{file}: 5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a13: correlation references rules")), "{text}");
    assert!(!text.contains("1a10:"), "the valid rule is not reported: {text}");
    assert!(text.contains("4 documents: 1 rule, 0 filters, 0 correlations loaded; 3 rejected"), "{text}");
}

#[test]
fn test_reports_matches_per_rule_and_meets_expectations() {
    let output = securewatch(&[
        "rules",
        "test",
        path(&fixture("rules")),
        "--events",
        path(&fixture("events-windows.jsonl")),
        "--expect",
        path(&fixture("expect-windows.yml")),
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    // Line 7 matches case-insensitively; line 2 has the wrong parent.
    assert!(
        text.contains("rule 5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a01: Whoami run from a command shell [medium]: 2 matches (lines 1, 7)"),
        "{text}"
    );
    // Line 6 has EventID 4625 but comes from the Sysmon channel: routed away from the rule.
    assert!(text.contains("Failed logon [low]: 2 matches (lines 4, 5)"), "{text}");
    assert!(text.contains("SSH login as root refused [medium]: 0 matches"), "{text}");
    // The fixture events carry no time: all take 1970-01-01, and two failures are not three.
    assert!(text.contains("6 events have no time field"), "{text}");
    assert!(
        text.contains("correlation 5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a03: Many failed logons for one user (event_count, timespan 300s): 0 alerts"),
        "{text}"
    );
    assert!(text.contains("expectations 3 passed, 0 failed"), "{text}");
}

#[test]
fn test_fails_when_an_expectation_is_not_met_and_json_is_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.json");
    std::fs::write(&expect, r#"{"5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a01": 3, "failed_logon": 2, "missing-rule": 1}"#).unwrap();
    let output = securewatch(&[
        "rules",
        "test",
        path(&fixture("rules")),
        "--events",
        path(&fixture("events-windows.jsonl")),
        "--expect",
        path(&expect),
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let document: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(document["ok"], false);
    assert_eq!(document["events"], 6);
    let rules = document["rules"].as_array().unwrap();
    let whoami = rules.iter().find(|rule| rule["id"] == "5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a01").unwrap();
    assert_eq!(whoami["matches"], 2);
    assert_eq!(whoami["lines"], serde_json::json!([1, 7]));
    assert_eq!(whoami["level"], "medium");
    let expectations = document["expectations"].as_array().unwrap();
    let by_rule = |rule: &str| expectations.iter().find(|e| e["rule"] == rule).unwrap().clone();
    assert_eq!(by_rule("5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a01")["ok"], false);
    assert_eq!(by_rule("5f6b1c9e-3c2a-4d7e-9a41-7d0c2e8b1a01")["actual"], 2);
    assert_eq!(by_rule("failed_logon")["ok"], true);
    assert_eq!(by_rule("missing-rule")["actual"], Value::Null);
    assert_eq!(document["correlations"][0]["type"], "event_count");
    assert_eq!(document["correlations"][0]["alert_count"], 0);
}

#[test]
fn test_reads_wazuh_alerts_through_the_parser_and_builtin_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.json");
    let alert = |number: u32, image: &str, parent: &str| {
        format!(
            concat!(
                r#"{{"timestamp":"2024-03-01T10:00:00.000+0000","rule":{{"level":3,"description":"Sysmon - Process creation","id":"61603","groups":["windows","sysmon"]}},"#,
                r#""agent":{{"id":"002","name":"desk-07"}},"manager":{{"name":"wazuh-manager"}},"id":"1709287200.{}","decoder":{{"name":"windows_eventchannel"}},"#,
                r#""data":{{"win":{{"system":{{"channel":"Microsoft-Windows-Sysmon/Operational","eventID":"1","providerName":"Microsoft-Windows-Sysmon"}},"#,
                r#""eventdata":{{"image":"{}","parentImage":"{}"}}}}}},"location":"EventChannel"}}"#,
                "\n"
            ),
            number,
            image,
            parent
        )
    };
    let lines = alert(1, r"C:\\\\Windows\\\\System32\\\\whoami.exe", r"C:\\\\Windows\\\\System32\\\\cmd.exe")
        + &alert(2, r"C:\\\\Windows\\\\System32\\\\whoami.exe", r"C:\\\\Windows\\\\explorer.exe");
    std::fs::write(&alerts, lines).unwrap();
    let output = securewatch(&[
        "rules",
        "test",
        path(&fixture("rules/windows/whoami.yml")),
        "--events",
        path(&alerts),
        "--source",
        "wazuh",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("pipelines: builtin:wazuh"), "{text}");
    assert!(text.contains("Whoami run from a command shell [medium]: 1 matches (lines 1)"), "{text}");
}

#[test]
fn test_reads_raw_syslog_lines_and_routes_by_app_name() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("auth.log");
    std::fs::write(
        &events,
        "<38>Mar  1 10:00:00 web-01 sshd[411]: Failed password for root from 203.0.113.9 port 4711 ssh2\n\
         <38>Mar  1 10:00:01 web-01 login[412]: Failed password for root on tty1\n\
         <38>1 2024-03-01T10:00:02Z web-02 sshd 413 - - Failed password for root from 198.51.100.7\n",
    )
    .unwrap();
    let output = securewatch(&[
        "rules",
        "test",
        path(&fixture("rules/linux/sshd.yml")),
        "--events",
        path(&events),
        "--source",
        "syslog",
    ]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("SSH login as root refused [medium]: 2 matches (lines 1, 3)"), "{text}");

    let output = securewatch(&[
        "rules",
        "test",
        path(&fixture("rules/linux/sshd.yml")),
        "--events",
        path(&events),
        "--source",
        "syslog",
        "--logsource",
        "any",
    ]);
    assert!(stdout(&output).contains("3 matches (lines 1, 2, 3)"), "{}", stdout(&output));
}

#[test]
fn test_with_a_fixed_logsource_and_a_pipeline_file() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("ecs.yml");
    std::fs::write(
        &pipeline,
        "name: ecs-like\ntransformations:\n  - type: field_name_mapping\n    mapping:\n      Image: process.executable\n      ParentImage: process.parent.executable\n",
    )
    .unwrap();
    let events = dir.path().join("ecs.jsonl");
    std::fs::write(
        &events,
        r#"{"process": {"executable": "C:\\w\\whoami.exe", "parent": {"executable": "C:\\w\\cmd.exe"}}}"#,
    )
    .unwrap();
    let run = |logsource: &str| {
        stdout(&securewatch(&[
            "rules",
            "test",
            path(&fixture("rules/windows/whoami.yml")),
            "--events",
            path(&events),
            "--pipeline",
            path(&pipeline),
            "--logsource",
            logsource,
        ]))
    };
    assert!(run("product=windows,category=process_creation").contains(": 1 matches (lines 1)"));
    // No Windows record fields: the derived log source is unknown, so the rule does not apply.
    assert!(run("auto").contains(": 0 matches"));
}

#[test]
fn bad_input_is_an_error_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("bad.jsonl");
    std::fs::write(&events, "{\"a\": 1}\nnot json\n").unwrap();
    let output = securewatch(&["rules", "test", path(&fixture("rules")), "--events", path(&events)]);
    assert_eq!(output.status.code(), Some(2));
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("bad.jsonl:2"), "{error}");
}

// ===== Correlations =====

const EVENT_COUNT: &str = "0c7a2d4e-1b61-4f0a-9d3e-6a1f00000011";
const VALUE_COUNT: &str = "0c7a2d4e-1b61-4f0a-9d3e-6a1f00000012";
const TEMPORAL_ORDERED: &str = "0c7a2d4e-1b61-4f0a-9d3e-6a1f00000013";

fn correlation_test(extra: &[&str]) -> Output {
    let rules = fixture("correlations/rules.yml");
    let events = fixture("correlations/events.jsonl");
    let mut args = vec!["rules", "test", path(&rules), "--events", path(&events)];
    args.extend_from_slice(extra);
    securewatch(&args)
}

#[test]
fn test_runs_correlations_in_event_time_and_meets_alert_expectations() {
    let expect = fixture("correlations/expect.yml");
    let output = correlation_test(&["--expect", path(&expect)]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("10 events, 3 rules, 3 correlations"), "{text}");
    assert!(!text.contains("no time field"), "every fixture event has a time: {text}");
    // event_count, grouped by user: alice's three failures within 5 minutes fire once; bob,
    // carol and alice's later failure do not.
    assert!(
        text.contains(&format!(
            "correlation {EVENT_COUNT}: Three failed logons for one user (event_count, timespan 300s): 1 alerts\n  \
             alert group TargetUserName=alice window [2024-03-01T10:00:00.000Z, 2024-03-01T10:05:00.000Z): lines 1, 2, 4\n"
        )),
        "{text}"
    );
    // value_count: three distinct users from 10.0.0.5 within 10 minutes; once, not per anchor.
    assert!(
        text.contains(&format!(
            "correlation {VALUE_COUNT}: Failed logons for three users from one address (value_count, timespan 600s): 1 alerts\n  \
             alert group IpAddress=10.0.0.5 window [2024-03-01T10:00:00.000Z, 2024-03-01T10:10:00.000Z): lines 1, 2, 3, 4, 5\n"
        )),
        "{text}"
    );
    // temporal_ordered by event time, not file order: ws1 ran whoami (line 8) before net
    // (line 7) and fires; ws2 ran net first and does not.
    assert!(
        text.contains(&format!(
            "correlation {TEMPORAL_ORDERED}: Whoami then net on one computer (temporal_ordered, timespan 60s): 1 alerts\n  \
             alert group Computer=ws1 window [2024-03-01T11:00:00.000Z, 2024-03-01T11:01:00.000Z): lines 7, 8\n"
        )),
        "{text}"
    );
    assert!(!text.contains("Computer=ws2"), "{text}");
    assert!(text.contains("3 of 3 correlations fired"), "{text}");
    assert!(text.contains("expectations 5 passed, 0 failed"), "{text}");
}

#[test]
fn a_wrong_correlation_expectation_fails_and_json_lists_the_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("expect.yml");
    std::fs::write(&expect, format!("{EVENT_COUNT}: 2\n{TEMPORAL_ORDERED}: 1\n")).unwrap();
    let output = correlation_test(&["--expect", path(&expect), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let document: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(document["ok"], false);
    assert_eq!(document["events_without_time"], 0);
    let correlations = document["correlations"].as_array().unwrap();
    let by_id = |id: &str| correlations.iter().find(|c| c["id"] == id).unwrap().clone();
    let event_count = by_id(EVENT_COUNT);
    assert_eq!(event_count["type"], "event_count");
    assert_eq!(event_count["stored"], true);
    assert_eq!(event_count["alert_count"], 1);
    assert_eq!(event_count["alerts"][0]["group"], serde_json::json!({"TargetUserName": "alice"}));
    assert_eq!(event_count["alerts"][0]["window_start"], "2024-03-01T10:00:00.000Z");
    assert_eq!(event_count["alerts"][0]["lines"], serde_json::json!([1, 2, 4]));
    assert_eq!(by_id(VALUE_COUNT)["alerts"][0]["lines"], serde_json::json!([1, 2, 3, 4, 5]));
    let expectations = document["expectations"].as_array().unwrap();
    let by_rule = |rule: &str| expectations.iter().find(|e| e["rule"] == rule).unwrap().clone();
    assert_eq!(by_rule(EVENT_COUNT)["ok"], false);
    assert_eq!(by_rule(EVENT_COUNT)["actual"], 1);
    assert_eq!(by_rule(TEMPORAL_ORDERED)["ok"], true);
}

#[test]
fn check_warns_about_a_document_without_title_and_still_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fragments.yml"),
        "name: internal_error\ndetection:\n    selection:\n        status: 500\n    condition: selection\n",
    )
    .unwrap();
    let output = securewatch(&["rules", "check", path(dir.path())]);
    let text = stdout(&output);
    assert!(output.status.success(), "a warning is not a rejection: {text}");
    let file = dir.path().join("fragments.yml");
    assert!(
        text.contains(&format!("{}: internal_error: warning: no title; using internal_error", file.display())),
        "{text}"
    );
    assert!(text.contains("1 document: 1 rule, 0 filters, 0 correlations loaded; 0 rejected; 1 warning"), "{text}");
}
