//! Watcher tests on files in a temporary directory: start, edit, bad edit, deleted line, run.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use securewatch_schemas::{Asset, LookupKey, Reference};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::telemetry;

/// Metric values read from a [`DebuggingRecorder`] (counters report deltas; they are summed).
struct Metrics {
    snapshotter: Snapshotter,
    counters: HashMap<(String, String), u64>,
    gauges: HashMap<(String, String), f64>,
}

impl Metrics {
    fn refresh(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let file = key.key().labels().find(|label| label.key() == "file").map_or_else(String::new, |l| l.value().to_string());
            let id = (key.key().name().to_string(), file);
            match value {
                DebugValue::Counter(delta) => *self.counters.entry(id).or_default() += delta,
                // A snapshot resets gauges to 0 too, so 0 means "not set since": keep the last
                // value (these tests never expect a gauge of 0).
                DebugValue::Gauge(value) if value.into_inner() != 0.0 => {
                    self.gauges.insert(id, value.into_inner());
                }
                DebugValue::Gauge(_) => {}
                DebugValue::Histogram(_) => {}
            }
        }
    }

    fn counter(&mut self, name: &str, file: &Path) -> u64 {
        self.refresh();
        self.counters.get(&(name.to_string(), file.display().to_string())).copied().unwrap_or(0)
    }

    fn gauge(&mut self, name: &str, file: &Path) -> Option<f64> {
        self.refresh();
        self.gauges.get(&(name.to_string(), file.display().to_string())).copied()
    }
}

fn with_metrics<F: Future<Output = ()>>(test: impl FnOnce(Metrics) -> F) {
    let recorder = DebuggingRecorder::new();
    let metrics = Metrics { snapshotter: recorder.snapshotter(), counters: HashMap::new(), gauges: HashMap::new() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(metrics)));
}

/// Rewrites `path`, making sure its modification time moves even on coarse clocks.
fn rewrite(path: &Path, text: &str) {
    let before = std::fs::metadata(path).ok().and_then(|metadata| metadata.modified().ok());
    std::fs::write(path, text).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let mut modified = std::fs::metadata(path).unwrap().modified().unwrap();
    if Some(modified) <= before {
        modified = before.unwrap() + Duration::from_secs(1);
        file.set_modified(modified).unwrap();
    }
}

fn asset_reference(key: &str, owner: &str, criticality: &str, tags: &[&str]) -> Reference {
    Reference::Asset {
        key: LookupKey::parse_asset_key(key).unwrap(),
        asset: Asset {
            owner: Some(owner.into()),
            criticality: Some(criticality.into()),
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
        },
    }
}

fn network_reference(list: &str, net: &str) -> Reference {
    Reference::Network { list: list.into(), net: net.parse().unwrap() }
}

struct Files {
    _dir: tempfile::TempDir,
    assets: PathBuf,
    internal: PathBuf,
    config: EnrichmentConfig,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets.csv");
    let internal = dir.path().join("internal.txt");
    std::fs::write(&assets, "key,owner,criticality,tags\nweb-1,alice,high,pci;dmz\n10.0.0.5,bob,low,\n").unwrap();
    std::fs::write(&internal, "# internal\n10.0.0.0/8\n192.168.0.0/16\n").unwrap();
    let config = EnrichmentConfig {
        assets: Some(assets.clone()),
        networks: vec![NetworkList { name: "internal".into(), path: internal.clone() }],
        poll_interval_ms: 20,
        ..EnrichmentConfig::default()
    };
    Files { _dir: dir, assets, internal, config }
}

fn sorted(mut changes: Vec<(Reference, isize)>) -> Vec<(Reference, isize)> {
    changes.sort();
    changes
}

#[test]
fn enrichment_watcher_loads_all_files_at_start() {
    with_metrics(|mut metrics| async move {
        let files = files();
        let (watcher, initial) = EnrichmentWatcher::start(&files.config).unwrap();
        assert_eq!(
            sorted(initial),
            sorted(vec![
                (asset_reference("web-1", "alice", "high", &["pci", "dmz"]), 1),
                (Reference::Asset { key: LookupKey::parse_asset_key("10.0.0.5").unwrap(), asset: Asset { owner: Some("bob".into()), criticality: Some("low".into()), tags: vec![] } }, 1),
                (network_reference("internal", "10.0.0.0/8"), 1),
                (network_reference("internal", "192.168.0.0/16"), 1),
            ])
        );
        assert_eq!(watcher.references().len(), 4);
        assert_eq!(metrics.gauge(telemetry::ENRICHMENT_ENTRIES, &files.assets), Some(2.0));
        assert_eq!(metrics.gauge(telemetry::ENRICHMENT_ENTRIES, &files.internal), Some(2.0));
    });
}

#[test]
fn enrichment_watcher_start_fails_on_a_missing_or_invalid_file() {
    let files = files();
    let mut missing = files.config.clone();
    missing.networks[0].path = files.internal.with_file_name("nope.txt");
    let error = EnrichmentWatcher::start(&missing).unwrap_err().to_string();
    assert!(error.contains("nope.txt: cannot read"), "{error}");
    std::fs::write(&files.internal, "10.0.0.0/8\nbogus\n").unwrap();
    let error = EnrichmentWatcher::start(&files.config).unwrap_err().to_string();
    assert_eq!(error, format!("{}:2: \"bogus\" is not an IP address or CIDR network", files.internal.display()));
}

#[test]
fn enrichment_watcher_reloads_edits_keeps_the_last_good_version_and_drops_deleted_lines() {
    with_metrics(|mut metrics| async move {
        let files = files();
        let (mut watcher, _) = EnrichmentWatcher::start(&files.config).unwrap();
        assert!(watcher.poll().await.is_empty(), "nothing changed");

        // Edit: web-1 changes owner; 10.0.0.5 is unchanged.
        rewrite(&files.assets, "key,owner,criticality,tags\nWEB-1,carol,high,pci;dmz\n10.0.0.5,bob,low,\n");
        assert_eq!(
            sorted(watcher.poll().await),
            sorted(vec![
                (asset_reference("web-1", "alice", "high", &["pci", "dmz"]), -1),
                (asset_reference("web-1", "carol", "high", &["pci", "dmz"]), 1),
            ])
        );
        assert_eq!(metrics.counter(telemetry::ENRICHMENT_RELOADS, &files.assets), 1);

        // Bad edit: nothing changes, the error is counted once (not on every poll).
        rewrite(&files.assets, "key,owner,criticality,tags\nweb-1,dave,high\n");
        assert!(watcher.poll().await.is_empty());
        assert!(watcher.poll().await.is_empty());
        assert_eq!(metrics.counter(telemetry::ENRICHMENT_RELOAD_ERRORS, &files.assets), 1);
        assert!(watcher.references().contains(&asset_reference("web-1", "carol", "high", &["pci", "dmz"])));

        // Fixed: the diff is against the last valid version.
        rewrite(&files.assets, "key,owner,criticality,tags\nweb-1,dave,high,pci;dmz\n10.0.0.5,bob,low,\n");
        assert_eq!(
            sorted(watcher.poll().await),
            sorted(vec![
                (asset_reference("web-1", "carol", "high", &["pci", "dmz"]), -1),
                (asset_reference("web-1", "dave", "high", &["pci", "dmz"]), 1),
            ])
        );

        // A deleted line of a network list retracts that network only.
        rewrite(&files.internal, "# internal\n10.0.0.0/8\n");
        assert_eq!(watcher.poll().await, vec![(network_reference("internal", "192.168.0.0/16"), -1)]);
        assert_eq!(metrics.gauge(telemetry::ENRICHMENT_ENTRIES, &files.internal), Some(1.0));

        // Touched without a change of content: no reload.
        rewrite(&files.internal, "# internal\n10.0.0.0/8\n");
        assert!(watcher.poll().await.is_empty());
        assert_eq!(metrics.counter(telemetry::ENRICHMENT_RELOADS, &files.internal), 1);

        // Deleted file: an error, the last version stays; restored with new content: reloaded.
        std::fs::remove_file(&files.internal).unwrap();
        assert!(watcher.poll().await.is_empty());
        assert_eq!(metrics.counter(telemetry::ENRICHMENT_RELOAD_ERRORS, &files.internal), 1);
        assert!(watcher.references().contains(&network_reference("internal", "10.0.0.0/8")));
        std::fs::write(&files.internal, "172.16.0.0/12\n").unwrap();
        assert_eq!(
            sorted(watcher.poll().await),
            vec![(network_reference("internal", "10.0.0.0/8"), -1), (network_reference("internal", "172.16.0.0/12"), 1)]
        );
    });
}

#[test]
fn enrichment_watcher_run_reports_changes_within_a_poll_and_stops() {
    with_metrics(|_| async move {
        let files = files();
        let (watcher, _) = EnrichmentWatcher::start(&files.config).unwrap();
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher.run(move |changes| sender.send(changes).unwrap(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        rewrite(&files.internal, "# internal\n10.0.0.0/8\n192.168.0.0/16\n203.0.113.0/24\n");
        let changes = tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await.unwrap().unwrap();
        assert_eq!(changes, vec![(network_reference("internal", "203.0.113.0/24"), 1)]);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    });
}
