//! Syslog source over real loopback sockets: UDP, TCP framing, limits, backpressure, `logger`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{SyslogConfig, SyslogError, SyslogSource, CONNECTIONS_REFUSED, IDLE_CONNECTIONS_CLOSED};
use crate::log_limit::LOGS_SUPPRESSED;
use crate::queue::{ingest_queue, BatchOutcome, IngestReceiver};
use crate::telemetry::{SOURCE_ACCEPTED, SOURCE_RECEIVED, SOURCE_REJECTED};

const WAIT: Duration = Duration::from_secs(10);

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    receiver: IngestReceiver,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), SyslogError>>,
}

fn loopback(name: &str) -> SyslogConfig {
    SyslogConfig {
        name: name.to_string(),
        udp_listen: Some("127.0.0.1:0".parse().unwrap()),
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..SyslogConfig::default()
    }
}

async fn start(config: SyslogConfig, queue_capacity: usize) -> Running {
    let (sender, receiver) = ingest_queue(queue_capacity);
    let source = SyslogSource::bind(config, sender).await.unwrap();
    let udp = source.udp_addr().unwrap();
    let tcp = source.tcp_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(shutdown.clone()));
    Running { udp, tcp, receiver, shutdown, task }
}

impl Running {
    /// Receives until `count` records arrived, completing each batch as the store would.
    async fn collect(&mut self, count: usize) -> Vec<RawRecord> {
        let mut records = Vec::new();
        tokio::time::timeout(WAIT, async {
            while records.len() < count {
                let batch = self.receiver.recv().await.expect("queue closed early");
                records.extend(batch.records.iter().cloned());
                batch.complete(BatchOutcome::Durable);
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("only {} of {count} records arrived: {records:?}", records.len())
        });
        records
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task).await.expect("run did not return").unwrap().unwrap();
    }
}

fn bodies(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|record| String::from_utf8_lossy(&record.body).into_owned()).collect()
}

/// Counter totals read from a [`DebuggingRecorder`], whose snapshots report (and reset) deltas.
struct Metrics {
    snapshotter: Snapshotter,
    totals: RefCell<HashMap<(String, String, String), u64>>,
}

impl Metrics {
    /// The total of counter `name` for `source` (and `reason`, when given).
    fn counter(&self, name: &str, source: &str, reason: Option<&str>) -> u64 {
        let mut totals = self.totals.borrow_mut();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let DebugValue::Counter(delta) = value else { continue };
            let label = |wanted: &str| {
                key.key()
                    .labels()
                    .find(|label| label.key() == wanted)
                    .map_or_else(String::new, |label| label.value().to_string())
            };
            let entry = (key.key().name().to_string(), label("source"), label("reason"));
            *totals.entry(entry).or_default() += delta;
        }
        totals
            .iter()
            .filter(|((total_name, total_source, total_reason), _)| {
                total_name == name
                    && total_source == source
                    && reason.is_none_or(|reason| total_reason == reason)
            })
            .map(|(_, total)| total)
            .sum()
    }

    async fn wait_for(&self, name: &str, source: &str, reason: Option<&str>, value: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.counter(name, source, reason) < value {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}{{reason={reason:?}}} never reached {value}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.counter(name, source, reason), value, "{name}{{reason={reason:?}}}");
    }
}

/// Runs `test` on a current-thread runtime whose metrics go to a recorder the test can read.
fn with_metrics<F: Future<Output = ()>>(test: impl FnOnce(Metrics) -> F) {
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics { snapshotter: recorder.snapshotter(), totals: RefCell::default() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(metrics)));
}

#[tokio::test]
async fn udp_datagram_arrives_with_its_peer() {
    let mut running = start(loopback("udp-peer"), 100).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.send_to(b"<13>Oct 11 22:14:15 host app: over udp\n\0", running.udp).await.unwrap();
    let records = running.collect(1).await;
    let record = &records[0];
    assert_eq!(record.body, b"<13>Oct 11 22:14:15 host app: over udp");
    assert_eq!(record.peer.as_deref(), Some(client.local_addr().unwrap().to_string().as_str()));
    assert_eq!(record.kind, SourceKind::Syslog);
    assert_eq!(&*record.source_name, "udp-peer");
    assert_eq!(record.meta, RecordMeta::None);
    assert!((chrono::Utc::now() - record.received).num_seconds().abs() < 60);
    running.stop().await;
}

#[test]
fn udp_oversized_and_queue_full_datagrams_are_counted() {
    with_metrics(|metrics| async move {
        let config = SyslogConfig { max_message_bytes: 64, ..loopback("udp-limits") };
        let mut running = start(config, 1).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(&[b'x'; 200], running.udp).await.unwrap();
        metrics.wait_for(SOURCE_REJECTED, "udp-limits", Some("too_large"), 1).await;
        client.send_to(b"<13>first", running.udp).await.unwrap();
        metrics.wait_for(SOURCE_ACCEPTED, "udp-limits", None, 1).await;
        // The queue holds one record and nobody drains it: the next datagram is lost, counted.
        client.send_to(b"<13>second", running.udp).await.unwrap();
        metrics.wait_for(SOURCE_REJECTED, "udp-limits", Some("queue_full"), 1).await;
        assert_eq!(bodies(&running.collect(1).await), ["<13>first"]);
        assert_eq!(metrics.counter(SOURCE_RECEIVED, "udp-limits", None), 3);
        running.stop().await;
    });
}

#[tokio::test]
async fn tcp_lf_frames_in_one_write_split_across_writes_and_unterminated_at_eof() {
    let mut running = start(loopback("tcp-lf"), 100).await;
    let mut client = TcpStream::connect(running.tcp).await.unwrap();
    let peer = client.local_addr().unwrap().to_string();
    client.write_all(b"<13>one\n<13>two\r\n<13>th").await.unwrap();
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.write_all(b"ree\n<13>fo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.write_all(b"ur\n<13>tail without newline").await.unwrap();
    drop(client);
    let records = running.collect(5).await;
    assert_eq!(
        bodies(&records),
        ["<13>one", "<13>two", "<13>three", "<13>four", "<13>tail without newline"]
    );
    assert!(records.iter().all(|record| record.peer.as_deref() == Some(peer.as_str())));
    assert!(
        records.windows(2).all(|pair| pair[0].received < pair[1].received),
        "receive times increase"
    );
    running.stop().await;
}

#[tokio::test]
async fn tcp_octet_counting_keeps_newlines_inside_messages() {
    let mut running = start(loopback("tcp-octets"), 100).await;
    let mut client = TcpStream::connect(running.tcp).await.unwrap();
    let first = "<13>1 - host app - - - first line\nsecond line";
    client.write_all(format!("{} {first}", first.len()).as_bytes()).await.unwrap();
    client.write_all(b"11 <13>split").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.write_all(b"ok").await.unwrap();
    drop(client);
    assert_eq!(bodies(&running.collect(2).await), [first, "<13>splitok"]);
    running.stop().await;
}

#[tokio::test]
async fn tcp_connection_may_mix_framings() {
    let mut running = start(loopback("tcp-mixed"), 100).await;
    let mut client = TcpStream::connect(running.tcp).await.unwrap();
    client
        .write_all(b"<13>lf one\n8 <13>octa<13>lf two\n9 <13>octb\n\n<13>lf three\n")
        .await
        .unwrap();
    drop(client);
    assert_eq!(
        bodies(&running.collect(5).await),
        ["<13>lf one", "<13>octa", "<13>lf two", "<13>octb\n", "<13>lf three"]
    );
    running.stop().await;
}

#[test]
fn tcp_oversized_frames_are_skipped_counted_and_the_next_frame_arrives() {
    with_metrics(|metrics| async move {
        let config = SyslogConfig { max_message_bytes: 32, ..loopback("tcp-limits") };
        let mut running = start(config, 100).await;
        let mut client = TcpStream::connect(running.tcp).await.unwrap();
        let long_line = format!("<13>{}\n", "x".repeat(100));
        let long_octets = format!("200 <13>{}", "y".repeat(196));
        let stream = format!("{long_line}<13>next\n{long_octets}<13>after\n");
        for chunk in stream.as_bytes().chunks(40) {
            client.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(client);
        assert_eq!(bodies(&running.collect(2).await), ["<13>next", "<13>after"]);
        metrics.wait_for(SOURCE_REJECTED, "tcp-limits", Some("too_large"), 2).await;
        assert_eq!(metrics.counter(SOURCE_ACCEPTED, "tcp-limits", None), 2);
        assert_eq!(metrics.counter(SOURCE_RECEIVED, "tcp-limits", None), 4);
        running.stop().await;
    });
}

#[tokio::test]
async fn tcp_backpressure_loses_nothing_while_the_queue_is_full() {
    let mut running = start(loopback("tcp-backpressure"), 1).await;
    let mut client = TcpStream::connect(running.tcp).await.unwrap();
    let lines: Vec<String> = (0..200).map(|index| format!("<13>message {index}")).collect();
    let writer = tokio::spawn(async move {
        for line in &lines {
            client.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        }
        lines
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running.receiver.depth(), 1, "the queue holds its capacity and no more");
    let records = running.collect(200).await;
    let sent = writer.await.unwrap();
    assert_eq!(bodies(&records), sent);
    running.stop().await;
}

#[test]
fn tcp_connections_over_the_limit_are_refused_and_counted() {
    with_metrics(|metrics| async move {
        let config = SyslogConfig { max_connections: 1, ..loopback("tcp-conns") };
        let mut running = start(config, 100).await;
        let mut first = TcpStream::connect(running.tcp).await.unwrap();
        first.write_all(b"<13>from the first\n").await.unwrap();
        assert_eq!(bodies(&running.collect(1).await), ["<13>from the first"]);
        let mut second = TcpStream::connect(running.tcp).await.unwrap();
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(WAIT, second.read(&mut byte)).await.expect("not closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "the second connection is closed by the server");
        metrics.wait_for(CONNECTIONS_REFUSED, "tcp-conns", None, 1).await;
        // Issue 24 finding 8: one WARN per refusal flooded the log. Within the interval only the
        // first is written; the others are counted as suppressed.
        for _ in 0..5 {
            let mut more = TcpStream::connect(running.tcp).await.unwrap();
            let closed = tokio::time::timeout(WAIT, more.read(&mut byte)).await.expect("not closed");
            assert!(matches!(closed, Ok(0) | Err(_)));
        }
        metrics.wait_for(CONNECTIONS_REFUSED, "tcp-conns", None, 6).await;
        metrics.wait_for(LOGS_SUPPRESSED, "tcp-conns", None, 5).await;
        first.write_all(b"<13>first still served\n").await.unwrap();
        assert_eq!(bodies(&running.collect(1).await), ["<13>first still served"]);
        running.stop().await;
    });
}

#[test]
fn an_idle_connection_makes_room_for_a_new_sender_when_every_slot_is_taken() {
    // Issue 24 finding 1: idle connections held every slot, and a sender's message was lost.
    with_metrics(|metrics| async move {
        let config = SyslogConfig { max_connections: 2, evict_idle_after_ms: 200, ..loopback("tcp-idle") };
        let mut running = start(config, 100).await;
        let mut idle = TcpStream::connect(running.tcp).await.unwrap();
        let mut busy = TcpStream::connect(running.tcp).await.unwrap();
        idle.write_all(b"<13>said once\n").await.unwrap();
        busy.write_all(b"<13>busy one\n").await.unwrap();
        assert_eq!(running.collect(2).await.len(), 2);
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.write_all(b"<13>busy again\n").await.unwrap();
        assert_eq!(bodies(&running.collect(1).await), ["<13>busy again"]);

        let mut sender = TcpStream::connect(running.tcp).await.unwrap();
        sender.write_all(b"<13>from a new sender\n").await.unwrap();
        assert_eq!(bodies(&running.collect(1).await), ["<13>from a new sender"]);
        metrics.wait_for(IDLE_CONNECTIONS_CLOSED, "tcp-idle", None, 1).await;
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(WAIT, idle.read(&mut byte)).await.expect("the idle one is closed");
        assert!(matches!(closed, Ok(0) | Err(_)), "the connection idle longest was closed");
        busy.write_all(b"<13>busy still served\n").await.unwrap();
        assert_eq!(bodies(&running.collect(1).await), ["<13>busy still served"]);
        running.stop().await;
    });
}

#[tokio::test]
async fn shutdown_flushes_what_open_connections_read() {
    let mut running = start(loopback("tcp-shutdown"), 100).await;
    let mut client = TcpStream::connect(running.tcp).await.unwrap();
    client.write_all(b"<13>complete\n<13>partial").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    running.shutdown.cancel();
    tokio::time::timeout(WAIT, &mut running.task)
        .await
        .expect("run did not return")
        .unwrap()
        .unwrap();
    let mut records = Vec::new();
    while let Some(batch) = running.receiver.try_recv() {
        records.extend(batch.records.iter().cloned());
        batch.complete(BatchOutcome::Durable);
    }
    assert_eq!(bodies(&records), ["<13>complete", "<13>partial"]);
    assert!(running.receiver.recv().await.is_none(), "the source dropped its queue senders");
    drop(client);
}

#[tokio::test]
async fn bind_failure_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config =
        SyslogConfig { udp_listen: None, tcp_listen: Some(addr), ..SyslogConfig::default() };
    let (sender, _receiver) = ingest_queue(10);
    let error = SyslogSource::bind(config, sender).await.unwrap_err();
    assert!(
        matches!(error, SyslogError::Bind { protocol: "tcp", addr: bound, .. } if bound == addr)
    );
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn enabled_source_with_nothing_to_listen_on_is_refused() {
    let (sender, _receiver) = ingest_queue(10);
    let config = SyslogConfig { enabled: true, udp_listen: None, tcp_listen: None, ..loopback("nothing") };
    let error = SyslogSource::bind(config, sender).await.unwrap_err().to_string();
    assert!(error.contains("udp_listen, tcp_listen and tls_listen are all \"off\"") && error.contains("enabled = false"), "{error}");
}

#[tokio::test]
async fn disabled_source_binds_nothing_and_returns_at_once() {
    let (sender, mut receiver) = ingest_queue(10);
    let config = SyslogConfig { enabled: false, ..loopback("off") };
    let source = SyslogSource::bind(config, sender).await.unwrap();
    assert_eq!((source.udp_addr(), source.tcp_addr()), (None, None));
    tokio::time::timeout(WAIT, source.run(CancellationToken::new())).await.unwrap().unwrap();
    assert!(receiver.recv().await.is_none());
}

/// Sends with util-linux `logger` in each transport and framing; skipped where it is missing.
#[tokio::test]
async fn logger_messages_arrive_and_parse() {
    if std::process::Command::new("logger").arg("--help").output().is_err() {
        eprintln!("logger is not installed; skipping");
        return;
    }
    let mut running = start(loopback("logger"), 100).await;
    let (udp_port, tcp_port) = (running.udp.port().to_string(), running.tcp.port().to_string());
    let runs: [(&str, &[&str]); 4] = [
        (
            udp_port.as_str(),
            &[
                "--udp",
                "--rfc5424",
                "--msgid",
                "M1",
                "--sd-id",
                "test@32473",
                "--sd-param",
                "k=\"v\"",
            ],
        ),
        (udp_port.as_str(), &["--udp", "--rfc3164"]),
        (tcp_port.as_str(), &["--tcp", "--rfc3164"]),
        (tcp_port.as_str(), &["--tcp", "--octet-count", "--rfc5424"]),
    ];
    for (index, (port, options)) in runs.iter().enumerate() {
        let mut arguments =
            vec!["--server", "127.0.0.1", "--port", port, "-t", "swtest", "-p", "auth.warning"];
        arguments.extend_from_slice(options);
        let message = format!("logger message {index}");
        arguments.push(&message);
        let arguments: Vec<String> =
            arguments.iter().map(|argument| argument.to_string()).collect();
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new("logger").args(&arguments).status()
        })
        .await
        .unwrap()
        .unwrap();
        assert!(status.success(), "logger {options:?} failed");
    }
    let mut bodies: Vec<String> =
        running.collect(runs.len()).await.iter().map(|record| String::from_utf8_lossy(&record.body).into_owned()).collect();
    bodies.sort_by_key(|body| body.rsplit_once("logger message ").map(|(_, index)| index.to_string()));
    for (index, body) in bodies.iter().enumerate() {
        // `auth.warning` is PRI 36; each framing hands over exactly one message, unframed.
        assert!(body.starts_with("<36>"), "{body:?}");
        assert!(body.contains("swtest") && body.ends_with(&format!("logger message {index}")), "{body:?}");
    }
    // How logger's messages normalise (appname, category, severity, time, no parse error) is
    // checked through the real binary: e2e `syslog::logger_over_udp_and_tcp_in_both_formats`.
    assert!(bodies[0].contains(" M1 ") && bodies[0].contains(r#"[test@32473 k="v"]"#), "{:?}", bodies[0]);
    running.stop().await;
}
