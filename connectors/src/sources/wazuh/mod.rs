//! Wazuh source: tails a manager's `alerts.json` and enqueues one record per alert line.
//!
//! Delivery is at-least-once with a position that follows durability: lines go to the ingest
//! queue in batches with an ack ([`IngestBatch::with_ack`]); the position
//! (`<data_dir>/positions/wazuh-<name>.json`, `{identity, offset}`) is written atomically only
//! after the ack says [`BatchOutcome::Durable`]. A failed batch is re-sent after a backoff
//! without moving the position. On start:
//! - the file at `path` has the persisted identity → continue at the persisted offset (a file
//!   now shorter than that offset was truncated → offset 0);
//! - it has another identity (rotated while stopped) → the file with the persisted identity is
//!   looked for in the same directory (`alerts.json.1` style renames) and finished first; if it
//!   is not there (moved elsewhere or compressed, as Wazuh's own daily rotation does), the new
//!   file is read from offset 0 and lines appended to the old file after the stop are **not**
//!   recovered;
//! - nothing persisted → `start_at` (`beginning`, or `end` = after the last complete line).
//!
//! Re-read lines (after a crash between durability and the position write, or a failed ack)
//! get the same event ids, because ids come from Wazuh's alert id or the file position, so
//! they collapse in the store. The tailer only moves bytes: invalid lines are forwarded and
//! the normaliser dead-letters them with a reason.

mod config;
mod position;
mod tail;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use securewatch_schemas::SourceKind;
use tokio_util::sync::CancellationToken;

pub use self::config::{StartAt, WazuhConfig};
use self::position::{Position, PositionStore};
pub use self::tail::{SYMLINKS_REFUSED, TRUNCATIONS};
use self::tail::{Lines, Resume, Step, Tailer};
use crate::queue::{BatchOutcome, IngestBatch, IngestSender, QueueError};
use crate::telemetry::SourceLabels;

/// Batches re-sent after a failed or abandoned ack.
pub const RETRIES: &str = "securewatch_wazuh_retries_total";

/// After shutdown is requested, how long an in-flight batch's ack is still awaited so its
/// position can be saved (the pipeline drains the queue on shutdown).
const SHUTDOWN_ACK_GRACE: Duration = Duration::from_secs(5);

/// Upper bound of the retry backoff.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Why the Wazuh source could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WazuhError {
    /// A setting of `[sources.wazuh]` is refused.
    #[error("invalid [sources.wazuh] config: {0}")]
    InvalidConfig(#[from] crate::settings::SettingError),
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The saved position file cannot be parsed or written as JSON.
    #[error("position file {path} is not valid (fix or delete it): {source}")]
    PositionFormat {
        /// The position file's path.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The ingest queue closed (the pipeline is shutting down).
    #[error("the ingest queue is closed")]
    QueueClosed,
}

/// A configured `alerts.json` tailer, ready to [`run`](WazuhSource::run).
#[derive(Debug)]
pub struct WazuhSource {
    config: WazuhConfig,
    labels: SourceLabels,
    positions: PositionStore,
    persisted: Option<Position>,
    queue: IngestSender,
}

/// Whether a batch was delivered or shutdown interrupted it.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Durable,
    Stopped,
}

impl WazuhSource {
    /// Validates the config, creates `data_dir/positions/` and loads the persisted position.
    pub fn new(
        config: WazuhConfig,
        data_dir: &Path,
        queue: IngestSender,
    ) -> Result<WazuhSource, WazuhError> {
        config.validate().map_err(WazuhError::InvalidConfig)?;
        let positions = PositionStore::open(data_dir, &config.name)?;
        let persisted = positions.load()?;
        let labels = SourceLabels::new(SourceKind::Wazuh, config.name.clone());
        Ok(WazuhSource { config, labels, positions, persisted, queue })
    }

    /// Follows the file until `shutdown` is cancelled. Returns an error when the file or the
    /// position cannot be read or written, or the queue closed while not shutting down.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), WazuhError> {
        let resume = match self.persisted.take() {
            Some(position) => Resume::Persisted(position),
            None => Resume::Fresh(self.config.start_at),
        };
        let mut tailer = Tailer::new(&self.config, self.labels.clone(), resume);
        let max_lines = self.config.batch_size.min(self.queue.capacity()).max(1);
        let poll_interval = Duration::from_millis(self.config.poll_interval_ms);
        tracing::info!(
            source = %self.config.name,
            path = %self.config.path.display(),
            positions = %self.positions.path().display(),
            "Wazuh source started."
        );
        while !shutdown.is_cancelled() {
            match tailer.poll(max_lines).await? {
                Step::Lines(lines) => {
                    if self.deliver(lines, &shutdown).await? == Delivery::Stopped {
                        break;
                    }
                }
                Step::Advanced(position) => self.positions.save(&position).await?,
                Step::Idle => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(poll_interval) => {}
                    }
                }
            }
        }
        tracing::info!(source = %self.config.name, "Wazuh source stopped.");
        Ok(())
    }

    /// Enqueues the lines (waiting for room), awaits their ack and saves the position once
    /// they are durable; re-sends them after a backoff while the ack reports a failure.
    async fn deliver(
        &mut self,
        lines: Lines,
        shutdown: &CancellationToken,
    ) -> Result<Delivery, WazuhError> {
        let count = lines.records.len() as u64;
        let mut backoff = Duration::from_millis(self.config.retry_backoff_ms);
        let mut first_attempt = true;
        loop {
            let (batch, mut ack) = IngestBatch::with_ack(lines.records.clone());
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(Delivery::Stopped),
                sent = self.queue.send(batch) => match sent {
                    Ok(()) => {}
                    Err(QueueError::Closed(_)) if shutdown.is_cancelled() => {
                        return Ok(Delivery::Stopped);
                    }
                    Err(_) => return Err(WazuhError::QueueClosed),
                },
            }
            if first_attempt {
                self.labels.received(count, lines.bytes);
                self.labels.accepted(count);
                first_attempt = false;
            }
            let outcome = tokio::select! {
                outcome = &mut ack => outcome,
                () = shutdown.cancelled() => {
                    match tokio::time::timeout(SHUTDOWN_ACK_GRACE, &mut ack).await {
                        Ok(outcome) => outcome,
                        Err(_) => return Ok(Delivery::Stopped),
                    }
                }
            };
            let reason = match outcome {
                Ok(BatchOutcome::Durable) => {
                    self.positions.save(&lines.position).await?;
                    return Ok(Delivery::Durable);
                }
                Ok(BatchOutcome::Failed(reason) | BatchOutcome::Unavailable(reason)) => reason,
                Err(_) => "the batch was dropped before it was completed".to_string(),
            };
            if shutdown.is_cancelled() {
                return Ok(Delivery::Stopped);
            }
            tracing::warn!(
                source = %self.config.name,
                records = count,
                %reason,
                retry_in_ms = backoff.as_millis() as u64,
                "Batch not stored; the position stays and the lines will be sent again."
            );
            metrics::counter!(RETRIES, "source" => self.config.name.clone()).increment(1);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(Delivery::Stopped),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
        }
    }
}
