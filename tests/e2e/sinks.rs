//! The external sinks inside `securewatch run`: PostgreSQL for real, OpenSearch as a protocol-level fake.

use std::time::{Duration, Instant};

use securewatch_connectors::sinks::opensearch::fake::FakeOpenSearch;
use securewatch_schemas::EventId;
use securewatch_tests::instance::{curl, Instance};
use securewatch_tests::postgres::{postgres_url, psql, scalar, schema_name};
use serde_json::{json, Value};

const TOKEN: &str = "e2e-sinks-token";

const FAILED_LOGIN_RULE: &str = "title: Failed SSH password
id: 5d1c8a4e-0000-4000-8000-0000000000aa
level: medium
logsource:
  product: linux
  service: auth
detection:
  selection:
    message|contains: 'Failed password'
  condition: selection
";

/// One HEC envelope with its own time (so the event id does not depend on when it arrives).
fn envelope(time: f64, host: &str, sourcetype: &str, message: &str) -> String {
    json!({"time": time, "host": host, "sourcetype": sourcetype, "event": {"message": message}}).to_string()
}

/// The id the HEC source gives envelope `index` of a request (see operators/parse/src/hec):
/// token name, channel, index, the envelope's bytes, and no receive time (sender-timed).
fn hec_id(envelope: &str, index: u32) -> String {
    let index = index.to_be_bytes();
    EventId::from_parts([b"hec".as_slice(), b"default", b"", &index, envelope.as_bytes(), b""]).to_string()
}

fn post_hec(instance: &Instance, body: &str) {
    let auth = format!("Authorization: Splunk {TOKEN}");
    let url = instance.hec_url("/services/collector/event");
    let (status, answer) = curl(&["-X", "POST", &url, "-H", &auth, "--data-binary", body]).unwrap();
    assert_eq!(status, 200, "{answer}");
}

fn get(instance: &Instance, path: &str) -> (u16, Value) {
    let (status, body) = curl(&[&instance.api_url(path)]).unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path} answered {status}: {body}")))
}

fn get_ok(instance: &Instance, path: &str) -> Value {
    let (status, body) = get(instance, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until `check` holds (or panics with `what` after 20 s).
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The API answers compared between PostgreSQL and SQLite, for a fixed range around `time`.
fn dashboard_paths(time: i64, alert_id: &str) -> Vec<String> {
    let (from, to) = (time - 3600, time + 3600);
    let mut paths = Vec::new();
    for by in ["source", "host", "severity", "category"] {
        for bucket in ["1m", "1h"] {
            paths.push(format!("/api/v1/dashboards/timeseries?from={from}&to={to}&by={by}&bucket={bucket}"));
        }
    }
    for field in ["host", "category", "severity", "source"] {
        paths.push(format!("/api/v1/dashboards/top?from={from}&to={to}&field={field}"));
    }
    paths.push("/api/v1/alerts".to_string());
    paths.push(format!("/api/v1/alerts?from={from}&to={to}&level=medium"));
    paths.push(format!("/api/v1/alerts/{alert_id}"));
    paths
}

#[test]
fn postgres_sink_stores_events_rollups_and_alerts_once_and_the_api_reads_them() {
    let Some(url) = postgres_url() else { return };
    let schema = schema_name("sw_e2e");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("ssh.yml"), FAILED_LOGIN_RULE).unwrap();
    let config = format!(
        "[detection]\nenabled = true\nrules_dir = \"{}\"\n\n[sinks.postgres]\nenabled = true\nurl = \"{url}\"\nschema = \"{schema}\"\npool_size = 4\n",
        rules.display()
    );
    let env = [("SECUREWATCH_HEC_TOKEN", TOKEN)];
    let instance = Instance::start(dir.path(), &config, &env).unwrap();
    let health = get_ok(&instance, "/api/v1/health");
    assert_eq!(health["sinks"], json!({"sqlite": "ok", "postgres": "ok"}), "{health}");
    assert_eq!(health["phase"], "ready", "restored and running: {health}");

    // 40 sender-timed events on 4 hosts, 10 of them failed logins; the same request twice.
    let now = chrono::Utc::now().timestamp();
    let envelopes: Vec<String> = (0..40)
        .map(|n| {
            let (sourcetype, message) = if n % 4 == 0 {
                ("linux_secure", format!("Failed password for root from 203.0.113.{n} port 22 ssh2"))
            } else {
                ("nginx", format!("GET /page/{n} 200"))
            };
            envelope(now as f64 - f64::from(n), &format!("web-{}", n % 4), sourcetype, &message)
        })
        .collect();
    let body = envelopes.join("\n");
    post_hec(&instance, &body);
    post_hec(&instance, &body);
    let in_schema = |table: &str| format!("{schema}.{table}");
    wait_for("40 events in PostgreSQL", || scalar(&url, &format!("SELECT count(*) FROM {}", in_schema("events"))) >= 40);
    wait_for("10 alerts in PostgreSQL", || scalar(&url, &format!("SELECT count(*) FROM {}", in_schema("alerts"))) >= 10);
    // Acknowledged means stored everywhere: SQLite holds them too.
    assert_eq!(instance.wait_events("limit=1000", 40).unwrap().len(), 40);

    let events = scalar(&url, &format!("SELECT count(*) FROM {}", in_schema("events")));
    assert_eq!(events, 40, "each event once, although the request came twice");
    let ids: Vec<String> = psql(&url, &format!("SELECT encode(id, 'hex') FROM {} ORDER BY 1", in_schema("events")));
    let mut expected: Vec<String> = envelopes.iter().enumerate().map(|(n, text)| hec_id(text, n as u32)).collect();
    expected.sort();
    assert_eq!(ids, expected, "the HEC ids are deterministic");
    assert_eq!(scalar(&url, &format!("SELECT count(*) FROM {}", in_schema("alerts"))), 10);
    assert_eq!(scalar(&url, &format!("SELECT count(*) FROM {}", in_schema("alert_events"))), 10);
    // The rollups count each event once (docs/dataflow.md, "Delivery"): the second request's copies are
    // found stored by SQLite and taken out of the rollups again, in a following write.
    let rolled_up_and_late = || {
        let rolled_up = scalar(&url, &format!("SELECT COALESCE(SUM(count), 0) FROM {}", in_schema("rollup_source")));
        let late = scalar(&url, &format!("SELECT COALESCE(SUM(count), 0) FROM {}", in_schema("rollup_late")));
        (rolled_up, late)
    };
    wait_for("the rollups to count each of the 40 events once", || {
        let (rolled_up, late) = rolled_up_and_late();
        assert!(rolled_up + late <= 80, "rolled up {rolled_up}, late {late}: more than every delivery");
        rolled_up + late == 40
    });
    let (rolled_up, late) = rolled_up_and_late();
    assert_eq!(rolled_up + late, 40, "rolled up {rolled_up}, late {late}");
    let hosts = psql(&url, &format!("SELECT host || '=' || SUM(count) FROM {} GROUP BY host ORDER BY host", in_schema("rollup_source")));
    if late == 0 {
        assert_eq!(hosts, ["web-0=10", "web-1=10", "web-2=10", "web-3=10"]);
    }

    // The API reads PostgreSQL: an alert that exists only there is listed; then the answers
    // equal SQLite's for the same data.
    let alerts = get_ok(&instance, "/api/v1/alerts?limit=100");
    assert_eq!(alerts.as_array().unwrap().len(), 10, "{alerts}");
    let alert_id = alerts[0]["id"].as_str().unwrap().to_string();
    let detail = get_ok(&instance, &format!("/api/v1/alerts/{alert_id}"));
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");
    assert!(detail["events"][0]["message"].as_str().unwrap().starts_with("Failed password"), "{detail}");
    assert_eq!(get(&instance, "/api/v1/alerts/00000000000000000000000000000001").0, 404);
    let paths = dashboard_paths(now, &alert_id);
    let from_postgres: Vec<Value> = paths.iter().map(|path| get_ok(&instance, path)).collect();
    let top_hosts = &from_postgres[8];
    assert_eq!(top_hosts["field"], "host");
    let total: i64 = top_hosts["entries"].as_array().unwrap().iter().map(|entry| entry["count"].as_i64().unwrap()).sum();
    assert_eq!(total, rolled_up, "{top_hosts}");

    // The answers come from PostgreSQL: an alert deleted there (only) is gone from the API.
    psql(&url, &format!("DELETE FROM {} WHERE id = decode('{alert_id}', 'hex')", in_schema("alerts")));
    assert_eq!(get_ok(&instance, "/api/v1/alerts?limit=100").as_array().unwrap().len(), 9);
    assert_eq!(get(&instance, &format!("/api/v1/alerts/{alert_id}")).0, 404);

    // The same questions to SQLite: the same process config without [sinks.postgres].
    let marker = "[sinks.postgres]";
    let ports = instance.ports;
    assert!(instance.terminate().unwrap().success());
    let sqlite_only = config.split(marker).next().unwrap().to_string();
    let instance = Instance::start_with_ports(dir.path(), ports, &sqlite_only, &env).unwrap();
    let health = get_ok(&instance, "/api/v1/health");
    assert_eq!(health["sinks"], json!({"sqlite": "ok"}), "{health}");
    for (path, postgres) in paths.iter().zip(&from_postgres) {
        assert_eq!(&get_ok(&instance, path), postgres, "{path}: PostgreSQL and SQLite answer alike");
    }
    assert!(instance.terminate().unwrap().success());
    psql(&url, &format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn a_batch_postgres_refuses_is_not_acknowledged_and_a_resend_stores_it_everywhere() {
    let Some(url) = postgres_url() else { return };
    let schema = schema_name("sw_e2e");
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[sinks.postgres]\nurl = \"{url}\"\nschema = \"{schema}\"\npool_size = 2\n");
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", TOKEN)]).unwrap();
    // Every PostgreSQL write fails while its rollup table is away.
    psql(&url, &format!("ALTER TABLE {schema}.rollup_source RENAME TO rollup_source_away"));
    let now = chrono::Utc::now().timestamp() as f64;
    let body: Vec<String> = (0..3).map(|n| envelope(now - f64::from(n), "db-1", "nginx", &format!("refused {n}"))).collect();
    let body = body.join("\n");
    let auth = format!("Authorization: Splunk {TOKEN}");
    let hec = instance.hec_url("/services/collector/event");
    let (status, answer) = curl(&["-X", "POST", &hec, "-H", &auth, "--data-binary", &body]).unwrap();
    assert_ne!(status, 200, "not acknowledged while PostgreSQL refuses it: {answer}");
    assert_eq!(instance.events("limit=10").unwrap().len(), 0, "SQLite is written after PostgreSQL, so not at all");
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    let errors = metrics
        .lines()
        .find_map(|line| line.strip_prefix("securewatch_sink_errors_total{sink=\"postgres\"} "))
        .map(|count| count.parse::<f64>().unwrap());
    assert_eq!(errors, Some(4.0), "the first attempt and three retries");

    psql(&url, &format!("ALTER TABLE {schema}.rollup_source_away RENAME TO rollup_source"));
    post_hec(&instance, &body);
    assert_eq!(scalar(&url, &format!("SELECT count(*) FROM {schema}.events")), 3);
    assert_eq!(instance.events("limit=10").unwrap().len(), 3);
    assert!(instance.terminate().unwrap().success());
    psql(&url, &format!("DROP SCHEMA {schema} CASCADE"));
}

#[test]
fn opensearch_sink_retries_throttled_items_and_dead_letters_refused_ones() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = runtime.block_on(FakeOpenSearch::start());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[sinks.opensearch]\nenabled = true\nurls = [\"{}\"]\n\n[sinks.opensearch.retry]\n\
         max_attempts = 8\ninitial_backoff_ms = 10\nmax_backoff_ms = 50\n",
        fake.url
    );
    let env = [("SECUREWATCH_HEC_TOKEN", TOKEN)];
    let instance = Instance::start(dir.path(), &config, &env).unwrap();
    let health = get_ok(&instance, "/api/v1/health");
    assert_eq!(health["sinks"], json!({"sqlite": "ok", "opensearch": "ok"}), "{health}");

    let now = chrono::Utc::now().timestamp() as f64;
    let envelopes: Vec<String> =
        (0..5).map(|n| envelope(now - f64::from(n), "web-1", "nginx", &format!("request {n}"))).collect();
    let ids: Vec<String> = envelopes.iter().enumerate().map(|(n, text)| hec_id(text, n as u32)).collect();
    fake.fail_item(&ids[1], &[429, 429, 429]);
    fake.fail_item(&ids[2], &[503]);
    fake.reject_item(&ids[3], 400);
    post_hec(&instance, &envelopes.join("\n"));

    // Acknowledged (the HEC answer above came after the write): every sink stored it.
    let stored = instance.events("limit=100").unwrap();
    let mut stored_ids: Vec<&str> = stored.iter().map(|event| event["id"].as_str().unwrap()).collect();
    stored_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(stored_ids, expected.iter().map(String::as_str).collect::<Vec<_>>(), "SQLite holds all five");
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(fake.state().holds(id), n != 3, "event {n} in OpenSearch (429 and 503 retried, 400 refused)");
    }
    let letters = get_ok(&instance, "/api/v1/dead-letters");
    let letters: Vec<&Value> =
        letters.as_array().unwrap().iter().filter(|letter| letter["reason"] == "opensearch_rejected").collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let detail = letters[0]["detail"].as_str().unwrap();
    assert!(detail.contains("status 400") && detail.contains("mapper_parsing_exception"), "{detail}");
    assert!(letters[0]["body"].as_str().unwrap_or_default().contains(&ids[3]), "{:?}", letters[0]);
    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    let line = |name: &str| metrics.lines().find(|line| line.starts_with(name)).map(str::to_string);
    assert_eq!(
        line("securewatch_dead_letter_total{reason=\"opensearch_rejected\"}").as_deref(),
        Some("securewatch_dead_letter_total{reason=\"opensearch_rejected\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        line("securewatch_opensearch_retries_total{reason=\"item_429\"}").as_deref(),
        Some("securewatch_opensearch_retries_total{reason=\"item_429\"} 3"),
        "three 429 answers, three retries"
    );
    assert_eq!(
        line("securewatch_sink_rows_written_total{sink=\"opensearch\"}").as_deref(),
        Some("securewatch_sink_rows_written_total{sink=\"opensearch\"} 4")
    );

    // The same request again: OpenSearch answers 409 for the stored ones, nothing is doubled.
    post_hec(&instance, &envelopes.join("\n"));
    wait_for("the duplicates counted", || {
        let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
        metrics.lines().any(|line| line == "securewatch_sink_duplicates_total{sink=\"opensearch\"} 4")
    });
    assert_eq!(fake.state().documents.len(), 4);
    assert_eq!(instance.events("limit=100").unwrap().len(), 5);
    assert!(instance.terminate().unwrap().success());
}
