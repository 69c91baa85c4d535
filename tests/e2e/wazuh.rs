//! The Wazuh alerts.json tailer through the real binary: appends, an invalid line dead-lettered
//! with its reason, and a restart that neither re-reads nor skips.

use std::io::Write;
use std::path::Path;

use securewatch_tests::instance::{curl, Instance};
use serde_json::Value;

fn alert(id: u32, level: u32, agent: &str) -> String {
    format!(
        concat!(
            r#"{{"timestamp":"2024-03-01T10:00:{:02}.000+0000","rule":{{"level":{},"description":"sshd: authentication failed","#,
            r#""id":"5716","groups":["syslog","sshd","authentication_failed"]}},"agent":{{"id":"001","name":"{}","ip":"10.0.0.7"}},"#,
            r#""manager":{{"name":"wazuh-manager"}},"id":"1709287200.{}","full_log":"Failed password for root from 203.0.113.9","#,
            r#""decoder":{{"name":"sshd"}},"data":{{"srcip":"203.0.113.9","dstuser":"root"}},"location":"/var/log/auth.log"}}"#,
            "\n"
        ),
        id % 60, level, agent, id
    )
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn alerts_file_is_tailed_across_restarts_and_invalid_lines_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.json");
    append(&alerts, &(alert(1, 5, "web-01") + &alert(2, 10, "web-02")));
    let config = format!(
        "[sources.wazuh]\nenabled = true\npath = \"{}\"\npoll_interval_ms = 50\n",
        alerts.display()
    );
    let data = dir.path().join("data");
    let instance = Instance::start(&data, &config, &[]).unwrap();
    let events = instance.wait_events("source=wazuh", 2).unwrap();
    assert_eq!(events.len(), 2);
    let web02 = events.iter().find(|event| event["host"] == "web-02").unwrap();
    assert_eq!(web02["severity"], "error");
    assert_eq!(web02["message"], "sshd: authentication failed");
    assert_eq!(web02["fields"]["data.srcip"], "203.0.113.9");
    assert_eq!(web02["fields"]["rule.id"], "5716");
    assert_eq!(web02["time"], "2024-03-01T10:00:02Z");

    append(&alerts, "{\"timestamp\": broken json\n");
    append(&alerts, &alert(3, 3, "web-03"));
    instance.wait_events("source=wazuh", 3).unwrap();
    let dead = wait_dead_letters(&instance, 1);
    assert_eq!(dead[0]["reason"], "invalid_json", "{dead:#?}");
    assert!(dead[0]["body"].as_str().unwrap().contains("broken json"));

    let ports = instance.ports;
    assert!(instance.terminate().unwrap().success());
    append(&alerts, &alert(4, 12, "web-04"));
    let instance = Instance::start_with_ports(&data, ports, &config, &[]).unwrap();
    let events = instance.wait_events("source=wazuh&limit=100", 4).unwrap();
    let mut hosts: Vec<_> = events.iter().map(|event| event["host"].as_str().unwrap()).collect();
    hosts.sort();
    assert_eq!(hosts, ["web-01", "web-02", "web-03", "web-04"], "no line re-read or skipped");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(wait_dead_letters(&instance, 1).len(), 1, "the invalid line is not re-read");
}

fn wait_dead_letters(instance: &Instance, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, body) = curl(&[&instance.api_url("/api/v1/dead-letters")]).unwrap();
        let letters: Vec<Value> = serde_json::from_str(&body).unwrap();
        if letters.len() >= count || std::time::Instant::now() > deadline {
            return letters;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
