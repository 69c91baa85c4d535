//! The serve loop over loopback TCP with raw clients: timeouts, the connection limit, shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::*;

/// Longest wait for anything that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// Counters of [`CONNECTIONS_CLOSED`] by reason, from a [`DebuggingRecorder`].
struct Metrics {
    snapshotter: Snapshotter,
    closed: HashMap<String, u64>,
}

impl Metrics {
    fn closed(&mut self, reason: &str) -> u64 {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            if key.key().name() != CONNECTIONS_CLOSED {
                continue;
            }
            let label = key.key().labels().find(|label| label.key() == "reason").map(|label| label.value().to_string());
            if let (Some(label), DebugValue::Counter(delta)) = (label, value) {
                *self.closed.entry(label).or_default() += delta;
            }
        }
        self.closed.get(reason).copied().unwrap_or(0)
    }
}

fn with_metrics<F: Future<Output = ()>>(test: impl FnOnce(Metrics) -> F) {
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics { snapshotter: recorder.snapshotter(), closed: HashMap::new() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(metrics)));
}

/// A served test router: `/fast` answers at once, `/slow` once `release` gives a permit,
/// `/body` with the length of the body it read.
struct Served {
    address: SocketAddr,
    shutdown: CancellationToken,
    release: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(limits: HttpLimits) -> Served {
    let release = Arc::new(Semaphore::new(0));
    let router = Router::new()
        .route("/fast", get(|| async { "ok" }))
        .route("/slow", get({
            let release = Arc::clone(&release);
            move || async move {
                release.acquire().await.unwrap().forget();
                "slow ok"
            }
        }))
        .route("/body", post(|body: Bytes| async move { body.len().to_string() }))
        .route("/big", get(|| async { vec![b'x'; 64 << 20] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = HttpListener::new(listener, "test", limits);
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(listener.serve(router, shutdown.clone()));
    Served { address, shutdown, release, task }
}

fn limits() -> HttpLimits {
    HttpLimits {
        max_connections: 8,
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        body_min_bytes_per_sec: 1024,
        shutdown_grace: Duration::from_secs(30),
    }
}

/// Sends `request` and reads until the server closes; the text read.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_to_close(stream).await
}

async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // A reset after the answer is a close too: what was read is kept either way.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("the server closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the server closed `stream` (EOF or reset) within [`WAIT`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[test]
fn a_half_sent_header_is_closed_after_the_header_timeout_and_counted() {
    with_metrics(|mut metrics| async move {
        let served = serve(HttpLimits { header_read_timeout: Duration::from_millis(300), ..limits() }).await;
        let mut slow = TcpStream::connect(served.address).await.unwrap();
        slow.write_all(b"GET /fast HTTP/1.1\r\nHo").await.unwrap();
        assert!(closed_by_server(&mut slow).await, "the half-sent request does not hold the connection");
        // An idle keep-alive connection is closed by the same timer.
        let mut idle = TcpStream::connect(served.address).await.unwrap();
        idle.write_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(closed_by_server(&mut idle).await, "the idle keep-alive connection is closed");
        assert!(metrics.closed("header_timeout") >= 2);
        served.shutdown.cancel();
        served.task.await.unwrap();
    });
}

#[test]
fn a_trickling_body_is_cut_off_while_a_steady_one_is_read() {
    with_metrics(|mut metrics| async move {
        let limits = HttpLimits { body_read_timeout: Duration::from_millis(300), body_min_bytes_per_sec: 100_000, ..limits() };
        let served = serve(limits).await;
        let mut slow = TcpStream::connect(served.address).await.unwrap();
        slow.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab").await.unwrap();
        let answer = read_to_close(&mut slow).await;
        assert!(!answer.starts_with("HTTP/1.1 200"), "the body never completes: {answer}");
        assert_eq!(metrics.closed("body_timeout"), 1);
        // 20 KB in 4 parts over ~0.4 s: slower than the timeout alone allows, but each part earns time.
        let mut steady = TcpStream::connect(served.address).await.unwrap();
        steady.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20000\r\n\r\n").await.unwrap();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            steady.write_all(&[b'x'; 5000]).await.unwrap();
        }
        let answer = read_to_close(&mut steady).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("20000"), "{answer}");
        assert_eq!(metrics.closed("body_timeout"), 1);
        served.shutdown.cancel();
        served.task.await.unwrap();
    });
}

#[test]
fn at_the_limit_the_idlest_connection_makes_room_and_busy_ones_are_kept() {
    with_metrics(|mut metrics| async move {
        let served = serve(HttpLimits { max_connections: 2, ..limits() }).await;
        let mut oldest = TcpStream::connect(served.address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut busy = TcpStream::connect(served.address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A third connection: the idle one goes, the one with a request in flight stays.
        let mut newcomer = TcpStream::connect(served.address).await.unwrap();
        assert!(closed_by_server(&mut oldest).await);
        assert_eq!(metrics.closed("idle_evicted"), 1);
        let answer = exchange(&mut newcomer, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let newcomer_answer = {
            tokio::pin!(answer);
            // Both slots now hold requests in flight: a fourth connection is refused.
            tokio::select! {
                _ = &mut answer => panic!("/slow answered before its release"),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let mut refused = TcpStream::connect(served.address).await.unwrap();
            assert!(closed_by_server(&mut refused).await, "every connection is busy: refused");
            assert_eq!(metrics.closed("connection_limit"), 1);
            served.release.add_permits(2);
            answer.await
        };
        assert!(newcomer_answer.ends_with("slow ok"), "{newcomer_answer}");
        assert!(read_to_close(&mut busy).await.ends_with("slow ok"));
        served.shutdown.cancel();
        served.task.await.unwrap();
    });
}

#[test]
fn shutdown_closes_idle_and_half_sent_connections_at_once_and_answers_requests_in_flight() {
    with_metrics(|mut metrics| async move {
        let served = serve(limits()).await;
        let mut half = TcpStream::connect(served.address).await.unwrap();
        half.write_all(b"GET /fast HTTP/1.1\r\nHo").await.unwrap();
        let mut in_flight = TcpStream::connect(served.address).await.unwrap();
        in_flight.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        served.shutdown.cancel();
        // The grace is 30 s, yet the half-sent request is closed at once.
        assert!(closed_by_server(&mut half).await);
        assert!(!served.task.is_finished(), "the request in flight is still being answered");
        served.release.add_permits(1);
        let answer = read_to_close(&mut in_flight).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow ok"), "{answer}");
        tokio::time::timeout(WAIT, served.task).await.expect("the listener stops once answered").unwrap();
        assert!(TcpStream::connect(served.address).await.is_err(), "no longer accepting");
        assert_eq!(metrics.closed("shutdown_grace"), 0);
    });
}

#[test]
fn a_request_still_in_flight_after_the_grace_is_closed() {
    with_metrics(|mut metrics| async move {
        let served = serve(HttpLimits { shutdown_grace: Duration::from_millis(200), ..limits() }).await;
        let mut stuck = TcpStream::connect(served.address).await.unwrap();
        stuck.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        served.shutdown.cancel();
        tokio::time::timeout(WAIT, served.task).await.expect("the grace bounds the shutdown").unwrap();
        assert!(closed_by_server(&mut stuck).await);
        assert_eq!(metrics.closed("shutdown_grace"), 1);
    });
}

#[test]
fn an_answer_the_client_stops_reading_is_cut_off_after_the_timeout() {
    with_metrics(|mut metrics| async move {
        let served = serve(HttpLimits { header_read_timeout: Duration::from_millis(500), ..limits() }).await;
        let mut reader = TcpStream::connect(served.address).await.unwrap();
        // 64 MiB: far more than the socket buffers hold, and never read.
        reader.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while metrics.closed("write_timeout") == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(metrics.closed("write_timeout"), 1);
        served.shutdown.cancel();
        tokio::time::timeout(WAIT, served.task).await.expect("nothing left to wait for").unwrap();
    });
}
