//! HEC source tests over real HTTP on 127.0.0.1, with a consumer standing in for the store.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use securewatch_schemas::{RawRecord, RecordMeta};
use tokio::task::JoinHandle;

use super::*;
use crate::queue::{ingest_queue, BatchOutcome, IngestReceiver};
use crate::log_limit::LOGS_SUPPRESSED;
use crate::CancellationToken;
use metrics_util::debugging::DebugValue;
use super::server::INFLATING_AT_ONCE;

/// Longest wait for an answer in these tests.
const WAIT: Duration = Duration::from_secs(10);

const OPS_TOKEN: &str = "ops-0123456789";
const WEB_TOKEN: &str = "web-9876543210";
const SUCCESS: &str = r#"{"text":"Success","code":0}"#;

fn config() -> HecConfig {
    HecConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tokens: vec![
            HecTokenConfig {
                name: "ops".into(),
                token: OPS_TOKEN.into(),
                sourcetype: Some("ops:log".into()),
                ..HecTokenConfig::default()
            },
            HecTokenConfig {
                name: "web".into(),
                token: WEB_TOKEN.into(),
                host: Some("web-fleet".into()),
                sourcetype: Some("web:access".into()),
                index: Some("web".into()),
                ..HecTokenConfig::default()
            },
        ],
        ..HecConfig::default()
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), HecError>>,
    inflation_turns: Arc<tokio::sync::Semaphore>,
}

impl Server {
    async fn start(config: HecConfig, queue_capacity: usize) -> (Server, IngestReceiver) {
        let (sender, receiver) = ingest_queue(queue_capacity);
        let source = HecSource::bind(config, sender).await.unwrap();
        let base = format!("http://{}", source.local_addr());
        let inflation_turns = source.inflation_turns();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(source.run(shutdown.clone()));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        (Server { base, client, shutdown, task, inflation_turns }, receiver)
    }

    fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        let request = self.client.post(format!("{}{path}", self.base)).body(body);
        match token {
            Some(token) => request.header("Authorization", format!("Splunk {token}")),
            None => request,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Completes every batch as durable and keeps its records.
fn durable_consumer(mut receiver: IngestReceiver) -> Arc<Mutex<Vec<RawRecord>>> {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&stored);
    tokio::spawn(async move {
        while let Some(batch) = receiver.recv().await {
            sink.lock().unwrap().extend(batch.records.iter().cloned());
            batch.complete(BatchOutcome::Durable);
        }
    });
    stored
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn taken(stored: &Arc<Mutex<Vec<RawRecord>>>) -> Vec<RawRecord> {
    std::mem::take(&mut *stored.lock().unwrap())
}

#[tokio::test]
async fn health_needs_no_token_and_reports_full_queues() {
    let (server, mut receiver) = Server::start(config(), 10).await;
    for path in ["/services/collector/health", "/services/collector/health/1.0"] {
        let response = answer(server.client.get(format!("{}{path}", server.base))).await;
        assert_eq!(response, (200, r#"{"text":"HEC is healthy","code":17}"#.to_string()));
    }
    let body = r#"{"event":"x"}"#.repeat(10);
    let pending = tokio::spawn(answer(server.post("/services/collector", Some(OPS_TOKEN), body)));
    let held = receiver.recv().await.unwrap();
    let response =
        answer(server.client.get(format!("{}/services/collector/health", server.base))).await;
    assert_eq!(
        response,
        (503, r#"{"text":"HEC is unhealthy, queues are full","code":18}"#.to_string())
    );
    held.complete(BatchOutcome::Durable);
    assert_eq!(pending.await.unwrap(), (200, SUCCESS.to_string()));
    server.stop().await;
}

#[tokio::test]
async fn token_errors_use_splunk_codes() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let path = "/services/collector/event";
    let body = r#"{"event":"x"}"#;
    let cases = [
        (server.post(path, None, body), 401, r#"{"text":"Token is required","code":2}"#),
        (
            server.post(path, None, body).header("Authorization", format!("Bearer {OPS_TOKEN}")),
            401,
            r#"{"text":"Invalid authorization","code":3}"#,
        ),
        (
            server.post(path, None, body).header("Authorization", OPS_TOKEN),
            401,
            r#"{"text":"Invalid authorization","code":3}"#,
        ),
        (server.post(path, Some("ops-wrong"), body), 403, r#"{"text":"Invalid token","code":4}"#),
        (
            server.post(&format!("{path}?token={OPS_TOKEN}"), None, body),
            400,
            r#"{"text":"Query string authorization is not enabled","code":16}"#,
        ),
    ];
    for (request, status, expected) in cases {
        assert_eq!(answer(request).await, (status, expected.to_string()));
    }
    assert!(taken(&stored).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn envelopes_become_one_batch_of_records() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let body = "{\"event\":\"one\",\"time\":1700000000}{\"event\":{\"msg\":\"two\"}}\n{\"event\":\"three\"}";
    for path in
        ["/services/collector", "/services/collector/event", "/services/collector/event/1.0"]
    {
        assert_eq!(
            answer(server.post(path, Some(OPS_TOKEN), body)).await,
            (200, SUCCESS.to_string())
        );
    }
    let records = taken(&stored);
    assert_eq!(records.len(), 9);
    let first = &records[..3];
    assert_eq!(first[0].body, br#"{"event":"one","time":1700000000}"#);
    assert_eq!(first[1].body, br#"{"event":{"msg":"two"}}"#);
    assert_eq!(first[2].body, br#"{"event":"three"}"#);
    for (position, record) in first.iter().enumerate() {
        assert_eq!(record.received, first[0].received, "one receive time per request");
        assert_eq!(&*record.source_name, "hec");
        assert!(record.peer.as_deref().is_some_and(|peer| peer.starts_with("127.0.0.1:")));
        match &record.meta {
            RecordMeta::HecEvent { meta, index } => {
                assert_eq!(*index as usize, position);
                assert_eq!(meta.token_name, "ops");
                assert_eq!(meta.channel, None);
            }
            other => panic!("unexpected meta {other:?}"),
        }
    }
    // How these records normalise (time, the token's sourcetype, the sender as host) is checked
    // through the real binary: e2e `hec::tokens_and_raw_query_strings_set_the_metadata_of_stored_events`.
    server.stop().await;
}

#[tokio::test]
async fn each_token_applies_its_own_defaults() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let body = r#"{"event":"same event"}"#;
    for token in [OPS_TOKEN, WEB_TOKEN] {
        assert_eq!(answer(server.post("/services/collector", Some(token), body)).await.0, 200);
    }
    let records = taken(&stored);
    let defaults = |record: &RawRecord| match &record.meta {
        RecordMeta::HecEvent { meta, .. } => (meta.token_name.clone(), meta.defaults.clone()),
        other => panic!("unexpected meta {other:?}"),
    };
    let (ops, web) = (defaults(&records[0]), defaults(&records[1]));
    assert_eq!((ops.0.as_str(), ops.1.sourcetype.as_deref()), ("ops", Some("ops:log")));
    assert_eq!((web.0.as_str(), web.1.sourcetype.as_deref()), ("web", Some("web:access")));
    assert_eq!((web.1.host.as_deref(), web.1.index.as_deref()), (Some("web-fleet"), Some("web")));
    // The stored events (categories, host, index, one id per token): e2e
    // `hec::tokens_and_raw_query_strings_set_the_metadata_of_stored_events`.
    server.stop().await;
}

#[tokio::test]
async fn refused_bodies_name_the_envelope() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let path = "/services/collector/event";
    let cases = [
        ("", 400, r#"{"text":"No data","code":5}"#),
        (" \n ", 400, r#"{"text":"No data","code":5}"#),
        (
            r#"{"event":"ok"}{"event":"cut"#,
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":1}"#,
        ),
        (
            r#"{"event":"ok"}{"event":"ok"}{"host":"h"}"#,
            400,
            r#"{"text":"Event field is required","code":12,"invalid-event-number":2}"#,
        ),
        (
            r#"{"event":""}"#,
            400,
            r#"{"text":"Event field cannot be blank","code":13,"invalid-event-number":0}"#,
        ),
        (
            r#"{"event":"ok","time":"later"}"#,
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":0}"#,
        ),
    ];
    for (body, status, expected) in cases {
        let response = answer(server.post(path, Some(OPS_TOKEN), body)).await;
        assert_eq!(response, (status, expected.to_string()), "{body:?}");
    }
    assert!(taken(&stored).is_empty(), "a request with one bad envelope is refused whole");
    server.stop().await;
}

#[tokio::test]
async fn gzip_bodies_and_size_caps() {
    let config = HecConfig { max_body_bytes: 64 * 1024, max_events_per_request: 5, ..config() };
    let (server, receiver) = Server::start(config, 100).await;
    let stored = durable_consumer(receiver);
    let path = "/services/collector/event";
    let compressed = gzip(br#"{"event":"zipped one"} {"event":"zipped two"}"#);
    let response =
        answer(server.post(path, Some(OPS_TOKEN), compressed).header("Content-Encoding", "gzip"))
            .await;
    assert_eq!(response, (200, SUCCESS.to_string()));
    assert_eq!(taken(&stored)[1].body, br#"{"event":"zipped two"}"#);

    let too_large = (413, r#"{"text":"Content too large","code":27}"#.to_string());
    let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "the bomb itself passes the wire cap");
    let response =
        answer(server.post(path, Some(OPS_TOKEN), bomb).header("Content-Encoding", "gzip")).await;
    assert_eq!(response, too_large);
    let plain = format!(r#"{{"event":"{}"}}"#, "a".repeat(70 * 1024));
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), plain)).await, too_large);
    let many = r#"{"event":"x"}"#.repeat(6);
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), many)).await, too_large);

    let response =
        answer(server.post(path, Some(OPS_TOKEN), "{}").header("Content-Encoding", "deflate"))
            .await;
    assert_eq!(response, (415, r#"{"text":"Unsupported content encoding","code":6}"#.to_string()));
    let response = answer(
        server.post(path, Some(OPS_TOKEN), "not gzip at all").header("Content-Encoding", "gzip"),
    )
    .await;
    assert_eq!(response, (400, r#"{"text":"Invalid data format","code":6}"#.to_string()));
    assert!(taken(&stored).is_empty());
    server.stop().await;
}

/// Issue 24 finding 2: a 1 MB gzip bomb costs up to `max_body_bytes` while it inflates, and 16
/// at once reached 1.84 GiB. Gzip bodies inflate a few at a time; the rest wait their turn
/// (counted), while plain bodies never wait.
#[tokio::test]
async fn gzip_bodies_inflate_a_few_at_a_time_and_the_rest_wait() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let path = "/services/collector/event";
    let every_turn = server.inflation_turns.clone().acquire_many_owned(INFLATING_AT_ONCE as u32).await.unwrap();
    let zipped = server.post(path, Some(OPS_TOKEN), gzip(br#"{"event":"waited its turn"}"#)).header("Content-Encoding", "gzip");
    let waiting = tokio::spawn(answer(zipped));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a gzip body inflates only in a turn");
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), r#"{"event":"plain"}"#)).await, (200, SUCCESS.to_string()));
    drop(every_turn);
    let answered = tokio::time::timeout(WAIT, waiting).await.expect("answered once a turn is free").unwrap();
    assert_eq!(answered, (200, SUCCESS.to_string()));
    let mut bodies: Vec<Vec<u8>> = taken(&stored).into_iter().map(|record| record.body).collect();
    bodies.sort();
    assert_eq!(bodies, [br#"{"event":"plain"}"#.to_vec(), br#"{"event":"waited its turn"}"#.to_vec()]);
    server.stop().await;
}

#[tokio::test]
async fn bodies_above_axum_default_limit_are_accepted() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let body = format!(r#"{{"event":"{}"}}"#, "b".repeat(3 * 1024 * 1024));
    let response = answer(server.post("/services/collector", Some(OPS_TOKEN), body.clone())).await;
    assert_eq!(response, (200, SUCCESS.to_string()));
    assert_eq!(taken(&stored)[0].body.len(), body.len());
    server.stop().await;
}

#[tokio::test]
async fn raw_lines_take_query_metadata_and_channel() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let path = "/services/collector/raw?host=edge-7&sourcetype=fw:line&index=net&time=1700000000.5&channel=ch-query";
    let body = "first line\r\nsecond line\n\nthird line\n";
    assert_eq!(answer(server.post(path, Some(WEB_TOKEN), body)).await, (200, SUCCESS.to_string()));
    let records = taken(&stored);
    assert_eq!(
        records.iter().map(|record| record.body.as_slice()).collect::<Vec<_>>(),
        [b"first line".as_slice(), b"second line", b"third line"]
    );
    let RecordMeta::HecRaw { meta, index: 2 } = &records[2].meta else {
        panic!("unexpected meta {:?}", records[2].meta);
    };
    assert_eq!(meta.channel.as_deref(), Some("ch-query"));
    assert_eq!(meta.defaults.source, None);
    assert_eq!(meta.defaults.host.as_deref(), Some("edge-7"));
    assert_eq!(meta.defaults.sourcetype.as_deref(), Some("fw:line"));
    assert_eq!(meta.defaults.index.as_deref(), Some("net"));
    assert_eq!(meta.defaults.time, Some(Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap()));

    let response =
        answer(server.post("/services/collector/raw/1.0", Some(OPS_TOKEN), "\r\n\n")).await;
    assert_eq!(response, (400, r#"{"text":"No data","code":5}"#.to_string()));
    let response =
        answer(server.post("/services/collector/raw?time=noon", Some(OPS_TOKEN), "x")).await;
    assert_eq!(response, (400, r#"{"text":"Invalid data format","code":6}"#.to_string()));
    server.stop().await;
}

#[tokio::test]
async fn channel_header_is_carried() {
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let request = server
        .post("/services/collector/event?channel=ignored", Some(OPS_TOKEN), r#"{"event":"x"}"#)
        .header("X-Splunk-Request-Channel", "0F3C2A4E-8B7D-4C1A-9E2F-1234567890AB");
    assert_eq!(answer(request).await.0, 200);
    let records = taken(&stored);
    let RecordMeta::HecEvent { meta, .. } = &records[0].meta else { panic!("not an event") };
    assert_eq!(meta.channel.as_deref(), Some("0F3C2A4E-8B7D-4C1A-9E2F-1234567890AB"));
    server.stop().await;
}

#[tokio::test]
async fn full_queue_answers_server_busy() {
    let busy = (503, r#"{"text":"Server is busy","code":9}"#.to_string());
    let (server, mut receiver) = Server::start(config(), 4).await;
    let larger_than_queue = r#"{"event":"x"}"#.repeat(5);
    let response = server
        .post("/services/collector", Some(OPS_TOKEN), larger_than_queue)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!((response.status().as_u16(), response.text().await.unwrap()), busy);

    let pending = tokio::spawn(answer(server.post(
        "/services/collector",
        Some(OPS_TOKEN),
        r#"{"event":"x"}"#.repeat(3),
    )));
    let held = receiver.recv().await.unwrap();
    let response =
        answer(server.post("/services/collector", Some(OPS_TOKEN), r#"{"event":"y"}"#.repeat(2)))
            .await;
    assert_eq!(response, busy);
    held.complete(BatchOutcome::Durable);
    assert_eq!(pending.await.unwrap(), (200, SUCCESS.to_string()));
    assert!(receiver.try_recv().is_none(), "refused requests enqueue nothing");
    server.stop().await;
}

#[tokio::test]
async fn store_failure_answers_internal_error_and_warns_once_per_interval() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (server, mut receiver) = Server::start(config(), 100).await;
    tokio::spawn(async move {
        while let Some(batch) = receiver.recv().await {
            batch.complete(BatchOutcome::Failed("disk full".into()));
        }
    });
    for _ in 0..3 {
        let response = answer(server.post("/services/collector", Some(OPS_TOKEN), r#"{"event":"x"}"#)).await;
        assert_eq!(response, (500, r#"{"text":"Internal server error","code":8}"#.to_string()));
    }
    let suppressed = snapshotter.snapshot().into_vec().into_iter().filter(|(key, ..)| key.key().name() == LOGS_SUPPRESSED);
    assert_eq!(suppressed.map(|(.., value)| value).collect::<Vec<_>>(), [DebugValue::Counter(2)], "one line, two held back");
    server.stop().await;
}

#[tokio::test]
async fn success_waits_for_durability_and_survives_shutdown() {
    let (server, mut receiver) = Server::start(config(), 100).await;
    let pending = tokio::spawn(answer(server.post(
        "/services/collector",
        Some(OPS_TOKEN),
        r#"{"event":"x"}"#,
    )));
    let held = receiver.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "no answer before the batch is durable");
    // Shutdown stops accepting but lets the request in flight finish.
    server.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    held.complete(BatchOutcome::Durable);
    assert_eq!(pending.await.unwrap(), (200, SUCCESS.to_string()));
    server.task.await.unwrap().unwrap();
    let refused =
        server.client.get(format!("{}/services/collector/health", server.base)).send().await;
    assert!(refused.is_err(), "no longer listening");
}

#[tokio::test]
async fn unknown_paths_and_acks() {
    let (server, _receiver) = Server::start(config(), 100).await;
    let response = answer(server.client.get(format!("{}/services/other", server.base))).await;
    assert_eq!(
        response,
        (
            404,
            r#"{"text":"The requested URL was not found on this server.","code":404}"#.to_string()
        )
    );
    let response =
        answer(server.post("/services/collector/ack", Some(OPS_TOKEN), r#"{"acks":[0]}"#)).await;
    assert_eq!(response, (400, r#"{"text":"ACK is disabled","code":14}"#.to_string()));
    let response = answer(server.post("/services/collector/ack", None, r#"{"acks":[0]}"#)).await;
    assert_eq!(response.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn start_up_errors_surface_from_bind() {
    let (sender, _receiver) = ingest_queue(10);
    let first = HecSource::bind(config(), sender.clone()).await.unwrap();
    let taken_port = HecConfig { listen: first.local_addr(), ..config() };
    assert!(matches!(
        HecSource::bind(taken_port, sender.clone()).await,
        Err(HecError::Bind { .. })
    ));
    let no_tokens = HecConfig { tokens: Vec::new(), ..config() };
    assert!(matches!(HecSource::bind(no_tokens, sender).await, Err(HecError::InvalidConfig(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_end_to_end() {
    let Some(curl) = which_curl() else {
        eprintln!("curl not installed; skipping the curl end-to-end check");
        return;
    };
    let (server, receiver) = Server::start(config(), 100).await;
    let stored = durable_consumer(receiver);
    let url = format!("{}/services/collector/event", server.base);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(curl)
            .args(["--silent", "--show-error", "--noproxy", "*", "--write-out", "\n%{http_code}"])
            .args(["-H", &format!("Authorization: Splunk {OPS_TOKEN}")])
            .args(["-H", "X-Splunk-Request-Channel: curl-channel"])
            .args([
                "--data-binary",
                "{\"event\":\"from curl\",\"sourcetype\":\"curl:test\"}\n{\"event\":{\"k\":1}}",
            ])
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{SUCCESS}\n200"));
    let records = taken(&stored);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].body, br#"{"event":"from curl","sourcetype":"curl:test"}"#);
    server.stop().await;
}

fn which_curl() -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join("curl")).find(|path| path.is_file())
}

/// One counter of a metrics snapshot: name, labels, value.
type CounterSample = (String, Vec<(String, String)>, u64);

/// The value of counter `name` with `source = hec` and the given extra labels.
fn counter(snapshot: &[CounterSample], name: &str, extra: &[(&str, &str)]) -> u64 {
    snapshot
        .iter()
        .filter(|(metric, labels, _)| {
            metric == name
                && labels.iter().any(|(key, value)| key == "source" && value == "hec")
                && extra.iter().all(|(key, value)| {
                    labels.iter().any(|label| label.0 == *key && label.1 == *value)
                })
        })
        .map(|(_, _, value)| value)
        .sum()
}

#[tokio::test]
async fn every_record_is_counted_as_accepted_or_rejected() {
    use crate::telemetry::{SOURCE_ACCEPTED, SOURCE_BYTES, SOURCE_RECEIVED, SOURCE_REJECTED};
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime: the server's tasks run on this thread and see this recorder.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (server, receiver) = Server::start(config(), 100).await;
    let _stored = durable_consumer(receiver);
    let path = "/services/collector";
    let good = r#"{"event":"a"}{"event":"b"}{"event":"c"}"#;
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), good)).await.0, 200);
    let second_bad = r#"{"event":"a"}{"time":1}{"event":"c"}"#;
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), second_bad)).await.0, 400);
    assert_eq!(answer(server.post(path, None, good)).await.0, 401);
    assert_eq!(answer(server.post(path, Some(OPS_TOKEN), "")).await.0, 400);
    assert_eq!(
        answer(server.post(path, Some(OPS_TOKEN), r#"{"event":"x"}"#.repeat(200))).await.0,
        503
    );

    let snapshot: Vec<CounterSample> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(count) => {
                let key = key.key();
                let labels =
                    key.labels().map(|label| (label.key().to_string(), label.value().to_string()));
                Some((key.name().to_string(), labels.collect(), count))
            }
            _ => None,
        })
        .collect();
    // 3 accepted; 2 read of the refused body (up to the bad envelope); 1 per request refused
    // before its body was cut; 200 refused for a full queue.
    assert_eq!(counter(&snapshot, SOURCE_RECEIVED, &[("kind", "hec")]), 3 + 2 + 1 + 1 + 200);
    assert_eq!(counter(&snapshot, SOURCE_ACCEPTED, &[]), 3);
    assert_eq!(counter(&snapshot, SOURCE_REJECTED, &[("reason", "event_missing")]), 2);
    assert_eq!(counter(&snapshot, SOURCE_REJECTED, &[("reason", "no_token")]), 1);
    assert_eq!(counter(&snapshot, SOURCE_REJECTED, &[("reason", "no_data")]), 1);
    assert_eq!(counter(&snapshot, SOURCE_REJECTED, &[("reason", "queue_full")]), 200);
    assert_eq!(counter(&snapshot, SOURCE_REJECTED, &[]), 2 + 1 + 1 + 200);
    let sent_bytes = good.len() + second_bad.len() + 13 * 200;
    assert_eq!(
        counter(&snapshot, SOURCE_BYTES, &[]),
        sent_bytes as u64,
        "refused-unread bodies count 0 bytes"
    );
    server.stop().await;
}
