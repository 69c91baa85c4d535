//! Loads the reference files, then polls them and hands the diff of each valid change on.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use securewatch_schemas::Reference;
use tokio_util::sync::CancellationToken;

use super::config::EnrichmentConfig;
use super::files::{parse_assets, parse_network_list, EnrichmentError};
use crate::telemetry;

/// Which reference collection a file feeds.
#[derive(Debug, Clone)]
enum FileKind {
    Assets,
    Network(String),
}

/// What the watcher last saw of a file: `None` when it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug)]
struct WatchedFile {
    kind: FileKind,
    path: PathBuf,
    /// Metadata at the last look; a change makes the watcher read the content.
    seen: Option<Stamp>,
    /// Hash of the content at the last read, valid or not; the same content is not parsed twice.
    seen_digest: u64,
    /// The references of the last valid version.
    references: BTreeSet<Reference>,
}

/// Watches the configured reference files; see [`EnrichmentWatcher::start`] and
/// [`EnrichmentWatcher::run`].
#[derive(Debug)]
pub struct EnrichmentWatcher {
    files: Vec<WatchedFile>,
    interval: Duration,
}

impl EnrichmentWatcher {
    /// Loads every configured file. Any missing or invalid file is an error (fatal at start:
    /// the caller should not run without the references it was told to use). Returns the
    /// watcher and the initial references, each with diff `+1`, to feed the dataflow before
    /// its first epoch.
    pub fn start(config: &EnrichmentConfig) -> Result<(EnrichmentWatcher, Vec<(Reference, isize)>), EnrichmentError> {
        let assets = config.assets.iter().map(|path| (FileKind::Assets, path));
        let networks = config.networks.iter().map(|list| (FileKind::Network(list.name.clone()), &list.path));
        let mut files = Vec::new();
        let mut initial = Vec::new();
        for (kind, path) in assets.chain(networks) {
            let read_error = |source| EnrichmentError::Read { path: path.clone(), source };
            let seen = std::fs::metadata(path).map(|metadata| stamp(&metadata)).map_err(read_error)?;
            let bytes = std::fs::read(path).map_err(read_error)?;
            let references = parse(&kind, path, &bytes)?;
            initial.extend(references.iter().map(|reference| (reference.clone(), 1)));
            let file = WatchedFile { kind, path: path.clone(), seen: Some(seen), seen_digest: digest(&bytes), references };
            gauge(&file);
            files.push(file);
        }
        let interval = Duration::from_millis(config.poll_interval_ms.max(1));
        Ok((EnrichmentWatcher { files, interval }, initial))
    }

    /// Polls every `poll_interval_ms` until `stop` is cancelled and calls `on_change` with the
    /// diff of each poll that found valid changes: `(reference, -1)` for what left a file,
    /// `(reference, +1)` for what entered it (an edited asset is both), relative to the last
    /// valid version. Feed it to the dataflow's reference input at the current epoch.
    ///
    /// A file is re-read when its modification time or length changes, and re-parsed only when
    /// its content changed. An invalid, unreadable or deleted file keeps its last valid
    /// version: the problem is logged with file, line and reason and counted in
    /// `securewatch_enrichment_reload_errors_total{file}`. Valid reloads count in
    /// `securewatch_enrichment_reloads_total{file}`; `securewatch_enrichment_entries{file}`
    /// gauges each file's entries.
    pub async fn run(mut self, mut on_change: impl FnMut(Vec<(Reference, isize)>), stop: CancellationToken) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate; the files were just loaded
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let changes = self.poll().await;
            if !changes.is_empty() {
                on_change(changes);
            }
        }
    }

    /// Looks at every file once (what [`EnrichmentWatcher::run`] does per tick) and returns
    /// the diff of the valid changes found.
    pub async fn poll(&mut self) -> Vec<(Reference, isize)> {
        let mut changes = Vec::new();
        for file in &mut self.files {
            let seen = tokio::fs::metadata(&file.path).await.map(|metadata| stamp(&metadata));
            let observed = seen.as_ref().ok().copied();
            if observed == file.seen {
                continue;
            }
            file.seen = observed;
            let bytes = match seen {
                Ok(_) => tokio::fs::read(&file.path).await,
                Err(error) => Err(error),
            };
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(source) => {
                    reject(file, EnrichmentError::Read { path: file.path.clone(), source });
                    continue;
                }
            };
            let content = digest(&bytes);
            if content == file.seen_digest {
                continue;
            }
            file.seen_digest = content;
            match parse(&file.kind, &file.path, &bytes) {
                Ok(references) => {
                    changes.extend(file.references.difference(&references).map(|gone| (gone.clone(), -1)));
                    changes.extend(references.difference(&file.references).map(|new| (new.clone(), 1)));
                    file.references = references;
                    metrics::counter!(telemetry::ENRICHMENT_RELOADS, "file" => label(&file.path)).increment(1);
                    gauge(file);
                    tracing::info!(file = %file.path.display(), entries = file.references.len(), "Enrichment file reloaded.");
                }
                Err(error) => reject(file, error),
            }
        }
        changes
    }

    /// The references of the last valid version of every file.
    pub fn references(&self) -> Vec<Reference> {
        self.files.iter().flat_map(|file| file.references.iter().cloned()).collect()
    }
}

fn parse(kind: &FileKind, path: &Path, bytes: &[u8]) -> Result<BTreeSet<Reference>, EnrichmentError> {
    Ok(match kind {
        FileKind::Assets => {
            parse_assets(path, bytes)?.into_iter().map(|(key, asset)| Reference::Asset { key, asset }).collect()
        }
        FileKind::Network(list) => parse_network_list(path, bytes)?
            .into_iter()
            .map(|net| Reference::Network { list: list.clone(), net })
            .collect(),
    })
}

fn reject(file: &WatchedFile, error: EnrichmentError) {
    metrics::counter!(telemetry::ENRICHMENT_RELOAD_ERRORS, "file" => label(&file.path)).increment(1);
    tracing::warn!(%error, entries = file.references.len(), "Enrichment file rejected; keeping its last valid version.");
}

fn gauge(file: &WatchedFile) {
    metrics::gauge!(telemetry::ENRICHMENT_ENTRIES, "file" => label(&file.path)).set(file.references.len() as f64);
}

fn label(path: &Path) -> String {
    path.display().to_string()
}

fn stamp(metadata: &std::fs::Metadata) -> Stamp {
    Stamp { modified: metadata.modified().ok(), len: metadata.len() }
}

fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
