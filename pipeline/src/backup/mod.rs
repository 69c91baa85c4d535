//! `securewatch backup` and `securewatch restore`: an online, consistent copy of a data directory in one file, and back.
//!
//! A backup is a gzip-compressed tar archive: `manifest.json` (format, time, version, what the
//! store holds), then the data directory's files under `data/`. It is taken while `run` keeps
//! ingesting, in an order that loses nothing acknowledged before the backup started:
//!
//! 1. every file but the store (the journal segments, file positions, tokens) is copied first;
//! 2. then the store is copied with SQLite's `VACUUM INTO`, one committed transaction.
//!
//! A record acknowledged before the backup started is in the store by then (HEC and Wazuh are
//! acknowledged only once stored), so the snapshot holds it. A syslog line journaled but not yet
//! stored is in the journal copy, and a restored instance reads it back from the journal beyond
//! the snapshot's stored offset, as after a crash. File positions are never ahead of the store
//! (they move only after their lines are stored), so a restored tailer re-reads at most a few
//! lines, which the store takes once (deterministic event ids).

mod archive;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use securewatch_connectors::sinks::sqlite::{check_store, snapshot_store, StoreCounts};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The archive format this binary writes and reads.
const FORMAT: u32 = 1;

/// `manifest.json`, the first entry of a backup.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// [`FORMAT`] of the writer.
    format: u32,
    /// When the store was copied (RFC 3339, UTC).
    created: String,
    /// `securewatch` version that wrote it.
    version: String,
    /// The store's file name inside the data directory (`[store] file`).
    store_file: String,
    /// What the store copy held.
    store: StoreCounts,
    /// The other files, relative to the data directory.
    files: Vec<String>,
}

/// `securewatch backup`: writes the data directory of `config` to `to`.
pub fn backup(config: &Config, to: &Path) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    let store = data_dir.join(&config.store.file);
    if !store.is_file() {
        bail!("no store at {}: nothing to back up (is --data-dir right?)", store.display());
    }
    if to.exists() {
        bail!("{} exists already; backups never overwrite a file", to.display());
    }
    let parent = to.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new().prefix(".securewatch-backup-").tempdir_in(parent).with_context(|| {
        format!("cannot create a staging directory beside {} (the archive is built there first)", to.display())
    })?;
    // 1. Everything but the store, before the store (see the module documentation).
    let files = archive::copy_tree(&data_dir, &staging.path().join("data"), &store_files(&config.store.file))?;
    // 2. The store, one committed transaction.
    let store_copy = staging.path().join("data").join(&config.store.file);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let counts = runtime.block_on(snapshot_store(&store, &store_copy))?;
    let manifest = Manifest {
        format: FORMAT,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION").to_string(),
        store_file: config.store.file.clone(),
        store: counts,
        files: files.iter().map(|file| file.display().to_string()).collect(),
    };
    std::fs::write(staging.path().join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    let bytes = archive::write(staging.path(), to)?;
    println!(
        "backup {}: store {} ({} events, {} alerts, {} dead letters) and {} other files, {} bytes",
        to.display(),
        manifest.store_file,
        counts.events,
        counts.alerts,
        counts.dead_letters,
        files.len(),
        bytes
    );
    Ok(())
}

/// `securewatch restore`: unpacks the backup `from` into the data directory of `config`, which
/// must not exist or be empty. The store is checked (integrity and counts) before the directory
/// takes its final name, so a failed restore leaves nothing half-restored behind.
pub fn restore(config: &Config, from: &Path) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    if data_dir.exists() && std::fs::read_dir(&data_dir)?.next().is_some() {
        bail!("{} is not empty: restore into a new data directory (or move this one aside first)", data_dir.display());
    }
    let parent = data_dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new().prefix(".securewatch-restore-").tempdir_in(parent)?;
    archive::unpack(from, staging.path())?;
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(staging.path().join("manifest.json")).context("the archive has no manifest.json: not a SecureWatch backup")?,
    )
    .context("manifest.json of the backup is unreadable")?;
    if manifest.format != FORMAT {
        bail!("backup format {} is not supported by this securewatch (it reads format {FORMAT})", manifest.format);
    }
    if manifest.store_file != config.store.file {
        bail!(
            "the backup's store is {:?} but [store] file is {:?}: use the configuration the backup was taken with",
            manifest.store_file,
            config.store.file
        );
    }
    let restored = staging.path().join("data");
    for file in &manifest.files {
        if !restored.join(file).is_file() {
            bail!("the backup is incomplete: {file} is listed in its manifest but missing");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let counts = runtime.block_on(check_store(&restored.join(&manifest.store_file)))?;
    if counts != manifest.store {
        bail!("the restored store holds {counts:?}, the backup's manifest says {:?}: the backup is damaged", manifest.store);
    }
    archive::make_private(&restored)?;
    if data_dir.exists() {
        std::fs::remove_dir(&data_dir)?; // empty, checked above
    }
    std::fs::rename(&restored, &data_dir)
        .with_context(|| format!("cannot move the restored files to {}", data_dir.display()))?;
    println!(
        "restored {} into {}: taken {} by securewatch {}, store {} events, {} alerts, {} dead letters, {} other files",
        from.display(),
        data_dir.display(),
        manifest.created,
        manifest.version,
        counts.events,
        counts.alerts,
        counts.dead_letters,
        manifest.files.len()
    );
    Ok(())
}

/// The store's file and SQLite's companions of it, which only the snapshot copies.
fn store_files(store_file: &str) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-journal"].iter().map(|suffix| PathBuf::from(format!("{store_file}{suffix}"))).collect()
}
