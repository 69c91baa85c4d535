//! Start-up and shutdown: generated HEC token, config errors, SIGTERM drains and exits 0.

use securewatch_tests::instance::{binary, curl, Instance};

#[test]
fn generated_token_is_printed_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[]).unwrap();
    let stdout = instance.stdout();
    let token = stdout
        .lines()
        .find_map(|line| line.strip_prefix("HEC token (generated once, kept in "))
        .and_then(|rest| rest.split("): ").nth(1))
        .unwrap_or_else(|| panic!("no token line in stdout: {stdout}"))
        .trim()
        .to_string();
    let kept = std::fs::read_to_string(dir.path().join("hec_token")).unwrap();
    assert_eq!(kept.trim(), token);
    let auth = format!("Authorization: Splunk {token}");
    let url = instance.hec_url("/services/collector/event");
    let (status, _) = curl(&["-X", "POST", &url, "-H", &auth, "-d", r#"{"event":"hi"}"#]).unwrap();
    assert_eq!(status, 200);

    let ports = instance.ports;
    assert!(instance.terminate().unwrap().success());
    let again = Instance::start_with_ports(dir.path(), ports, "", &[]).unwrap();
    assert!(!again.stdout().contains(&token), "the token is printed only when generated");
    let (status, _) = curl(&["-X", "POST", &url, "-H", &auth, "-d", r#"{"event":"again"}"#]).unwrap();
    assert_eq!(status, 200, "the kept token still works after a restart");
}

#[test]
fn sigterm_drains_and_exits_zero_with_everything_stored() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let body: String = (0..2000).map(|index| format!(r#"{{"event":"e{index}","time":{index}}}"#)).collect();
    let url = instance.hec_url("/services/collector/event");
    let (status, _) = curl(&["-X", "POST", &url, "-H", "Authorization: Splunk t", "--data-binary", &body]).unwrap();
    assert_eq!(status, 200);
    let ports = instance.ports;
    let status = instance.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    let again = Instance::start_with_ports(dir.path(), ports, "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    assert_eq!(again.events("source=hec&limit=5000").unwrap().len(), 2000);
}

/// Issue 24 finding 1: a half-sent API request kept the process alive after SIGTERM for as long
/// as the client stayed. The API now gets a short grace, then closes what is open.
#[test]
fn a_half_sent_api_request_does_not_hold_the_process_after_sigterm() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let mut client = std::net::TcpStream::connect(("127.0.0.1", instance.ports.api)).unwrap();
    client.write_all(b"GET /api/v1/health HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let status = instance.terminate().expect("exits while the client still holds its connection");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    drop(client);
}

/// A request sent twice and SIGTERM right after the second answer: the store found the second
/// copy stored, and the stored rollups count each event once when the process has exited.
#[test]
fn sigterm_right_after_a_resent_request_leaves_rollups_counting_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let now = chrono::Utc::now().timestamp();
    let body: String = (0..500).map(|index| format!(r#"{{"event":"e{index}","host":"h{}","time":{now}}}"#, index % 7)).collect();
    let url = instance.hec_url("/services/collector/event");
    for _ in 0..2 {
        let (status, _) = curl(&["-X", "POST", &url, "-H", "Authorization: Splunk t", "--data-binary", &body]).unwrap();
        assert_eq!(status, 200);
    }
    let status = instance.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    let store = dir.path().join("securewatch.db");
    let sql = "SELECT (SELECT count(*) FROM events) || '|' || (SELECT COALESCE(sum(count), 0) FROM rollup_source) \
               || '|' || (SELECT COALESCE(sum(count), 0) FROM rollup_late)";
    let output = std::process::Command::new("sqlite3").arg("-readonly").arg(&store).arg(sql).output().expect("sqlite3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "500|500|0", "events | rolled up | late");
}

#[test]
fn config_check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[api]\nlisten = \"127.0.0.1:9090\"\n").unwrap();
    let output = std::process::Command::new(binary()).args(["config", "check"]).arg(&good).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[api]\nlisten = \"127.0.0.1:9090\"\n\n[sources.syslog]\nudp_listen = \"127.0.0.1:5514\"\nframing = \"x\"\n").unwrap();
    let output = std::process::Command::new(binary()).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{}:6:", bad.display())), "{stderr}");
    assert!(stderr.contains("framing"), "{stderr}");
}

#[test]
fn metrics_count_received_and_accepted_per_source() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let url = instance.hec_url("/services/collector/event");
    let (status, _) = curl(&["-X", "POST", &url, "-H", "Authorization: Splunk t", "-d", r#"{"event":"a"}{"event":"b"}"#]).unwrap();
    assert_eq!(status, 200);
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && line.contains("source=\"hec\""))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("securewatch_source_received_total"), 2.0);
    assert_eq!(value("securewatch_source_accepted_total"), 2.0);
}

#[test]
fn shipped_configs_pass_config_check() {
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["deploy/docker.toml", "deploy/ingest.toml", "deploy/worker.toml", "deploy/securewatch.example.toml"] {
        let path = repository.join(file);
        let output = std::process::Command::new(binary()).args(["config", "check"]).arg(&path).output().unwrap();
        assert!(output.status.success(), "{file}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
