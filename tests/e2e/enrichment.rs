//! Enrichment through the real binary: events are tagged from the asset inventory and the
//! network lists, and editing the inventory while running re-tags events still in the windows.

use std::time::{Duration, Instant};

use chrono::Utc;
use securewatch_tests::instance::{curl, Instance};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-enrichment-token";

fn send(instance: &Instance, host: &str, src_ip: &str, message: &str) {
    let body = json!({
        "time": Utc::now().timestamp_millis() as f64 / 1000.0,
        "host": host,
        "event": {"message": message, "src_ip": src_ip},
    })
    .to_string();
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
    assert_eq!(status, 200, "{answer}");
}

/// The `enrichment` object of the event with `message`, once `done` holds for it (or the last
/// one seen when the deadline passes).
fn enrichment_when(instance: &Instance, message: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = instance.events("limit=100").unwrap();
        let found = events.iter().find(|event| event["message"] == message).map(|event| event["enrichment"].clone());
        if let Some(enrichment) = found {
            if done(&enrichment) || Instant::now() > deadline {
                return enrichment;
            }
        } else if Instant::now() > deadline {
            return Value::Null;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn owner(enrichment: &Value) -> Option<&str> {
    enrichment["assets"].as_array()?.first()?["owner"].as_str()
}

#[test]
fn asset_inventory_and_network_lists_tag_events_and_edits_retag_them() {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets.csv");
    std::fs::write(&assets, "key,owner,criticality,tags\nweb-1,alice,high,pci;dmz\n10.9.9.9,ops,low,\n").unwrap();
    let internal = dir.path().join("internal.txt");
    std::fs::write(&internal, "# internal networks\n10.0.0.0/8\n").unwrap();
    let threats = dir.path().join("threats.txt");
    std::fs::write(&threats, "203.0.113.7\n").unwrap();
    let config = format!(
        "[enrichment]\nassets = \"{}\"\npoll_interval_ms = 100\n\
         [[enrichment.networks]]\nname = \"internal\"\npath = \"{}\"\n\
         [[enrichment.networks]]\nname = \"threat-intel\"\npath = \"{}\"\n",
        assets.display(),
        internal.display(),
        threats.display()
    );
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();

    send(&instance, "web-1", "203.0.113.7", "from a known threat");
    send(&instance, "db-7", "10.1.2.3", "internal traffic");
    let first = enrichment_when(&instance, "from a known threat", |e| owner(e).is_some() && e["networks"].is_array());
    assert_eq!(owner(&first), Some("alice"), "{first}");
    assert_eq!(first["assets"][0]["criticality"], "high");
    assert_eq!(first["assets"][0]["tags"], json!(["pci", "dmz"]));
    assert!(
        first["networks"].as_array().unwrap().iter().any(|n| n["list"] == "threat-intel" && n["ip"] == "203.0.113.7"),
        "{first}"
    );
    let second = enrichment_when(&instance, "internal traffic", |e| e["networks"].is_array());
    assert_eq!(second["networks"], json!([{"ip": "10.1.2.3", "list": "internal", "cidr": "10.0.0.0/8"}]));
    assert!(second.get("assets").is_none_or(Value::is_null), "db-7 is not in the inventory: {second}");

    // Edit the inventory while running: the stored event is re-tagged without a restart.
    std::fs::write(&assets, "key,owner,criticality,tags\nweb-1,bob,medium,pci\n").unwrap();
    let edited = enrichment_when(&instance, "from a known threat", |e| owner(e) == Some("bob"));
    assert_eq!(owner(&edited), Some("bob"), "{edited}");
    assert_eq!(edited["assets"][0]["criticality"], "medium");

    // A broken edit keeps the last valid inventory and is counted.
    std::fs::write(&assets, "key,owner\n\"unterminated,x\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
        if metrics.contains("securewatch_enrichment_reload_errors_total") || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(metrics.contains("securewatch_enrichment_reload_errors_total"), "{metrics}");
    send(&instance, "web-1", "192.0.2.1", "after the broken edit");
    let kept = enrichment_when(&instance, "after the broken edit", |e| owner(e).is_some());
    assert_eq!(owner(&kept), Some("bob"));
    assert!(instance.terminate().unwrap().success());
}
