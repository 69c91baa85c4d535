//! Tests against a real Redis: the one tests/run.sh starts (`SECUREWATCH_TEST_REDIS_URL`), and
//! for the outage test a `redis-server` of its own. Each test uses its own stream.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::DateTime;
use securewatch_schemas::RawRecord;

use super::*;
use crate::bus::layout::tests::{numbered_records, test_service};
use crate::queue::{BatchOutcome, IngestBatch};

/// The test Redis, or `None` (test skipped) when none was started, unless
/// `SECUREWATCH_REQUIRE_REDIS=1` makes that a failure.
fn test_url() -> Option<String> {
    test_service("SECUREWATCH_TEST_REDIS_URL", "SECUREWATCH_REQUIRE_REDIS", "a Redis")
}

fn config(url: &str, test: &str) -> RedisBusConfig {
    let unique = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    RedisBusConfig {
        url: url.to_string(),
        stream: format!("securewatch-test:{test}:{unique}"),
        group: "workers".into(),
        consumer: "worker-1".into(),
        block_ms: 200,
        claim_min_idle_ms: 60_000,
        claim_interval_ms: 0,
        ..RedisBusConfig::default()
    }
}

/// `redis-cli -u URL ARGS…`, its trimmed output.
fn redis_cli(url: &str, args: &[&str]) -> String {
    let output = Command::new("redis-cli").arg("-u").arg(url).args(args).output().expect("redis-cli runs");
    assert!(output.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn xlen(url: &str, stream: &str) -> u64 {
    redis_cli(url, &["XLEN", stream]).parse().expect("XLEN answers a number")
}

/// `XPENDING stream group` summary: the first line is the number of pending entries.
fn xpending(url: &str, stream: &str, group: &str) -> u64 {
    let summary = redis_cli(url, &["XPENDING", stream, group]);
    summary.lines().next().and_then(|line| line.trim().parse().ok()).expect("XPENDING answers a count first")
}

/// Polls until `count` entries came or `deadline` passed.
async fn poll_until(consumer: &mut RedisConsumer, count: usize, deadline: Duration) -> Vec<BusEntry> {
    let start = Instant::now();
    let mut all = Vec::new();
    while all.len() < count && start.elapsed() < deadline {
        all.extend(consumer.poll().await.expect("poll"));
    }
    all
}

fn records_of(entries: &[BusEntry]) -> Vec<RawRecord> {
    entries.iter().map(|entry| entry.record.clone().expect("a record")).collect()
}

fn ids_of(entries: &[BusEntry]) -> Vec<String> {
    entries.iter().map(|entry| entry.id.clone()).collect()
}

#[tokio::test]
async fn ten_thousand_records_round_trip_exactly_and_are_acked() {
    let Some(url) = test_url() else { return };
    let config = config(&url, "round-trip");
    let producer = RedisProducer::connect(&config).await.unwrap();
    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let sent = numbered_records(0, 10_000);
    let mut produced_ids = Vec::new();
    for batch in sent.chunks(1000) {
        produced_ids.extend(producer.send(batch).await.unwrap());
    }
    assert_eq!(producer.stats().snapshot().produced, 10_000);
    assert_eq!(xlen(&url, &config.stream), 10_000);

    let entries = poll_until(&mut consumer, 10_000, Duration::from_secs(30)).await;
    assert_eq!(entries.len(), 10_000);
    assert_eq!(ids_of(&entries), produced_ids);
    assert!(records_of(&entries) == sent, "records differ after the round trip");
    assert_eq!(xpending(&url, &config.stream, &config.group), 10_000);

    assert_eq!(consumer.ack(&ids_of(&entries)).await.unwrap(), 10_000);
    assert_eq!(xpending(&url, &config.stream, &config.group), 0);
    assert_eq!(consumer.stats().snapshot(), BusCounts { consumed: 10_000, committed: 10_000, ..BusCounts::default() });
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn entries_stay_pending_until_acked_and_come_back_after_a_restart() {
    let Some(url) = test_url() else { return };
    let config = config(&url, "ack");
    let producer = RedisProducer::connect(&config).await.unwrap();
    let sent = numbered_records(0, 100);
    producer.send(&sent).await.unwrap();

    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let first = poll_until(&mut consumer, 100, Duration::from_secs(10)).await;
    assert_eq!(records_of(&first), sent);
    // Delivered but not acknowledged: all pending.
    assert_eq!(xpending(&url, &config.stream, &config.group), 100);
    drop(consumer);

    // The same worker restarted: its own pending entries first, in order.
    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let again = poll_until(&mut consumer, 100, Duration::from_secs(10)).await;
    assert_eq!(ids_of(&again), ids_of(&first));
    assert_eq!(consumer.stats().snapshot().redelivered, 100);
    assert_eq!(consumer.ack(&ids_of(&again)[..40]).await.unwrap(), 40);
    assert_eq!(xpending(&url, &config.stream, &config.group), 60);
    drop(consumer);

    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let rest = poll_until(&mut consumer, 60, Duration::from_secs(10)).await;
    assert_eq!(ids_of(&rest), ids_of(&first)[40..].to_vec());
    // Acknowledging twice counts once.
    assert_eq!(consumer.ack(&ids_of(&rest)).await.unwrap(), 60);
    assert_eq!(consumer.ack(&ids_of(&rest)).await.unwrap(), 0);
    assert_eq!(xpending(&url, &config.stream, &config.group), 0);
    assert!(consumer.poll().await.unwrap().is_empty());
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn entries_of_a_dead_consumer_are_claimed_by_another_once_idle() {
    let Some(url) = test_url() else { return };
    let mut config = config(&url, "claim");
    config.claim_min_idle_ms = 500;
    let producer = RedisProducer::connect(&config).await.unwrap();
    let sent = numbered_records(0, 50);
    producer.send(&sent).await.unwrap();

    let mut dead = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let taken = poll_until(&mut dead, 50, Duration::from_secs(10)).await;
    assert_eq!(taken.len(), 50);
    drop(dead); // dies without acknowledging

    let other = RedisBusConfig { consumer: "worker-2".into(), ..config.clone() };
    let mut survivor = RedisConsumer::connect(&other, StartPosition::Beginning).await.unwrap();
    // Not idle long enough yet: nothing is claimed, and there is nothing new.
    assert!(survivor.poll().await.unwrap().is_empty());
    assert_eq!(survivor.stats().snapshot().redelivered, 0);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let claimed = poll_until(&mut survivor, 50, Duration::from_secs(10)).await;
    assert_eq!(ids_of(&claimed), ids_of(&taken));
    assert_eq!(records_of(&claimed), sent);
    assert_eq!(survivor.stats().snapshot().redelivered, 50);
    // The entries now belong to worker-2.
    let owners = redis_cli(&url, &["XPENDING", &config.stream, &config.group, "-", "+", "100", "worker-2"]);
    assert_eq!(owners.lines().filter(|line| line.trim() == "worker-2").count(), 50, "{owners}");

    survivor.ack(&ids_of(&claimed)).await.unwrap();
    assert_eq!(survivor.lag().await.unwrap(), GroupLag { lag: Some(0), pending: 0 });
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn maxlen_trims_the_stream_approximately() {
    let Some(url) = test_url() else { return };
    let mut config = config(&url, "maxlen");
    config.max_len = 1000;
    let producer = RedisProducer::connect(&config).await.unwrap();
    let mut first_ids = Vec::new();
    for (n, batch) in numbered_records(0, 10_000).chunks(500).enumerate() {
        let ids = producer.send(batch).await.unwrap();
        if n == 0 {
            first_ids = ids;
        }
    }
    let length = xlen(&url, &config.stream);
    // Whole macro nodes (100 entries by default) are trimmed: at least the cap stays, and at
    // most about one node more.
    assert!((1000..=1100).contains(&length), "XLEN {length}");
    let oldest = redis_cli(&url, &["XRANGE", &config.stream, "-", "+", "COUNT", "1"]);
    assert!(!oldest.contains(&first_ids[0]), "the oldest entry survived trimming: {oldest}");
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn replays_read_from_an_explicit_id_and_a_new_group_starts_after_a_committed_one() {
    let Some(url) = test_url() else { return };
    let config = config(&url, "replay");
    let producer = RedisProducer::connect(&config).await.unwrap();
    let sent = numbered_records(0, 30);
    let ids = producer.send(&sent).await.unwrap();

    let mut consumer = RedisConsumer::connect(&config, StartPosition::After(ids[19].clone())).await.unwrap();
    let replay = consumer.read_range(&ids[9], 100).await.unwrap();
    assert_eq!(ids_of(&replay), ids[10..].to_vec());
    assert_eq!(records_of(&replay), sent[10..].to_vec());
    assert_eq!(ids_of(&consumer.read_range("-", 5).await.unwrap()), ids[..5].to_vec());
    // The replay left the group alone: it delivers what follows the committed id.
    let fresh = poll_until(&mut consumer, 10, Duration::from_secs(10)).await;
    assert_eq!(ids_of(&fresh), ids[20..].to_vec());

    // Ids are millisecond timestamps: a position by time includes entries from that time on.
    let millis: i64 = ids[0].split('-').next().unwrap().parse().unwrap();
    let position = StartPosition::at_time(DateTime::from_timestamp_millis(millis).unwrap());
    let StartPosition::After(after) = position else { panic!("not an id") };
    assert_eq!(ids_of(&consumer.read_range(&after, 100).await.unwrap()), ids);
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn lag_and_pending_are_reported_and_foreign_entries_are_handed_out_as_errors() {
    let Some(url) = test_url() else { return };
    let mut config = config(&url, "lag");
    config.batch_size = 20;
    let producer = RedisProducer::connect(&config).await.unwrap();
    producer.send(&numbered_records(0, 50)).await.unwrap();
    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let first = consumer.poll().await.unwrap();
    assert_eq!(first.len(), 20);
    consumer.ack(&ids_of(&first)[..10]).await.unwrap();
    assert_eq!(consumer.lag().await.unwrap(), GroupLag { lag: Some(30), pending: 10 });

    // An entry some other program wrote: delivered as an error, to dead-letter and ack.
    let foreign = redis_cli(&url, &["XADD", &config.stream, "*", "message", "hello"]);
    let rest = poll_until(&mut consumer, 31, Duration::from_secs(10)).await;
    let last = rest.last().unwrap();
    assert_eq!(last.id, foreign);
    assert_eq!(last.record, Err(DecodeError::Missing("v")));
    assert_eq!(consumer.stats().snapshot().undecodable, 1);
    redis_cli(&url, &["DEL", &config.stream]);
}

#[tokio::test]
async fn a_consumer_recreates_its_group_when_the_stream_is_gone() {
    let Some(url) = test_url() else { return };
    let config = config(&url, "nogroup");
    let producer = RedisProducer::connect(&config).await.unwrap();
    let mut consumer = RedisConsumer::connect(&config, StartPosition::End).await.unwrap();
    assert!(consumer.poll().await.unwrap().is_empty());
    // As after a Redis restart without persistence: stream and group are gone.
    assert_eq!(redis_cli(&url, &["DEL", &config.stream]), "1");
    let sent = numbered_records(0, 5);
    producer.send(&sent).await.unwrap();
    let entries = poll_until(&mut consumer, 5, Duration::from_secs(10)).await;
    assert_eq!(records_of(&entries), sent);
    assert_eq!(redis_cli(&url, &["XINFO", "GROUPS", &config.stream]).lines().nth(1), Some("workers"));
    redis_cli(&url, &["DEL", &config.stream]);
}

/// A `redis-server` of the test's own, killed when dropped (also when the test fails).
struct RedisServer(Child);

impl RedisServer {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `redis-server` of the test's own on `port`, without persistence.
fn start_redis(port: u16, dir: &std::path::Path) -> RedisServer {
    let mut server = RedisServer(Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts"));
    let url = format!("redis://127.0.0.1:{port}");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let ping = Command::new("redis-cli").args(["-u", &url, "PING"]).output();
        if ping.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG") {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    panic!("redis-server on port {port} did not answer within 10 s");
}

#[tokio::test]
async fn producer_fails_while_redis_is_down_and_recovers_after_restart() {
    if test_url().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = start_redis(port, dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let mut config = config(&url, "outage");
    config.response_timeout_ms = 1000;
    config.connect_timeout_ms = 500;
    let producer = RedisProducer::connect(&config).await.unwrap();
    producer.send(&numbered_records(0, 100)).await.unwrap();

    // Redis dies mid-stream: batches fail (HEC would answer 503), within a bounded time.
    server.stop();
    let started = Instant::now();
    let failed = producer.send(&numbered_records(100, 100)).await;
    assert!(failed.is_err(), "a batch was acknowledged while Redis was down");
    assert!(started.elapsed() < Duration::from_secs(10), "failing took {:?}", started.elapsed());
    let (batch, ack) = IngestBatch::with_ack(numbered_records(100, 100));
    assert!(producer.publish(batch).await.is_err());
    assert!(matches!(ack.await.unwrap(), BatchOutcome::Unavailable(reason) if reason.contains("bus unavailable")));

    // Back on the same port: the same producer recovers by itself.
    let server = start_redis(port, dir.path());
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(20) {
        if producer.send(&numbered_records(100, 100)).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the producer did not recover within 20 s of the restart");
    let (batch, ack) = IngestBatch::with_ack(numbered_records(200, 100));
    producer.publish(batch).await.unwrap();
    assert_eq!(ack.await.unwrap(), BatchOutcome::Durable);
    // The restarted server kept nothing: exactly the two batches sent since.
    assert_eq!(xlen(&url, &config.stream), 200);
    drop(server);
}

/// Records round-trip over `rediss://` with the test CA and a client certificate; without the
/// certificate, or trusting another CA, the connection is refused.
#[tokio::test]
async fn records_round_trip_over_tls_with_a_client_certificate() {
    let Some(url) = test_service("SECUREWATCH_TEST_REDIS_TLS_URL", "SECUREWATCH_REQUIRE_REDIS", "a Redis with TLS") else { return };
    let Some(dir) = test_service("SECUREWATCH_TEST_REDIS_TLS_DIR", "SECUREWATCH_REQUIRE_REDIS", "a Redis with TLS") else { return };
    let dir = std::path::PathBuf::from(dir);
    let config = RedisBusConfig {
        ca_file: Some(dir.join("ca.pem")),
        client_cert_file: Some(dir.join("client.pem")),
        client_key_file: Some(dir.join("client.key")),
        ..config(&url, "tls")
    };
    config.validate().unwrap();
    let producer = RedisProducer::connect(&config).await.unwrap();
    let mut consumer = RedisConsumer::connect(&config, StartPosition::Beginning).await.unwrap();
    let sent = numbered_records(0, 100);
    producer.send(&sent).await.unwrap();
    let entries = poll_until(&mut consumer, 100, Duration::from_secs(10)).await;
    assert!(records_of(&entries) == sent, "records differ after the round trip over TLS");
    assert_eq!(consumer.ack(&ids_of(&entries)).await.unwrap(), 100);

    let quick = |config: RedisBusConfig| RedisBusConfig { connect_timeout_ms: 500, ..config };
    let without_certificate = quick(RedisBusConfig { client_cert_file: None, client_key_file: None, ..config.clone() });
    assert!(RedisProducer::connect(&without_certificate).await.is_err(), "tls-auth-clients yes refuses it");
    let other = crate::tls::unrelated_ca_file();
    let untrusted = quick(RedisBusConfig { ca_file: Some(other.path().to_path_buf()), ..config.clone() });
    assert!(RedisProducer::connect(&untrusted).await.is_err(), "a server certificate of another CA is refused");
    let plain = redis_cli(test_url().as_deref().unwrap_or(&url), &["DEL", &config.stream]);
    assert!(plain == "1" || plain == "0");
}
