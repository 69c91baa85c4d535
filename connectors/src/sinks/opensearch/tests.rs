//! The sink against the protocol-level fake, and against a real cluster when `OPENSEARCH_URL` is set.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use securewatch_schemas::{Event, EventId, FieldValue, Fields, Severity, Source, SourceKind};
use serde_json::Value;

use super::fake::FakeOpenSearch;
use super::*;
use crate::telemetry;

// ===== helpers =====

fn config(url: &str) -> OpenSearchConfig {
    OpenSearchConfig {
        enabled: true,
        urls: vec![url.to_string()],
        retry: RetryConfig { max_attempts: 5, initial_backoff_ms: 1, max_backoff_ms: 5 },
        request_timeout_secs: 5,
        ..OpenSearchConfig::default()
    }
}

fn event(n: u64, time: &str) -> Event {
    let mut fields = Fields::new();
    fields.insert("data.srcip".into(), FieldValue::from(format!("10.0.{}.{}", n / 256, n % 256)));
    fields.insert("data.dstport".into(), FieldValue::Int(443));
    fields.insert("rule.groups".into(), FieldValue::List(vec!["firewall".into(), "deny".into()]));
    Event {
        tenant: Default::default(),
        id: EventId::from_parts([b"opensearch-test".as_slice(), n.to_le_bytes().as_slice()]),
        time: time.parse().unwrap(),
        received: "2026-11-21T09:00:00Z".parse().unwrap(),
        source: Source { kind: SourceKind::Syslog, name: "fw".into(), peer: Some("10.1.1.1:514".into()) },
        host: Some(format!("fw-{:02}", n % 3)),
        severity: Severity::Warning,
        category: Some("firewall".into()),
        message: format!("deny tcp 10.0.0.{n} -> 192.0.2.1:443"),
        fields,
        raw: Some(format!("<12>raw line {n}")),
    }
}

fn events(count: u64) -> Vec<Event> {
    (0..count).map(|n| event(n, "2026-11-21T08:00:00Z")).collect()
}

fn id(event: &Event) -> String {
    event.id.to_string()
}

/// A counter's name and labels.
type CounterKey = (String, Vec<(String, String)>);

/// Metric values from a [`DebuggingRecorder`], whose snapshots report (and reset) counter deltas.
struct Metrics {
    snapshotter: Snapshotter,
    counters: RefCell<HashMap<CounterKey, u64>>,
    histogram_samples: RefCell<HashMap<String, Vec<f64>>>,
}

impl Metrics {
    fn refresh(&self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let name = key.key().name().to_string();
            let labels = key.key().labels().map(|label| (label.key().to_string(), label.value().to_string())).collect();
            match value {
                DebugValue::Counter(delta) => *self.counters.borrow_mut().entry((name, labels)).or_default() += delta,
                DebugValue::Histogram(samples) => {
                    self.histogram_samples.borrow_mut().entry(name).or_default().extend(samples.iter().map(|s| s.0));
                }
                DebugValue::Gauge(_) => {}
            }
        }
    }

    /// The total of counter `name` with label `key = value`.
    fn counter(&self, name: &str, key: &str, value: &str) -> u64 {
        self.refresh();
        self.counters
            .borrow()
            .iter()
            .filter(|((total_name, labels), _)| {
                total_name == name && labels.iter().any(|(k, v)| k == key && v == value)
            })
            .map(|(_, total)| total)
            .sum()
    }

    fn histogram(&self, name: &str) -> Vec<f64> {
        self.refresh();
        self.histogram_samples.borrow().get(name).cloned().unwrap_or_default()
    }
}

/// Runs `test` on a current-thread runtime whose metrics go to a recorder the test reads.
fn with_metrics<F: Future<Output = ()>>(test: impl FnOnce(Metrics) -> F) {
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics {
        snapshotter: recorder.snapshotter(),
        counters: RefCell::default(),
        histogram_samples: RefCell::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(metrics)));
}

/// Every input id is stored in the fake or dead-lettered, never both, and the outcome adds up.
fn assert_nothing_lost(fake: &FakeOpenSearch, input: &[Event], outcome: &BulkOutcome) {
    let dead: HashSet<String> = outcome.dead_letters.iter().map(|letter| letter.id.to_string()).collect();
    let state = fake.state();
    for event in input {
        let stored = state.holds(&id(event));
        assert!(stored != dead.contains(&id(event)), "event {} stored={stored}, dead-lettered={}", id(event), !stored);
    }
    let settled = outcome.stored + outcome.already_stored + outcome.dead_letters.len() as u64;
    assert_eq!(settled, input.len() as u64, "{outcome:?}");
}

// ===== start-up =====

#[tokio::test]
async fn connect_installs_the_index_template_and_the_ism_policy() {
    let fake = FakeOpenSearch::start().await;
    OpenSearchSink::connect(config(&fake.url)).await.unwrap();
    {
        let state = fake.state();
        let template = &state.templates["securewatch-events"];
        assert_eq!(template["index_patterns"], serde_json::json!(["securewatch-events-*"]));
        let properties = &template["template"]["mappings"]["properties"];
        for (field, kind) in [
            ("id", "keyword"),
            ("time", "date"),
            ("received", "date"),
            ("host", "keyword"),
            ("severity", "keyword"),
            ("severity_code", "byte"),
            ("category", "keyword"),
            ("message", "text"),
            ("fields", "flat_object"),
        ] {
            assert_eq!(properties[field]["type"], kind, "{field}");
        }
        assert_eq!(properties["source"]["properties"]["kind"]["type"], "keyword");
        assert!(template.get("data_stream").is_none());
        let policy = &state.policies["securewatch-events-retention"];
        let states = &policy.body["policy"]["states"];
        assert_eq!(states[0]["transitions"][0]["conditions"]["min_index_age"], "30d");
        assert_eq!(states[0]["transitions"][0]["state_name"], "delete");
        assert_eq!(states[1]["actions"][0], serde_json::json!({ "delete": {} }));
        assert_eq!(
            policy.body["policy"]["ism_template"][0]["index_patterns"],
            serde_json::json!(["securewatch-events-*"])
        );
    }
    // A second start changes nothing: same template, the policy is not rewritten.
    let seq_no = fake.state().policies["securewatch-events-retention"].seq_no;
    OpenSearchSink::connect(config(&fake.url)).await.unwrap();
    assert_eq!(fake.state().policies["securewatch-events-retention"].seq_no, seq_no);
    // A new retention updates the policy in place (if_seq_no / if_primary_term).
    let shorter = OpenSearchConfig { retention_days: 7, ..config(&fake.url) };
    OpenSearchSink::connect(shorter).await.unwrap();
    let state = fake.state();
    let policy = &state.policies["securewatch-events-retention"];
    assert!(policy.seq_no > seq_no);
    assert_eq!(policy.body["policy"]["states"][0]["transitions"][0]["conditions"]["min_index_age"], "7d");
    let puts = state.requests.iter().filter(|r| r.method == "PUT" && r.path.contains("_ism")).count();
    assert_eq!(puts, 2, "created once, updated once");
}

#[tokio::test]
async fn retention_zero_installs_no_policy() {
    let fake = FakeOpenSearch::start().await;
    OpenSearchSink::connect(OpenSearchConfig { retention_days: 0, ..config(&fake.url) }).await.unwrap();
    let state = fake.state();
    assert!(state.templates.contains_key("securewatch-events"));
    assert!(state.policies.is_empty());
}

#[tokio::test]
async fn data_stream_mode_installs_a_data_stream_template_and_appends_to_the_stream() {
    let fake = FakeOpenSearch::start().await;
    let config = OpenSearchConfig {
        index_mode: IndexMode::DataStream,
        data_stream: "logs-siem".into(),
        fields_mapping: FieldsMapping::Object,
        ..config(&fake.url)
    };
    let sink = OpenSearchSink::connect(config).await.unwrap();
    {
        let state = fake.state();
        let template = &state.templates["logs-siem"];
        assert_eq!(template["index_patterns"], serde_json::json!(["logs-siem"]));
        assert_eq!(template["data_stream"]["timestamp_field"]["name"], "time");
        let mappings = &template["template"]["mappings"];
        assert_eq!(mappings["properties"]["fields"]["type"], "object");
        assert_eq!(mappings["dynamic_templates"][0]["fields_string_as_keyword"]["mapping"]["type"], "keyword");
        let policy = &state.policies["logs-siem-retention"].body["policy"];
        assert_eq!(policy["states"][0]["actions"][0]["rollover"]["min_index_age"], "1d");
        assert_eq!(policy["ism_template"][0]["index_patterns"], serde_json::json!(["logs-siem"]));
    }
    let input = events(20);
    let outcome = sink.write(&input).await.unwrap();
    assert_eq!(outcome.stored, 20);
    let state = fake.state();
    assert!(state.documents.keys().all(|(index, _)| index == "logs-siem"));
    assert_eq!(state.documents.len(), 20);
}

#[tokio::test]
async fn unreachable_cluster_fails_after_the_configured_attempts() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: connections are refused
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.retry.max_attempts = 3;
    let error = OpenSearchSink::connect(config).await.unwrap_err();
    assert!(matches!(error, OpenSearchError::Unavailable { attempts: 3, what: "index template", .. }), "{error}");
}

#[tokio::test]
async fn a_dead_node_is_skipped_for_the_next_one() {
    let fake = FakeOpenSearch::start().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let config = OpenSearchConfig { urls: vec![dead, fake.url.clone()], ..config(&fake.url) };
    let sink = OpenSearchSink::connect(config).await.unwrap();
    let outcome = sink.write(&events(5)).await.unwrap();
    assert_eq!((outcome.stored, outcome.retries), (5, 0), "fail-over is not a retry");
}

#[tokio::test]
async fn tls_settings_are_checked_at_connect() {
    let mut config = config("https://127.0.0.1:1");
    config.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let error = OpenSearchSink::connect(config.clone()).await.unwrap_err().to_string();
    assert!(error.contains("cannot read ca_file") && error.contains("/nonexistent/ca.pem"), "{error}");
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "not a certificate\n").unwrap();
    config.tls.ca_file = Some(garbage.path().to_path_buf());
    let error = OpenSearchSink::connect(config).await.unwrap_err().to_string();
    assert!(error.contains("OpenSearch TLS"), "{error}");
}

/// A throw-away CA, and a certificate it signed for `127.0.0.1` and `localhost` with its key.
fn certificates() -> (String, Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), vec![leaf.der().clone()], key.serialize_der())
}

#[tokio::test]
async fn https_with_the_configured_ca_file() {
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let (ca_pem, chain, key) = certificates();
    let fake = FakeOpenSearch::start_tls(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key))).await;
    assert!(fake.url.starts_with("https://"));
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca_pem).unwrap();
    let mut config = config(&fake.url);
    config.retry.max_attempts = 1;
    // Not trusted: the built-in roots do not know the throw-away CA.
    let error = OpenSearchSink::connect(config.clone()).await.unwrap_err();
    assert!(matches!(error, OpenSearchError::Unavailable { .. }), "{error}");
    assert!(fake.state().requests.is_empty(), "no request got through the failed handshake");
    // Trusted through ca_file.
    config.tls.ca_file = Some(ca_file.path().to_path_buf());
    let sink = OpenSearchSink::connect(config.clone()).await.unwrap();
    assert_eq!(sink.write(&events(3)).await.unwrap().stored, 3);
    // accept_invalid_certs (tests only) skips verification altogether.
    config.tls = TlsConfig { ca_file: None, accept_invalid_certs: true };
    let sink = OpenSearchSink::connect(config).await.unwrap();
    assert_eq!(sink.write(&events(3)).await.unwrap().already_stored, 3);
}

// ===== authentication =====

#[tokio::test]
async fn basic_auth_header_is_sent_with_the_password_from_the_environment() {
    let fake = FakeOpenSearch::start().await;
    fake.state().required_authorization = Some("Basic c2VjdXJld2F0Y2g6czNjcmV0".into()); // securewatch:s3cret
    let mut config = config(&fake.url);
    config.auth =
        AuthConfig { user: Some("securewatch".into()), password_env: Some("OS_PW".into()), ..AuthConfig::default() };
    let env = |name: &str| (name == "OS_PW").then(|| "s3cret".to_string());
    let sink = OpenSearchSink::connect_with_env(config.clone(), env).await.unwrap();
    assert_eq!(sink.write(&events(3)).await.unwrap().stored, 3);
    assert!(fake.state().requests.iter().all(|r| r.authorization.as_deref() == Some("Basic c2VjdXJld2F0Y2g6czNjcmV0")));
    // A wrong password is refused at once (401 is not retried).
    let wrong = |_: &str| Some("wrong".to_string());
    let error = OpenSearchSink::connect_with_env(config, wrong).await.unwrap_err();
    assert!(matches!(error, OpenSearchError::Rejected { status: 401, .. }), "{error}");
}

#[tokio::test]
async fn bearer_token_is_sent() {
    let fake = FakeOpenSearch::start().await;
    fake.state().required_authorization = Some("Bearer tok-123".into());
    let mut config = config(&fake.url);
    config.auth.token = Some("tok-123".into());
    let sink = OpenSearchSink::connect(config).await.unwrap();
    assert_eq!(sink.write(&events(2)).await.unwrap().stored, 2);
    let state = fake.state();
    assert!(state.requests.iter().all(|r| r.authorization.as_deref() == Some("Bearer tok-123")));
}

// ===== writing =====

#[test]
fn events_are_stored_under_their_id_in_daily_indices_by_event_time() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
        let input = vec![
            event(1, "2026-11-19T23:59:59Z"),
            event(2, "2026-11-20T00:00:00Z"),
            event(3, "2026-11-21T10:30:00+02:00"),
        ];
        let outcome = sink.write(&input).await.unwrap();
        assert_eq!(outcome, BulkOutcome { stored: 3, ..BulkOutcome::default() });
        let state = fake.state();
        let keys: Vec<(String, String)> = state.documents.keys().cloned().collect();
        let mut expected = vec![
            ("securewatch-events-2026.11.19".to_string(), id(&input[0])),
            ("securewatch-events-2026.11.20".to_string(), id(&input[1])),
            ("securewatch-events-2026.11.21".to_string(), id(&input[2])),
        ];
        expected.sort();
        assert_eq!(keys, expected);
        // The document passed the fake's strict mapping check and holds the event.
        let document = &state.documents[&expected[0]];
        assert_eq!(document["message"], input[0].message);
        assert_eq!(document["fields"]["rule.groups"], serde_json::json!(["firewall", "deny"]));
        assert_eq!(document["source"]["peer"], "10.1.1.1:514");
        assert_eq!(sink.index_for(&input[2]), "securewatch-events-2026.11.21");
        drop(state);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", "stored"), 3);
        assert_eq!(metrics.histogram(telemetry::OPENSEARCH_BULK_SECONDS).len(), 1);
        let bytes = metrics.histogram(telemetry::OPENSEARCH_BULK_BYTES);
        assert_eq!(bytes.len(), 1);
        assert_eq!(bytes[0] as usize, fake.state().bulk_requests()[0].body_bytes);
    });
}

#[test]
fn throttled_and_unavailable_items_are_retried_alone_until_stored() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
        let input = events(10);
        fake.fail_item(&id(&input[2]), &[429, 429]);
        fake.fail_item(&id(&input[7]), &[503]);
        let outcome = sink.write(&input).await.unwrap();
        assert_eq!(outcome.stored, 10);
        assert_eq!(outcome.retries, 3);
        assert!(outcome.dead_letters.is_empty());
        assert_nothing_lost(&fake, &input, &outcome);
        let sizes: Vec<usize> = fake.state().bulk_requests().iter().map(|r| r.documents).collect();
        assert_eq!(sizes, [10, 2, 1], "only the refused items are sent again");
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_RETRIES, "reason", "item_429"), 2);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_RETRIES, "reason", "item_5xx"), 1);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", "stored"), 10);
    });
}

#[test]
fn rejected_items_are_dead_lettered_with_their_reason_and_counted() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
        let input = events(6);
        fake.reject_item(&id(&input[1]), 400);
        fake.reject_item(&id(&input[4]), 400);
        let outcome = sink.write(&input).await.unwrap();
        assert_eq!(outcome.stored, 4);
        assert_eq!(outcome.retries, 0, "a 400 is never retried");
        let letters: Vec<(EventId, u16)> = outcome.dead_letters.iter().map(|l| (l.id, l.status)).collect();
        assert_eq!(letters, [(input[1].id, 400), (input[4].id, 400)]);
        let letter = &outcome.dead_letters[0];
        assert!(letter.reason.starts_with("mapper_parsing_exception: failed to parse"), "{}", letter.reason);
        assert_eq!(letter.index, "securewatch-events-2026.11.21");
        assert_nothing_lost(&fake, &input, &outcome);
        assert_eq!(fake.state().bulk_requests().len(), 1);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", "dead_letter"), 2);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DEAD_LETTERS, "error", "mapper_parsing_exception"), 2);
    });
}

#[test]
fn conflicts_count_as_already_stored() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
        let input = events(8);
        assert_eq!(sink.write(&input[..5]).await.unwrap().stored, 5);
        // A re-delivery of the whole batch: the first five exist (409), three are new.
        let outcome = sink.write(&input).await.unwrap();
        assert_eq!((outcome.stored, outcome.already_stored, outcome.retries), (3, 5, 0));
        assert_nothing_lost(&fake, &input, &outcome);
        assert_eq!(fake.state().documents.len(), 8, "no document twice");
        // A scripted 409 on a new id is counted the same way.
        let late = event(99, "2026-11-21T08:00:00Z");
        fake.fail_item(&id(&late), &[409]);
        let outcome = sink.write(std::slice::from_ref(&late)).await.unwrap();
        assert_eq!(outcome.already_stored, 1);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", "duplicate"), 6);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", "stored"), 8);
    });
}

#[tokio::test]
async fn items_still_refused_after_the_last_attempt_fail_the_write_and_a_redelivery_completes_it() {
    let fake = FakeOpenSearch::start().await;
    let mut config = config(&fake.url);
    config.retry.max_attempts = 3;
    let sink = OpenSearchSink::connect(config).await.unwrap();
    let input = events(5);
    fake.fail_item(&id(&input[3]), &[503; 3]);
    let error = sink.write(&input).await.unwrap_err();
    assert!(matches!(&error, OpenSearchError::NotStored { pending: 1, attempts: 3, last_status: 503, .. }), "{error}");
    assert!(!fake.state().holds(&id(&input[3])));
    // The caller did not commit; the batch comes again and completes without doubles.
    let outcome = sink.write(&input).await.unwrap();
    assert_eq!((outcome.stored, outcome.already_stored), (1, 4));
    assert_nothing_lost(&fake, &input, &outcome);
}

#[test]
fn whole_request_failures_are_retried_with_backoff() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
        let input = events(4);
        fake.fail_requests(&[503, 429]);
        let outcome = sink.write(&input).await.unwrap();
        assert_eq!((outcome.stored, outcome.retries), (4, 8));
        assert_eq!(fake.state().bulk_requests().len(), 3);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_RETRIES, "reason", "request_5xx"), 4);
        assert_eq!(metrics.counter(telemetry::OPENSEARCH_RETRIES, "reason", "request_429"), 4);
        assert_eq!(metrics.histogram(telemetry::OPENSEARCH_BULK_SECONDS).len(), 3, "one sample per attempt");
        // Beyond max_attempts the write fails (nothing is dropped: the caller retries later).
        fake.fail_requests(&[502; 5]);
        let error = sink.write(&events(6)).await.unwrap_err();
        assert!(matches!(error, OpenSearchError::Unavailable { what: "bulk", attempts: 5, .. }), "{error}");
    });
}

#[tokio::test]
async fn a_request_refused_whole_with_4xx_fails_without_retry() {
    let fake = FakeOpenSearch::start().await;
    let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
    fake.fail_requests(&[403]);
    let error = sink.write(&events(2)).await.unwrap_err();
    assert!(matches!(error, OpenSearchError::Rejected { what: "bulk", status: 403, .. }), "{error}");
    assert_eq!(fake.state().bulk_requests().len(), 1);
}

#[tokio::test]
async fn batches_respect_the_document_and_byte_limits() {
    let fake = FakeOpenSearch::start().await;
    let config = OpenSearchConfig { max_docs: 7, ..config(&fake.url) };
    let sink = OpenSearchSink::connect(config).await.unwrap();
    let input = events(30);
    assert_eq!(sink.write(&input).await.unwrap().stored, 30);
    let sizes: Vec<usize> = fake.state().bulk_requests().iter().map(|r| r.documents).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 2]);

    let fake = FakeOpenSearch::start().await;
    let config = OpenSearchConfig { max_bytes: 4096, ..self::config(&fake.url) };
    let sink = OpenSearchSink::connect(config).await.unwrap();
    let input = events(60);
    let outcome = sink.write(&input).await.unwrap();
    assert_eq!(outcome.stored, 60);
    let requests = fake.state().bulk_requests();
    assert!(requests.len() > 1, "60 documents of ~600 bytes need several requests");
    assert!(
        requests.iter().all(|r| r.body_bytes <= 4096),
        "{:?}",
        requests.iter().map(|r| r.body_bytes).collect::<Vec<_>>()
    );
    assert_eq!(requests.iter().map(|r| r.documents).sum::<usize>(), 60);
    assert_nothing_lost(&fake, &input, &outcome);
}

#[tokio::test]
async fn a_request_too_large_is_split_and_a_single_oversized_document_dead_lettered() {
    let fake = FakeOpenSearch::start().await;
    let sink = OpenSearchSink::connect(config(&fake.url)).await.unwrap();
    fake.state().max_body_bytes = Some(3000);
    let mut input = events(16);
    input[5].message = "x".repeat(5000);
    let outcome = sink.write(&input).await.unwrap();
    assert_eq!(outcome.stored, 15);
    assert_eq!(outcome.dead_letters.len(), 1);
    assert_eq!((outcome.dead_letters[0].id, outcome.dead_letters[0].status), (input[5].id, 413));
    assert_nothing_lost(&fake, &input, &outcome);
    let state = fake.state();
    assert!(state.bulk_requests().iter().filter(|r| r.body_bytes <= 3000).all(|r| r.documents <= 5));
}

#[test]
fn nothing_is_lost_under_mixed_faults() {
    with_metrics(|metrics| async move {
        let fake = FakeOpenSearch::start().await;
        let config = OpenSearchConfig { max_docs: 50, ..config(&fake.url) };
        let sink = OpenSearchSink::connect(config).await.unwrap();
        let input: Vec<Event> = (0..300).map(|n| event(n, &format!("2026-11-{:02}T12:00:00Z", 18 + n % 4))).collect();
        // Some were stored by an earlier delivery; some are throttled, unavailable, or bad.
        assert_eq!(sink.write(&input[..40]).await.unwrap().stored, 40);
        for (n, event) in input.iter().enumerate() {
            match n % 10 {
                1 => fake.fail_item(&id(event), &[429]),
                2 => fake.fail_item(&id(event), &[503, 429]),
                3 if n % 30 == 3 && n >= 40 => fake.reject_item(&id(event), 400),
                _ => {}
            }
        }
        fake.fail_requests(&[503]);
        let outcome = sink.write(&input).await.unwrap();
        assert_nothing_lost(&fake, &input, &outcome);
        // Rejected: n = 63, 93, …, 273. The first 40 end as 409s, after their faults.
        assert_eq!(outcome.dead_letters.len(), 8);
        assert_eq!((outcome.stored, outcome.already_stored), (252, 40), "{outcome:?}");
        assert_eq!(fake.state().documents.len(), 292);
        let counted = ["stored", "duplicate", "dead_letter"]
            .map(|outcome| metrics.counter(telemetry::OPENSEARCH_DOCUMENTS, "outcome", outcome));
        assert_eq!(counted, [292, 40, 8]);
    });
}

// ===== a real cluster =====

/// Runs against the cluster at `OPENSEARCH_URL` (with `OPENSEARCH_USER` / `OPENSEARCH_PASSWORD`
/// and `OPENSEARCH_INSECURE=1` for a self-signed certificate when needed); skipped otherwise.
#[tokio::test]
async fn real_cluster_round_trip() {
    let Ok(url) = std::env::var("OPENSEARCH_URL") else {
        eprintln!("skipped: OPENSEARCH_URL is not set (no OpenSearch cluster to test against)");
        return;
    };
    let prefix = format!("securewatch-test-{:x}", rand::random::<u32>());
    let mut config = OpenSearchConfig {
        enabled: true,
        urls: vec![url.clone()],
        index_prefix: prefix.clone(),
        replicas: 0,
        retention_days: 1,
        ..OpenSearchConfig::default()
    };
    if let Ok(user) = std::env::var("OPENSEARCH_USER") {
        config.auth.user = Some(user);
        config.auth.password_env = Some("OPENSEARCH_PASSWORD".into());
    }
    config.tls.accept_invalid_certs = std::env::var("OPENSEARCH_INSECURE").is_ok_and(|value| value == "1");
    let sink = OpenSearchSink::connect(config.clone()).await.unwrap();
    let input: Vec<Event> = (0..50).map(|n| event(n, &format!("2026-11-{:02}T12:00:00Z", 20 + n % 2))).collect();
    let first = sink.write(&input).await.unwrap();
    let second = sink.write(&input).await.unwrap();

    let http = reqwest::Client::builder().danger_accept_invalid_certs(config.tls.accept_invalid_certs).build().unwrap();
    let request = |method: reqwest::Method, path: String| {
        let builder = http.request(method, format!("{}/{path}", url.trim_end_matches('/')));
        match (&config.auth.user, std::env::var("OPENSEARCH_PASSWORD")) {
            (Some(user), Ok(password)) => builder.basic_auth(user, Some(password)),
            _ => builder,
        }
    };
    request(reqwest::Method::POST, format!("{prefix}-*/_refresh")).send().await.unwrap();
    let count: Value =
        request(reqwest::Method::GET, format!("{prefix}-*/_count")).send().await.unwrap().json().await.unwrap();
    // Clean up before asserting, so a failure leaves no indices behind.
    request(reqwest::Method::DELETE, format!("{prefix}-*")).send().await.unwrap();
    request(reqwest::Method::DELETE, format!("_index_template/{prefix}")).send().await.unwrap();
    request(reqwest::Method::DELETE, format!("_plugins/_ism/policies/{prefix}-retention")).send().await.unwrap();
    assert_eq!((first.stored, first.already_stored, first.dead_letters.len()), (50, 0, 0), "{first:?}");
    assert_eq!((second.stored, second.already_stored), (0, 50), "{second:?}");
    assert_eq!(count["count"], 50, "{count}");
}
