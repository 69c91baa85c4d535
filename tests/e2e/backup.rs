//! `securewatch backup` under load and `securewatch restore` into a fresh directory: nothing acknowledged before the backup is lost.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use securewatch_tests::instance::{binary, post_hec, Instance};
use securewatch_tests::store::{events_and_rollups_per_bucket, sqlite};

/// Events per HEC request.
const PER_REQUEST: usize = 200;

/// Posts numbered events until `stop`, two requests at a time; every acknowledged request's
/// numbers go into `acknowledged`.
fn load(instance: &Instance, stop: Arc<AtomicBool>, acknowledged: Arc<Mutex<BTreeSet<usize>>>) -> Vec<std::thread::JoinHandle<()>> {
    let token = std::fs::read_to_string(instance.data_dir.join("hec_token")).expect("the generated HEC token");
    let url = instance.hec_url("/services/collector/event");
    (0..2)
        .map(|sender| {
            let (token, url, stop, acknowledged) = (token.trim().to_string(), url.clone(), Arc::clone(&stop), Arc::clone(&acknowledged));
            std::thread::spawn(move || {
                let mut request = sender;
                while !stop.load(Ordering::SeqCst) {
                    let numbers: Vec<usize> = (request * PER_REQUEST..(request + 1) * PER_REQUEST).collect();
                    let body: String = numbers
                        .iter()
                        .map(|seq| format!("{{\"host\":\"host-{}\",\"event\":\"seq={seq}\"}}\n", seq % 7))
                        .collect();
                    if post_hec(&url, &token, body.as_bytes()) {
                        acknowledged.lock().unwrap().extend(numbers);
                    }
                    request += 2;
                }
            })
        })
        .collect()
}

fn securewatch(args: &[&str]) -> (bool, String) {
    let output = Command::new(binary()).args(args).output().expect("securewatch");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn a_backup_taken_under_load_restores_everything_acknowledged_before_it() {
    backup_under_load("");
}

/// Without the journal the store snapshot alone must hold every acknowledged event.
#[test]
fn without_the_journal_the_store_snapshot_holds_everything_acknowledged() {
    backup_under_load("[journal]\nenabled = false\n");
}

/// Backs up a `run` with `config` while HEC takes events, restores, starts from the restored
/// directory, and checks the events and rollups.
fn backup_under_load(config: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let (live, restored) = (scratch.path().join("live"), scratch.path().join("restored"));
    let archive = scratch.path().join("backup.tar.gz");
    let instance = Instance::start(&live, config, &[]).expect("securewatch run");
    let (stop, acknowledged) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(BTreeSet::new())));
    let senders = load(&instance, Arc::clone(&stop), Arc::clone(&acknowledged));
    while acknowledged.lock().unwrap().len() < 20 * PER_REQUEST {
        std::thread::sleep(Duration::from_millis(50));
    }

    // The backup starts while HEC keeps taking events: what was acknowledged before it must come back.
    let before: BTreeSet<usize> = acknowledged.lock().unwrap().clone();
    let (ok, output) = securewatch(&["backup", "--data-dir", live.to_str().unwrap(), "--to", archive.to_str().unwrap()]);
    assert!(ok, "backup failed: {output}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    senders.into_iter().for_each(|sender| sender.join().unwrap());
    let after = acknowledged.lock().unwrap().len();
    assert!(after > before.len(), "the load went on during the backup ({} then {after})", before.len());
    assert!(instance.terminate().unwrap().success());

    let (ok, output) = securewatch(&["restore", archive.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()]);
    assert!(ok, "restore failed: {output}");
    let (ok, output) = securewatch(&["restore", archive.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()]);
    assert!(!ok && output.contains("is not empty"), "a second restore into the same directory: {output}");

    // The restored directory starts (journal read back, rollups restored) and stops cleanly.
    let instance = Instance::start(&restored, config, &[]).expect("securewatch run on the restored directory");
    std::thread::sleep(Duration::from_secs(2));
    assert!(instance.terminate().unwrap().success());

    let store = restored.join("securewatch.db");
    let messages = sqlite(&store, "SELECT message FROM events");
    let mut stored = BTreeSet::new();
    for message in messages.lines() {
        let seq: usize = message.strip_prefix("seq=").and_then(|seq| seq.parse().ok()).expect("a numbered event");
        assert!(stored.insert(seq), "seq={seq} stored twice");
    }
    let missing: Vec<&usize> = before.difference(&stored).collect();
    assert!(missing.is_empty(), "{} events acknowledged before the backup are missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);

    // Rollups (plus late counts) per bucket equal the stored events: the counts came back intact.
    let (events, counted) = events_and_rollups_per_bucket(&store);
    assert_eq!(counted, events, "rollups + late counts per bucket equal the stored events");
    eprintln!("{} acknowledged before the backup, {after} in all; {} restored", before.len(), stored.len());
}

#[test]
fn restore_refuses_what_is_not_a_backup() {
    let scratch = tempfile::tempdir().unwrap();
    let bogus = scratch.path().join("bogus.tar.gz");
    std::fs::write(&bogus, b"not an archive").unwrap();
    let target = scratch.path().join("data");
    let (ok, output) = securewatch(&["restore", bogus.to_str().unwrap(), "--data-dir", target.to_str().unwrap()]);
    assert!(!ok && output.contains("not a readable SecureWatch backup"), "{output}");
    assert!(!target.exists(), "a failed restore leaves no data directory behind");
    let (ok, output) = securewatch(&["backup", "--data-dir", target.to_str().unwrap(), "--to", scratch.path().join("x").to_str().unwrap()]);
    assert!(!ok && output.contains("no store at"), "{output}");
}
