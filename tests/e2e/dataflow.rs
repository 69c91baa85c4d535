//! The dataflow engine through the real binary: a shuffled HEC stream gives exactly the
//! rollups a brute-force count computes, on one process and on a 2-process × 2-worker cluster.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use securewatch_tests::instance::{curl, free_port, Instance};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-dataflow-token";

/// One generated event.
#[derive(Clone, Debug)]
struct Sample {
    time_ms: u64,
    host: &'static str,
    severity: &'static str,
    sourcetype: &'static str,
}

/// Rollup counts keyed by (series key, bucket start ms).
type Counts = BTreeMap<(String, u64), i64>;

/// `count` events with event times spread over the last four minutes (all within the default
/// five minutes of lateness), in random order.
fn shuffled_stream(count: usize, seed: u64) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now_ms = Utc::now().timestamp_millis() as u64;
    let hosts = ["web-1", "web-2", "db-1", "vpn-gw", "dc-01"];
    let severities = ["error", "warning", "informational", "critical"];
    let sourcetypes = ["auth", "web", "firewall"];
    let mut samples: Vec<Sample> = (0..count)
        .map(|_| Sample {
            time_ms: now_ms - rng.random_range(5_000..240_000),
            host: hosts[rng.random_range(0..hosts.len())],
            severity: severities[rng.random_range(0..severities.len())],
            sourcetype: sourcetypes[rng.random_range(0..sourcetypes.len())],
        })
        .collect();
    samples.shuffle(&mut rng);
    samples
}

fn brute_force(samples: &[Sample], part: impl Fn(&Sample) -> &'static str) -> Counts {
    let mut counts = Counts::new();
    for sample in samples {
        *counts.entry((part(sample).to_string(), sample.time_ms - sample.time_ms % 60_000)).or_default() += 1;
    }
    counts
}

/// Sends the samples to HEC in requests of 50 envelopes; every request must succeed.
fn send(instance: &Instance, samples: &[Sample]) {
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    for chunk in samples.chunks(50) {
        let body: String = chunk
            .iter()
            .map(|sample| {
                json!({
                    "time": sample.time_ms as f64 / 1000.0,
                    "host": sample.host,
                    "sourcetype": sample.sourcetype,
                    "event": {"message": "synthetic", "severity": sample.severity},
                })
                .to_string()
            })
            .collect();
        let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", &body]).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

/// The minute time series of `by` from the dashboards API, as counts.
fn timeseries(instance: &Instance, by: &str, key: &str) -> Counts {
    let now = Utc::now().timestamp();
    let url = instance.api_url(&format!(
        "/api/v1/dashboards/timeseries?by={by}&bucket=1m&from={}&to={}",
        now - 900,
        now + 60
    ));
    let (status, body) = curl(&[&url]).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let mut counts = Counts::new();
    for series in answer["series"].as_array().expect("series") {
        let name = series["key"][key].as_str().unwrap_or("<none>").to_string();
        for point in series["points"].as_array().expect("points") {
            let time: DateTime<Utc> = point["time"].as_str().expect("time").parse().expect("RFC 3339");
            counts.insert((name.clone(), time.timestamp_millis() as u64), point["count"].as_i64().unwrap());
        }
    }
    counts
}

/// Polls the host series until its total reaches `total` (the writer commits per epoch).
fn wait_for_total(instance: &Instance, total: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen: i64 = timeseries(instance, "host", "host").values().sum();
        if seen >= total || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_exact(instance: &Instance, samples: &[Sample]) -> [Counts; 3] {
    wait_for_total(instance, samples.len() as i64);
    let by_host = timeseries(instance, "host", "host");
    let by_severity = timeseries(instance, "severity", "severity");
    let by_category = timeseries(instance, "category", "category");
    assert_eq!(by_host, brute_force(samples, |s| s.host));
    assert_eq!(by_severity, brute_force(samples, |s| s.severity));
    assert_eq!(by_category, brute_force(samples, |s| s.sourcetype));
    [by_host, by_severity, by_category]
}

#[test]
fn shuffled_stream_gives_exact_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "[dataflow]\nworkers = 2\n", &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    let samples = shuffled_stream(1500, 11);
    send(&instance, &samples);
    assert_exact(&instance, &samples);
    assert_eq!(instance.events("limit=10000").unwrap().len(), samples.len());
    assert!(instance.terminate().unwrap().success());
}

#[test]
fn two_processes_with_two_workers_each_match_one_process_with_one_worker() {
    let samples = shuffled_stream(1200, 23);
    let (first_half, second_half) = samples.split_at(samples.len() / 2);

    let single_dir = tempfile::tempdir().unwrap();
    let single = Instance::start(single_dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    send(&single, &samples);
    let expected = assert_exact(&single, &samples);
    assert!(single.terminate().unwrap().success());

    let peers = format!("\"127.0.0.1:{}\", \"127.0.0.1:{}\"", free_port(), free_port());
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let [first, second] = std::thread::scope(|scope| {
        // Both must start together: each waits in the cluster handshake for the other.
        let starts: Vec<_> = (0..2)
            .map(|process| {
                let (dir, peers) = (dirs[process].path(), peers.clone());
                scope.spawn(move || {
                    let config = format!("[dataflow]\nworkers = 2\nprocess = {process}\npeers = [{peers}]\n");
                    Instance::start(dir, &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap()
                })
            })
            .collect();
        let mut started = starts.into_iter().map(|start| start.join().unwrap());
        [started.next().unwrap(), started.next().unwrap()]
    });
    // Ingest through both processes; the rollups are gathered on process 0.
    send(&first, first_half);
    send(&second, second_half);
    let cluster = assert_exact(&first, &samples);
    assert_eq!(cluster, expected, "the cluster computes what one worker computes");
    let stored = first.events("limit=10000").unwrap().len() + second.events("limit=10000").unwrap().len();
    assert_eq!(stored, samples.len(), "each process stores the events it ingested");

    first.send_term().unwrap();
    second.send_term().unwrap();
    assert!(first.wait_exit().unwrap().success());
    assert!(second.wait_exit().unwrap().success());
}
