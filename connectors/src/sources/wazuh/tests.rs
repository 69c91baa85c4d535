//! Tailer tests on real files in a temporary directory, with a consumer that completes batches.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::SourceKind;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::position::{Position, PositionStore};
use super::{StartAt, WazuhConfig, WazuhError, WazuhSource, SYMLINKS_REFUSED};
use crate::queue::{ingest_queue, BatchOutcome, IngestReceiver};

/// The alerts file and the data directory of one test.
struct Files {
    _alerts_dir: tempfile::TempDir,
    data_dir: tempfile::TempDir,
    path: PathBuf,
}

impl Files {
    fn new() -> Files {
        let alerts_dir = tempfile::tempdir().expect("temp dir");
        let path = alerts_dir.path().join("alerts.json");
        Files { _alerts_dir: alerts_dir, data_dir: tempfile::tempdir().expect("temp dir"), path }
    }

    fn config(&self) -> WazuhConfig {
        WazuhConfig {
            enabled: true,
            name: "test".to_string(),
            path: self.path.clone(),
            poll_interval_ms: 10,
            retry_backoff_ms: 10,
            ..WazuhConfig::default()
        }
    }

    fn persisted(&self) -> Option<Position> {
        PositionStore::open(self.data_dir.path(), "test").expect("store").load().expect("readable")
    }

    fn size(&self) -> u64 {
        fs::metadata(&self.path).expect("file exists").len()
    }
}

fn append(path: &Path, text: &str) {
    let mut file =
        OpenOptions::new().create(true).append(true).open(path).expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
    file.sync_all().expect("sync");
}

/// A running source and the records its consumer completed as durable.
struct Running {
    shutdown: CancellationToken,
    source: JoinHandle<Result<(), WazuhError>>,
    records: Arc<Mutex<Vec<RawRecord>>>,
}

impl Running {
    fn start(config: WazuhConfig, data_dir: &Path) -> Running {
        let (sender, receiver) = ingest_queue(10_000);
        let source = WazuhSource::new(config, data_dir, sender).expect("valid source");
        let records = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(complete_everything(receiver, Arc::clone(&records)));
        let shutdown = CancellationToken::new();
        let source = tokio::spawn(source.run(shutdown.clone()));
        Running { shutdown, source, records }
    }

    fn bodies(&self) -> Vec<String> {
        bodies(&self.records.lock().expect("lock"))
    }

    fn records(&self) -> Vec<RawRecord> {
        self.records.lock().expect("lock").clone()
    }

    async fn wait_for_lines(&self, count: usize) {
        wait_until(&format!("{count} lines"), || self.records.lock().expect("lock").len() >= count)
            .await;
        // Give a duplicate, if any, the chance to show up.
        tokio::time::sleep(Duration::from_millis(80)).await;
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.source.await.expect("task").expect("source ends cleanly");
    }
}

async fn complete_everything(mut receiver: IngestReceiver, records: Arc<Mutex<Vec<RawRecord>>>) {
    while let Some(batch) = receiver.recv().await {
        records.lock().expect("lock").extend(batch.records.iter().cloned());
        batch.complete(BatchOutcome::Durable);
    }
}

fn bodies(records: &[RawRecord]) -> Vec<String> {
    records.iter().map(|record| String::from_utf8_lossy(&record.body).into_owned()).collect()
}

fn file_meta(record: &RawRecord) -> (String, u64) {
    match &record.meta {
        RecordMeta::File { identity, offset } => (identity.clone(), *offset),
        other => panic!("expected file metadata, got {other:?}"),
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_position(files: &Files, offset: u64) {
    wait_until(&format!("position {offset}"), || {
        files.persisted().is_some_and(|p| p.offset == offset)
    })
    .await;
}

#[tokio::test]
async fn follows_appends_with_file_positions() {
    let files = Files::new();
    append(&files.path, "{\"n\":1}\n{\"n\":2}\n");
    let running = Running::start(files.config(), files.data_dir.path());
    running.wait_for_lines(2).await;
    append(&files.path, "{\"n\":3}\nnot json at all\n");
    running.wait_for_lines(4).await;
    assert_eq!(running.bodies(), ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "not json at all"]);

    let records = running.records();
    let offsets: Vec<u64> = records.iter().map(|record| file_meta(record).1).collect();
    assert_eq!(offsets, [0, 8, 16, 24]);
    let (identity, _) = file_meta(&records[0]);
    let (device, inode) = identity.split_once(':').expect("dev:inode");
    assert!(device.parse::<u64>().is_ok() && inode.parse::<u64>().is_ok(), "{identity}");
    assert_eq!(records[0].kind, SourceKind::Wazuh);
    assert_eq!(&*records[0].source_name, "test");
    assert_eq!(records[0].peer.as_deref(), Some(files.path.display().to_string().as_str()));

    wait_for_position(&files, files.size()).await;
    assert_eq!(files.persisted().expect("position").identity, identity);
    running.stop().await;
}

#[tokio::test]
async fn partial_line_waits_until_completed() {
    let files = Files::new();
    append(&files.path, "{\"a\":1}\n{\"b\"");
    let running = Running::start(files.config(), files.data_dir.path());
    running.wait_for_lines(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.bodies(), ["{\"a\":1}"], "the unterminated line must wait");
    wait_for_position(&files, 8).await;

    append(&files.path, ":2}\n");
    running.wait_for_lines(2).await;
    assert_eq!(running.bodies(), ["{\"a\":1}", "{\"b\":2}"]);
    assert_eq!(file_meta(&running.records()[1]).1, 8);
    running.stop().await;
}

#[tokio::test]
async fn rotation_by_rename_loses_and_duplicates_nothing() {
    let files = Files::new();
    let rotated = files.path.with_extension("json.1");
    append(&files.path, "a1\na2\na3\n");
    let running = Running::start(files.config(), files.data_dir.path());
    running.wait_for_lines(3).await;

    append(&files.path, "a4\n");
    fs::rename(&files.path, &rotated).expect("rotate");
    // The writer still holds the old file for a moment: these land in the renamed file.
    append(&rotated, "a5\na6-unterminated");
    append(&files.path, "b1\nb2\n");
    running.wait_for_lines(8).await;

    assert_eq!(running.bodies(), ["a1", "a2", "a3", "a4", "a5", "a6-unterminated", "b1", "b2"]);
    let records = running.records();
    let (old_identity, _) = file_meta(&records[0]);
    let (new_identity, first_new_offset) = file_meta(&records[6]);
    assert_ne!(old_identity, new_identity);
    assert_eq!(file_meta(&records[5]), (old_identity, 15));
    assert_eq!(first_new_offset, 0);
    wait_until("position in the new file", || {
        files.persisted().is_some_and(|p| p.identity == new_identity && p.offset == 6)
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn truncation_restarts_at_offset_zero() {
    let files = Files::new();
    append(&files.path, "first line of the file\nsecond line of the file\n");
    let running = Running::start(files.config(), files.data_dir.path());
    running.wait_for_lines(2).await;
    let (identity, _) = file_meta(&running.records()[0]);

    fs::File::create(&files.path).expect("truncate in place");
    append(&files.path, "t1\n");
    running.wait_for_lines(3).await;
    assert_eq!(running.bodies(), ["first line of the file", "second line of the file", "t1"]);
    assert_eq!(file_meta(&running.records()[2]), (identity.clone(), 0));
    wait_until("position after truncation", || {
        files.persisted() == Some(Position { identity: identity.clone(), offset: 3 })
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn restart_neither_rereads_nor_skips() {
    let files = Files::new();
    append(&files.path, "l1\nl2\n");
    let first = Running::start(files.config(), files.data_dir.path());
    first.wait_for_lines(2).await;
    wait_for_position(&files, 6).await;
    first.stop().await;

    append(&files.path, "l3\nl4\n");
    let second = Running::start(files.config(), files.data_dir.path());
    second.wait_for_lines(2).await;
    assert_eq!(second.bodies(), ["l3", "l4"]);
    let offsets: Vec<u64> = second.records().iter().map(|record| file_meta(record).1).collect();
    assert_eq!(offsets, [6, 9]);
    wait_for_position(&files, 12).await;
    second.stop().await;
}

#[tokio::test]
async fn restart_after_rotation_finishes_the_renamed_file_first() {
    let files = Files::new();
    append(&files.path, "old-1\n");
    let first = Running::start(files.config(), files.data_dir.path());
    first.wait_for_lines(1).await;
    wait_for_position(&files, 6).await;
    first.stop().await;

    append(&files.path, "old-2\n");
    fs::rename(&files.path, files.path.with_extension("json.1")).expect("rotate");
    append(&files.path, "new-1\n");
    let second = Running::start(files.config(), files.data_dir.path());
    second.wait_for_lines(2).await;
    assert_eq!(second.bodies(), ["old-2", "new-1"]);
    second.stop().await;
}

#[tokio::test]
async fn failed_ack_keeps_the_position_and_sends_the_lines_again() {
    let files = Files::new();
    append(&files.path, "r1\nr2\n");
    let (sender, mut receiver) = ingest_queue(100);
    let source = WazuhSource::new(files.config(), files.data_dir.path(), sender).expect("source");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(source.run(shutdown.clone()));

    let batch = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("batch")
        .expect("open");
    let first_attempt = batch.records.clone();
    assert_eq!(bodies(&first_attempt), ["r1", "r2"]);
    batch.complete(BatchOutcome::Failed("disk full".to_string()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        files.persisted().map(|p| p.offset),
        Some(0),
        "a failed batch must not move the position"
    );

    let retry = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .expect("retry")
        .expect("open");
    assert_eq!(
        retry.records, first_attempt,
        "the same lines with the same positions are sent again"
    );
    retry.complete(BatchOutcome::Durable);
    wait_for_position(&files, 6).await;

    shutdown.cancel();
    task.await.expect("task").expect("clean stop");
}

#[tokio::test]
async fn lines_over_the_limit_are_skipped_and_the_rest_kept() {
    let files = Files::new();
    let config = WazuhConfig { max_line_bytes: 32, ..files.config() };
    let long = "x".repeat(100);
    append(&files.path, &format!("short-1\n{long}\nshort-2\n"));
    let running = Running::start(config, files.data_dir.path());
    running.wait_for_lines(2).await;

    // An overlong line still being written: skipped up to its newline.
    append(&files.path, &"y".repeat(80));
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&files.path, "yyyy\nshort-3\n");
    running.wait_for_lines(3).await;

    assert_eq!(running.bodies(), ["short-1", "short-2", "short-3"]);
    let offsets: Vec<u64> = running.records().iter().map(|record| file_meta(record).1).collect();
    assert_eq!(offsets, [0, 109, 202]);
    wait_for_position(&files, files.size()).await;
    running.stop().await;
}

#[tokio::test]
async fn start_at_end_skips_existing_complete_lines() {
    let files = Files::new();
    append(&files.path, "old-1\nold-2\npart");
    let config = WazuhConfig { start_at: StartAt::End, ..files.config() };
    let running = Running::start(config, files.data_dir.path());
    wait_for_position(&files, 12).await;
    append(&files.path, "ial\nnew-1\n");
    running.wait_for_lines(2).await;
    assert_eq!(running.bodies(), ["partial", "new-1"]);
    running.stop().await;
}

#[tokio::test]
async fn waits_for_the_file_to_appear() {
    let files = Files::new();
    let running = Running::start(files.config(), files.data_dir.path());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(running.bodies().is_empty());
    append(&files.path, "first\n");
    running.wait_for_lines(1).await;
    assert_eq!(running.bodies(), ["first"]);
    running.stop().await;
}

#[test]
fn config_defaults_and_unknown_keys() {
    let parsed: WazuhConfig = serde_json::from_str("{}").expect("all keys default");
    assert_eq!(parsed, WazuhConfig::default());
    assert!(!parsed.enabled);
    assert_eq!(parsed.path, PathBuf::from("/var/ossec/logs/alerts/alerts.json"));
    assert_eq!(parsed.max_line_bytes, 1024 * 1024);
    assert_eq!(parsed.start_at, StartAt::Beginning);
    assert!(!parsed.follow_symlinks, "symlinks are refused unless configured");

    let parsed: WazuhConfig =
        serde_json::from_str(r#"{"start_at":"end","name":"mgr-1","batch_size":10}"#)
            .expect("valid keys");
    assert_eq!(parsed.start_at, StartAt::End);
    assert_eq!(parsed.batch_size, 10);
    assert!(serde_json::from_str::<WazuhConfig>(r#"{"paht":"/tmp/x"}"#).is_err());
    assert!(serde_json::from_str::<WazuhConfig>(r#"{"start_at":"middle"}"#).is_err());
}

#[test]
fn invalid_config_is_refused_at_construction() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    for config in [
        WazuhConfig { name: "../escape".to_string(), ..WazuhConfig::default() },
        WazuhConfig { name: String::new(), ..WazuhConfig::default() },
        WazuhConfig { batch_size: 0, ..WazuhConfig::default() },
        WazuhConfig { poll_interval_ms: 0, ..WazuhConfig::default() },
    ] {
        let (sender, _receiver) = ingest_queue(10);
        let result = WazuhSource::new(config.clone(), data_dir.path(), sender);
        assert!(matches!(result, Err(WazuhError::InvalidConfig(_))), "{config:?}");
    }
}

/// Counter totals from a [`DebuggingRecorder`] (its snapshots report deltas), by name and one
/// label (`"source"` unless asked for another).
struct Counters {
    snapshotter: Snapshotter,
    totals: HashMap<(String, String), u64>,
}

impl Counters {
    fn get(&mut self, name: &str, label: &str, value: &str) -> u64 {
        for (key, _, _, delta) in self.snapshotter.snapshot().into_vec() {
            let DebugValue::Counter(delta) = delta else { continue };
            for found in key.key().labels() {
                let id = (key.key().name().to_string(), format!("{}={}", found.key(), found.value()));
                *self.totals.entry(id).or_default() += delta;
            }
        }
        self.totals.get(&(name.to_string(), format!("{label}={value}"))).copied().unwrap_or(0)
    }
}

/// Runs `test` on a current-thread runtime with a local metrics recorder.
fn with_counters<F: Future<Output = ()>>(test: impl FnOnce(Counters) -> F) {
    let recorder = DebuggingRecorder::new();
    let counters = Counters { snapshotter: recorder.snapshotter(), totals: HashMap::new() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(counters)));
}

#[test]
fn a_line_cut_by_truncation_is_counted_as_rejected() {
    // Issue 24 finding 5: the unterminated line read before a truncation was dropped uncounted.
    with_counters(|mut counters| async move {
        let files = Files::new();
        append(&files.path, "full line\nhalf a li");
        let running = Running::start(files.config(), files.data_dir.path());
        running.wait_for_lines(1).await;
        wait_for_position(&files, 10).await;
        tokio::time::sleep(Duration::from_millis(50)).await; // the half line is read and waits
        fs::File::create(&files.path).expect("truncate in place (copytruncate)");
        append(&files.path, "t1\n");
        running.wait_for_lines(2).await;
        assert_eq!(running.bodies(), ["full line", "t1"]);
        let rejected = counters.get(crate::telemetry::SOURCE_REJECTED, "reason", "truncated_line");
        assert_eq!(rejected, 1, "the dropped half line is counted");
        running.stop().await;
    });
}

#[test]
fn a_symlink_at_the_path_is_refused_logged_once_and_counted() {
    // Issue 24 finding 7: a symlink swapped in for alerts.json was followed.
    with_counters(|mut counters| async move {
        let files = Files::new();
        let elsewhere = tempfile::tempdir().expect("temp dir");
        let secret = elsewhere.path().join("secret");
        fs::write(&secret, "root:x:0:0:root:/root:/bin/sh\n").expect("write");
        std::os::unix::fs::symlink(&secret, &files.path).expect("symlink");
        let running = Running::start(files.config(), files.data_dir.path());
        tokio::time::sleep(Duration::from_millis(200)).await; // ~20 polls
        assert!(running.bodies().is_empty(), "the link's target was read: {:?}", running.bodies());
        assert_eq!(counters.get(SYMLINKS_REFUSED, "source", "test"), 1, "once per appearance, not per poll");

        // A regular file in its place is followed.
        fs::remove_file(&files.path).expect("remove link");
        append(&files.path, "a1\n");
        running.wait_for_lines(1).await;

        // A link swapped in by "rotation": the old file is still followed, the link is not.
        let rotated = files.path.with_extension("json.1");
        fs::rename(&files.path, &rotated).expect("rotate");
        std::os::unix::fs::symlink(&secret, &files.path).expect("symlink");
        append(&rotated, "a2\n");
        running.wait_for_lines(2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(running.bodies(), ["a1", "a2"]);
        assert_eq!(counters.get(SYMLINKS_REFUSED, "source", "test"), 2);
        running.stop().await;
    });
}

#[tokio::test]
async fn follow_symlinks_reads_through_a_link() {
    let files = Files::new();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let target = elsewhere.path().join("alerts.json");
    append(&target, "x1\n");
    std::os::unix::fs::symlink(&target, &files.path).expect("symlink");
    let config = WazuhConfig { follow_symlinks: true, ..files.config() };
    let running = Running::start(config, files.data_dir.path());
    running.wait_for_lines(1).await;
    append(&target, "x2\n");
    running.wait_for_lines(2).await;
    assert_eq!(running.bodies(), ["x1", "x2"]);
    running.stop().await;
}
