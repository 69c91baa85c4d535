//! HEC indexer acknowledgement through the real binary with curl: ids per channel, `true` only
//! once the store committed (the store's write lock is held by another SQLite connection
//! meanwhile), a `kill -9` between accept and store, the bus in `securewatch ingest`, and the
//! Python `splunk-hec-handler` client on a token without acks.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use securewatch_tests::instance::{curl, Instance, Ports};
use securewatch_tests::store::sqlite;
use serde_json::{json, Value};

const ACK_TOKEN: &str = "acked-token-0123456789abcdef0123";
const PLAIN_TOKEN: &str = "plain-token-0123456789abcdef0123";

/// Two tokens: one with indexer acknowledgement, one without.
fn tokens() -> String {
    format!(
        "[[sources.hec.tokens]]\nname = \"acked\"\ntoken = \"{ACK_TOKEN}\"\nack = true\n\n\
         [[sources.hec.tokens]]\nname = \"plain\"\ntoken = \"{PLAIN_TOKEN}\"\n"
    )
}

/// POSTs `body` to HEC `path` with `token` and, when given, the channel header.
fn post(hec_port: u16, path: &str, token: &str, channel: Option<&str>, body: &str) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{hec_port}{path}");
    let auth = format!("Authorization: Splunk {token}");
    let channel_header = channel.map(|channel| format!("X-Splunk-Request-Channel: {channel}"));
    let mut args = vec!["-X", "POST", url.as_str(), "-H", auth.as_str(), "--data-binary", body];
    if let Some(header) = &channel_header {
        args.extend(["-H", header.as_str()]);
    }
    let (status, text) = curl(&args).unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Sends `body` to `/services/collector/event` on `channel` with the acknowledged token and
/// returns its `ackId`.
fn send(hec_port: u16, channel: &str, body: &str) -> u64 {
    let (status, answer) = post(hec_port, "/services/collector/event", ACK_TOKEN, Some(channel), body);
    assert_eq!((status, &answer["text"], &answer["code"]), (200, &json!("Success"), &json!(0)), "{answer}");
    answer["ackId"].as_u64().unwrap_or_else(|| panic!("no ackId in {answer}"))
}

/// `POST /services/collector/ack` for `ids` of `channel`: each id's status.
fn poll(hec_port: u16, channel: &str, ids: &[u64]) -> Value {
    let body = json!({ "acks": ids }).to_string();
    let (status, answer) = post(hec_port, "/services/collector/ack", ACK_TOKEN, Some(channel), &body);
    assert_eq!(status, 200, "{answer}");
    answer["acks"].clone()
}

/// Polls `id` of `channel` until it reads `true` (as a client does); false if it never does.
fn wait_true(hec_port: u16, channel: &str, id: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if poll(hec_port, channel, &[id])[id.to_string()] == json!(true) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A second SQLite connection (Python's `sqlite3`) holding the store's write lock
/// (`BEGIN IMMEDIATE`) until dropped: the store's writer waits on it (busy timeout 10 s).
struct WriteLock {
    child: Child,
    release: Option<ChildStdin>,
}

const HOLD_WRITE_LOCK: &str = r#"
import sqlite3, sys
store = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
store.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
store.execute("ROLLBACK")
"#;

impl WriteLock {
    fn take(store: &Path) -> WriteLock {
        let mut child = Command::new("python3")
            .args(["-c", HOLD_WRITE_LOCK])
            .arg(store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "locked", "the write lock was not taken");
        let release = child.stdin.take();
        WriteLock { child, release }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let Some(mut release) = self.release.take() {
            let _ = release.write_all(b"go\n");
        }
        let _ = self.child.wait();
    }
}

/// `q=` of the events API for `text` (spaces encoded).
fn search(text: &str) -> String {
    format!("q={}&limit=100", text.replace(' ', "%20"))
}

fn message_count(instance: &Instance, text: &str) -> usize {
    instance.events(&search(text)).unwrap().len()
}

#[test]
fn ack_ids_count_per_channel_and_turn_true_only_after_the_store_commit() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), &tokens(), &[]).unwrap();
    let hec = instance.ports.hec;

    // A token with acks needs a channel, on /event, /raw and /ack alike.
    let missing = json!({"text": "Data channel is missing", "code": 10});
    assert_eq!(post(hec, "/services/collector/event", ACK_TOKEN, None, r#"{"event":"x"}"#), (400, missing.clone()));
    assert_eq!(post(hec, "/services/collector/raw", ACK_TOKEN, None, "x"), (400, missing.clone()));
    assert_eq!(post(hec, "/services/collector/ack", ACK_TOKEN, None, r#"{"acks":[0]}"#), (400, missing));
    let disabled = post(hec, "/services/collector/ack", PLAIN_TOKEN, Some("c"), r#"{"acks":[0]}"#);
    assert_eq!(disabled, (400, json!({"text": "ACK is disabled", "code": 14})));

    // Ids count per channel from 0; `?channel=` names a channel as the header does.
    assert_eq!(send(hec, "chan-a", r#"{"event":"first on a"}"#), 0);
    assert_eq!(send(hec, "chan-a", r#"{"event":"second on a"}"#), 1);
    let (status, answer) = post(hec, "/services/collector/raw?channel=chan-b", ACK_TOKEN, None, "first on b");
    assert_eq!((status, answer), (200, json!({"text": "Success", "code": 0, "ackId": 0})));
    assert!(wait_true(hec, "chan-a", 1), "id 1 of chan-a never turned true");
    assert_eq!(message_count(&instance, "second on a"), 1, "true means stored");
    assert!(wait_true(hec, "chan-b", 0));

    // The store's writer is held: the answer still comes (the batch is journaled), the id
    // stays false, nothing is stored; once the lock goes, the commit turns it true.
    let lock = WriteLock::take(&dir.path().join("securewatch.db"));
    let held = send(hec, "chan-a", r#"{"event":"while the writer is held"}"#);
    assert_eq!(held, 2);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(poll(hec, "chan-a", &[held]), json!({"2": false}), "false while the store cannot commit");
    }
    assert_eq!(message_count(&instance, "while the writer is held"), 0);
    drop(lock);
    assert!(wait_true(hec, "chan-a", held), "true after the commit");
    assert_eq!(message_count(&instance, "while the writer is held"), 1);
    let read_once = json!({"0": true, "1": false, "2": false, "3": false});
    assert_eq!(poll(hec, "chan-a", &[0, 1, 2, 3]), read_once, "unread until now: 0; read already: 1 and 2");

    let (_, metrics) = curl(&[&instance.api_url("/metrics")]).unwrap();
    assert!(metrics.lines().any(|line| line.starts_with("securewatch_hec_ack_channels{") && line.ends_with(" 2")), "{metrics}");
    assert!(metrics.lines().any(|line| line.starts_with("securewatch_hec_ack_pending{") && line.ends_with(" 0")));
    assert!(instance.terminate().unwrap().success());
}

#[test]
fn a_kill_between_accept_and_store_leaves_the_id_unknown_and_the_resent_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), &tokens(), &[]).unwrap();
    let ports: Ports = instance.ports;
    let batch = (0..3).map(|n| format!(r#"{{"time":1700000000,"event":"resent event {n}"}}"#)).collect::<String>();
    let lock = WriteLock::take(&dir.path().join("securewatch.db"));
    assert_eq!(send(ports.hec, "crash", &batch), 0, "accepted (journaled) while the store cannot commit");
    assert_eq!(poll(ports.hec, "crash", &[0]), json!({"0": false}));
    instance.kill().unwrap();
    drop(lock);

    let again = Instance::start_with_ports(dir.path(), ports, &tokens(), &[]).unwrap();
    assert_eq!(poll(ports.hec, "crash", &[0]), json!({"0": false}), "acks survive no restart: the id is unknown");
    let (_, metrics) = curl(&[&again.api_url("/metrics")]).unwrap();
    let replayed = metrics.lines().find(|line| line.starts_with("securewatch_journal_replayed_total "));
    assert_eq!(replayed, Some("securewatch_journal_replayed_total 3"), "journaled before the kill, not stored");
    // The client never saw `true`, so it sends the batch again, on the same channel.
    let resent = send(ports.hec, "crash", &batch);
    assert!(wait_true(ports.hec, "crash", resent));
    assert!(again.terminate().unwrap().success());
    let stored = sqlite(
        &dir.path().join("securewatch.db"),
        "SELECT count(*), count(DISTINCT id) FROM events WHERE message LIKE 'resent event %'",
    );
    assert_eq!(stored.trim(), "3|3", "journaled before the kill, re-sent after it: each event stored once");
}

/// `securewatch ingest` with acks: the answer waits for the bus (there is no journal), so the
/// id reads `true` at once; a worker then stores the events from the bus.
fn ingest_acks_over_the_bus(bus_config: &str) {
    let root = tempfile::tempdir().unwrap();
    let config = format!("{}\n{bus_config}", tokens());
    let ingest = Instance::start_role("ingest", &root.path().join("ingest"), Ports::free(), &config, &[]).unwrap();
    let worker = Instance::start_role("worker", &root.path().join("worker"), Ports::free(), &config, &[]).unwrap();
    let hec = ingest.ports.hec;
    assert_eq!(send(hec, "bus", r#"{"event":"over the bus one"}"#), 0);
    assert_eq!(send(hec, "bus", r#"{"event":"over the bus two"}"#), 1);
    assert_eq!(poll(hec, "bus", &[0, 1, 2]), json!({"0": true, "1": true, "2": false}), "confirmed by the bus");
    assert_eq!(worker.wait_events(&search("over the bus"), 2).unwrap().len(), 2);
    assert!(ingest.terminate().unwrap().success());
    assert!(worker.terminate().unwrap().success());
}

#[test]
fn ingest_acks_are_true_once_redis_took_the_batch() {
    let Ok(url) = std::env::var("SECUREWATCH_TEST_REDIS_URL") else {
        assert_ne!(std::env::var("SECUREWATCH_REQUIRE_REDIS").as_deref(), Ok("1"), "Redis required");
        eprintln!("skipped: SECUREWATCH_TEST_REDIS_URL is unset (tests/run.sh sets it)");
        return;
    };
    let stream = format!("acks-{}", std::process::id());
    ingest_acks_over_the_bus(&format!("[bus]\nkind = \"redis\"\n[bus.redis]\nurl = \"{url}\"\nstream = \"{stream}\"\n"));
}

#[test]
fn ingest_acks_are_true_once_kafka_took_the_batch() {
    let Ok(brokers) = std::env::var("SECUREWATCH_TEST_KAFKA_BROKERS") else {
        assert_ne!(std::env::var("SECUREWATCH_REQUIRE_KAFKA").as_deref(), Ok("1"), "Kafka required");
        eprintln!("skipped: SECUREWATCH_TEST_KAFKA_BROKERS is unset (tests/run.sh sets it)");
        return;
    };
    let topic = format!("acks-{}", std::process::id());
    ingest_acks_over_the_bus(&format!(
        "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\nlinger_ms = 5\n"
    ));
}

/// The PyPI `splunk-hec-handler` logging handler, sending to a token without acks.
const PYTHON_HANDLER: &str = r#"
import logging, sys
from splunk_hec_handler import SplunkHecHandler
handler = SplunkHecHandler("127.0.0.1", sys.argv[2], port=int(sys.argv[1]), proto="http", ssl_verify=False, source="python-app", sourcetype="python:log")
logger = logging.getLogger("securewatch-e2e")
logger.setLevel(logging.INFO)
logger.addHandler(handler)
logger.warning("handler message one")
logger.error({"message": "handler message two", "user": "alice"})
"#;

#[test]
fn the_python_splunk_hec_handler_still_works_with_acks_off() {
    let installed = Command::new("python3").args(["-c", "import splunk_hec_handler"]).status();
    if !installed.is_ok_and(|status| status.success()) {
        assert_ne!(std::env::var("SECUREWATCH_REQUIRE_PYTHON_HEC").as_deref(), Ok("1"), "splunk-hec-handler required");
        eprintln!("skipped: the PyPI package splunk-hec-handler is not installed (tests/run.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), &tokens(), &[]).unwrap();
    let output = Command::new("python3")
        .args(["-c", PYTHON_HANDLER, &instance.ports.hec.to_string(), PLAIN_TOKEN])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let events = instance.wait_events(&search("handler message"), 2).unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    let two = events.iter().find(|event| event["message"] == "handler message two").expect("message two");
    assert_eq!(two["fields"]["user"], "alice");
    assert_eq!(two["category"], "python:log");
    assert!(instance.terminate().unwrap().success());
}
