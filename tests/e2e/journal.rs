//! The embedded bus of `securewatch run`: syslog lines read but not yet stored when the process
//! is killed with SIGKILL are stored by the restarted process, read back from the journal.

use std::time::{Duration, Instant};

use securewatch_tests::instance::{curl, logger, Instance};

/// A counter in the instance's `/metrics`, summed over its labels (0 when absent).
fn counter(instance: &Instance, name: &str) -> f64 {
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    metrics
        .lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends `count` numbered syslog lines over TCP to a process whose epochs last 30 s (so nothing
/// is stored yet), kills it, restarts it with ordinary epochs and returns the stored events.
fn lines_after_a_kill(journal: bool, count: usize) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let config = |tick_ms: u64| format!("[dataflow]\ntick_ms = {tick_ms}\n\n[journal]\nenabled = {journal}\n");
    let instance = Instance::start(dir.path(), &config(30_000), &[]).unwrap();
    let port = instance.ports.syslog.to_string();
    for n in 0..count {
        let line = format!("journaled line {n}");
        logger(&["--server", "127.0.0.1", "--port", &port, "--tcp", "--rfc5424", "-t", "app", &line]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while counter(&instance, "securewatch_source_received_total") < count as f64 {
        assert!(Instant::now() < deadline, "the lines were not received");
        std::thread::sleep(Duration::from_millis(50));
    }
    if journal {
        while counter(&instance, "securewatch_journal_appended_total") < count as f64 {
            assert!(Instant::now() < deadline, "the lines were not journaled");
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(instance.events("source=syslog&limit=100").unwrap().is_empty(), "nothing stored before the kill");
    let ports = instance.ports;
    instance.kill().unwrap();
    let again = Instance::start_with_ports(dir.path(), ports, &config(100), &[]).unwrap();
    if journal {
        let events = again.wait_events("source=syslog&limit=100", count).unwrap();
        assert!(events.iter().any(|event| event["message"] == "journaled line 0"), "{events:#?}");
        assert_eq!(counter(&again, "securewatch_journal_replayed_total"), count as f64);
    } else {
        std::thread::sleep(Duration::from_secs(1));
    }
    let stored = again.events("source=syslog&limit=100").unwrap().len();
    assert!(again.terminate().unwrap().success());
    stored
}

#[test]
fn syslog_lines_read_before_a_kill_are_stored_after_the_restart() {
    assert_eq!(lines_after_a_kill(true, 20), 20, "every line read back from the journal, once");
}

#[test]
fn without_the_journal_lines_read_before_a_kill_are_lost() {
    // What the journal is for: the same run with `[journal] enabled = false` loses them.
    assert_eq!(lines_after_a_kill(false, 5), 0);
}
