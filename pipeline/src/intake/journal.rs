//! `[journal]`: the embedded bus of `securewatch run` — every batch the sources accept is
//! appended to a journal in the data directory and synced to disk before it enters the
//! dataflow; after a crash, what was journaled but not stored is read back into the dataflow.
//!
//! The journal offset a batch ends at travels as its position (`source_progress`, source
//! `journal`) and is committed in the store's transaction with the batch's outputs, like a
//! worker's Kafka offsets. Senders are still acknowledged only once the outputs are stored (HEC
//! answers, Wazuh positions), so the journal adds durability for what has no acknowledgement:
//! syslog lines read but not stored yet, and batches in flight when the process died. HEC
//! tokens with indexer acknowledgement are answered once their batch is journaled; their
//! `ackId` turns `true` once it is stored.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use securewatch_connectors::bus::journal::Journal;
use securewatch_connectors::settings::SettingError;
use securewatch_connectors::queue::{BatchOutcome, IngestBatch, IngestReceiver, IngestRelay, SourcePosition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use securewatch_connectors::sinks::Sinks;

/// The progress-table source name of the journal.
pub const SOURCE: &str = "journal";
/// Counter: records appended to the journal.
const APPENDED: &str = "securewatch_journal_appended_total";
/// Counter: records read back from the journal at start (journaled, not stored before a stop).
const REPLAYED: &str = "securewatch_journal_replayed_total";
/// Counter: failed appends (their batches fail: HEC answers 503) and unreadable journals.
const ERRORS: &str = "securewatch_journal_errors_total";
/// Counter: records of batches without an acknowledging sender (syslog) that the store
/// refused after its retries: journaled, but not stored.
const UNSTORED: &str = "securewatch_journal_unstored_records_total";
/// Gauge: bytes kept in the journal (not yet known to be stored, plus the current segment).
const BYTES: &str = "securewatch_journal_bytes";
/// Records per batch read back at start.
const REPLAY_BATCH: usize = 5_000;
/// Batches appended with one sync at most.
const GROUP: usize = 256;

/// The most `segment_mib` (1 GiB): larger segments only hold more disk until they are deleted.
pub const MAX_SEGMENT_MIB: u64 = 1024;

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Journal accepted batches before the dataflow (default true; `securewatch run` only).
    pub enabled: bool,
    /// Size at which a new segment file starts, in MiB (default 64). Segments whose records are
    /// all stored are deleted.
    pub segment_mib: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { enabled: true, segment_mib: 64 }
    }
}

impl JournalConfig {
    /// Checks the segment size: 1 to [`MAX_SEGMENT_MIB`].
    pub fn validate(&self) -> Result<(), SettingError> {
        let why = "a segment is deleted only once all its records are stored, so its size is disk held back";
        SettingError::within("segment_mib", self.segment_mib, MAX_SEGMENT_MIB, why)
    }
}

/// Opens the journal in `data_dir/journal`, sends what it holds beyond the stored position into
/// the dataflow's stage of the queue, and starts the task that journals every batch of
/// `sources` before passing it on. Returns the dataflow's receiver.
pub async fn start(config: &JournalConfig, data_dir: &Path, sources: IngestReceiver, sinks: &Sinks) -> anyhow::Result<IngestReceiver> {
    let dir = data_dir.join("journal");
    let segment_bytes = config.segment_mib.saturating_mul(1 << 20);
    let stored = sinks.progress(SOURCE).await?.into_iter().find_map(|row| row.position.parse::<u64>().ok());
    let journal = tokio::task::spawn_blocking(move || {
        let mut journal = Journal::open(&dir, segment_bytes)?;
        if let Some(stored) = stored.filter(|stored| *stored > journal.end()) {
            // The journal's files were removed while the store was kept: go on after the
            // stored offset, so offsets never go back.
            tracing::warn!(stored, end = journal.end(), "The journal ends before the stored offset; continuing after it.");
            journal.skip_to(stored)?;
        }
        Ok::<_, securewatch_connectors::bus::journal::JournalError>(journal)
    })
    .await??;
    let (relay, receiver) = sources.relay();
    let from = stored.unwrap_or(journal.start()).max(journal.start());
    let (records, error) = journal.read_from(from);
    if let Some(error) = error {
        metrics::counter!(ERRORS).increment(1);
        tracing::error!(%error, read = records.len(), "The journal cannot be read back past a damaged record; records journaled after it and not stored before the last stop are lost.");
    }
    if !records.is_empty() {
        tracing::warn!(records = records.len(), from, "Journaled records not stored before the last stop: reading them into the dataflow.");
        metrics::counter!(REPLAYED).increment(records.len() as u64);
        for chunk in records.chunks(REPLAY_BATCH) {
            let end = chunk.last().expect("chunks are not empty").1;
            let mut batch = IngestBatch::new(chunk.iter().map(|(record, _)| record.clone()).collect());
            batch.positions = vec![position(end)];
            relay.send(batch).context("the dataflow's queue closed during the journal replay")?;
        }
    }
    let journal = Arc::new(Mutex::new(journal));
    let committed = Arc::new(AtomicU64::new(from));
    tokio::spawn(run(journal, sources, relay, committed));
    Ok(receiver)
}

fn position(end: u64) -> SourcePosition {
    SourcePosition { source: SOURCE.to_string(), partition: "0".to_string(), position: end.to_string() }
}

/// Journals the batches of `sources` (several per sync when they queue up) and passes them on,
/// until `sources` closes; deletes segments once their records are stored.
async fn run(journal: Arc<Mutex<Journal>>, mut sources: IngestReceiver, relay: IngestRelay, committed: Arc<AtomicU64>) {
    while let Some(first) = sources.recv().await {
        let mut batches = vec![first];
        while batches.len() < GROUP {
            match sources.try_recv() {
                Some(batch) => batches.push(batch),
                None => break,
            }
        }
        let discard_below = committed.load(Ordering::Acquire);
        let appending = Arc::clone(&journal);
        // The batches go to the blocking thread and come back with their end offsets.
        let appended = tokio::task::spawn_blocking(move || {
            let mut journal = appending.lock().expect("journal lock");
            let ends = (|| {
                let ends = batches.iter().map(|batch| journal.write(&batch.records)).collect::<Result<Vec<u64>, _>>()?;
                journal.sync()?;
                if let Err(error) = journal.discard_below(discard_below) {
                    metrics::counter!(ERRORS).increment(1);
                    tracing::warn!(%error, "A stored journal segment could not be deleted; retrying later.");
                }
                metrics::gauge!(BYTES).set((journal.end() - journal.start()) as f64);
                Ok::<_, securewatch_connectors::bus::journal::JournalError>(ends)
            })();
            (batches, ends)
        })
        .await;
        let (batches, ends) = match appended {
            Ok((batches, Ok(ends))) => (batches, ends),
            Ok((batches, Err(error))) => {
                fail(batches, &error.to_string());
                continue;
            }
            Err(error) => {
                // The blocking task panicked: its batches are gone with it, unacknowledged.
                metrics::counter!(ERRORS).increment(1);
                tracing::error!(%error, "The journal task failed; its batches were dropped unacknowledged.");
                continue;
            }
        };
        for (mut batch, end) in batches.into_iter().zip(ends) {
            metrics::counter!(APPENDED).increment(batch.records.len() as u64);
            batch.positions.push(position(end));
            batch.journaled(); // HEC with indexer acknowledgement answers now
            // Learn when the batch is stored (to delete its segment), then tell its sender.
            let (ack, stored) = oneshot::channel();
            let sender = batch.ack.replace(ack);
            let committed = Arc::clone(&committed);
            let records = batch.records.len() as u64;
            tokio::spawn(async move {
                let outcome = stored.await.unwrap_or_else(|_| BatchOutcome::Failed("the dataflow dropped the batch".into()));
                match (outcome == BatchOutcome::Durable, sender) {
                    (true, sender) => {
                        committed.fetch_max(end, Ordering::AcqRel);
                        if let Some(sender) = sender {
                            let _ = sender.send(outcome);
                        }
                    }
                    (false, Some(sender)) => {
                        let _ = sender.send(outcome); // its sender sends it again
                    }
                    (false, None) => {
                        // Nobody to tell (syslog): counted, and logged with the store's reason.
                        metrics::counter!(UNSTORED).increment(records);
                        tracing::error!(records, ?outcome, "The store refused a batch without a sender to retry it.");
                    }
                }
            });
            if let Err(error) = relay.send(batch) {
                tracing::error!(%error, "The dataflow's queue closed; batch not passed on.");
                return;
            }
        }
    }
}

/// Fails every batch (its sender hears `Unavailable`: HEC answers 503 code 9) and passes none on.
fn fail(batches: Vec<IngestBatch>, error: &str) {
    metrics::counter!(ERRORS).increment(1);
    tracing::error!(%error, batches = batches.len(), "Appending to the journal failed; the batches are refused.");
    for batch in batches {
        batch.complete(BatchOutcome::Unavailable(format!("journal: {error}")));
    }
}
