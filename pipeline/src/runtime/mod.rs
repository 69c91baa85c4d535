//! The tokio ↔ timely bridge: start the engine, feed it from the ingest queue, write what it drains.
//!
//! `ingest queue → feeder → worker inboxes → timely workers → drain → writer → store`.
//! A batch is acknowledged once the writer stored every output of the epoch it entered at,
//! so HEC answers and file positions still follow durability.

mod config;
mod feeder;
mod restore;
pub(crate) mod telemetry;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use securewatch_connectors::enrichment::{open_geoip, EnrichmentConfig, EnrichmentWatcher};
use securewatch_connectors::queue::IngestReceiver;
use securewatch_connectors::sinks::Sinks;
use securewatch_connectors::CancellationToken;
use securewatch_dataflow::engine::{EnrichmentSettings, Engine, Feed, FrontierTracker, RulesHandle};
use securewatch_dataflow::Epoch;
use tokio::sync::mpsc;

pub use config::DataflowConfig;
pub use restore::restore_feeds;

/// Removes from `by_epoch` the entries of epochs below `frontier` (all of them for `None`, the
/// empty frontier) and returns them; what the feeder and the writer do once epochs complete.
fn take_before<T>(by_epoch: &mut BTreeMap<Epoch, T>, frontier: Option<Epoch>) -> BTreeMap<Epoch, T> {
    let kept = match frontier {
        Some(frontier) => by_epoch.split_off(&frontier),
        None => BTreeMap::new(),
    };
    std::mem::replace(by_epoch, kept)
}

/// The running dataflow: its feeder and writer tasks.
pub struct Dataflow {
    feeder: tokio::task::JoinHandle<Engine>,
    writer: tokio::task::JoinHandle<()>,
    /// Cancelled by the feeder when the workers stop taking input before the queue closed.
    stopped: CancellationToken,
    control: mpsc::UnboundedSender<Feed>,
    durable: tokio::sync::watch::Receiver<Option<Epoch>>,
    lateness_ms: u64,
}

/// What other tasks may send into a running dataflow and watch of it.
#[derive(Clone)]
pub struct DataflowControl {
    control: mpsc::UnboundedSender<Feed>,
    durable: tokio::sync::watch::Receiver<Option<Epoch>>,
    lateness_ms: u64,
}

impl DataflowControl {
    /// Sends `feed` (reference changes or a backfill) to the dataflow at its open epoch;
    /// `false` when the dataflow has stopped.
    pub fn send(&self, feed: Feed) -> bool {
        self.control.send(feed).is_ok()
    }

    /// Waits until every epoch up to `epoch` is stored, or `timeout` passed (`false`).
    pub async fn wait_durable(&self, epoch: Epoch, timeout: std::time::Duration) -> bool {
        let mut durable = self.durable.clone();
        let reached = async move {
            durable.wait_for(|frontier| frontier.is_none_or(|frontier| frontier > epoch)).await.is_ok()
        };
        tokio::time::timeout(timeout, reached).await.unwrap_or(false)
    }

    /// The allowed lateness of event time behind the ingest epoch, in milliseconds.
    pub fn lateness_ms(&self) -> u64 {
        self.lateness_ms
    }
}

impl Dataflow {
    /// Starts the workers (in a cluster: waits until all processes are connected), the feeder,
    /// the writer and, when enrichment is configured, the reference-file watcher (which stops
    /// with `stop`). Invalid reference files fail the start. `restore` (see [`restore_feeds`])
    /// enters before any record of `queue`.
    pub async fn start(
        config: &DataflowConfig,
        enrichment: &EnrichmentConfig,
        rules: Option<RulesHandle>,
        queue: IngestReceiver,
        store: Sinks,
        restore: Vec<Feed>,
        stop: CancellationToken,
    ) -> anyhow::Result<Dataflow> {
        let mut engine_config = config.engine()?;
        engine_config.detection = rules;
        let (control, changes) = mpsc::unbounded_channel();
        // The feeder takes control feeds before records, so these are in before the first record.
        for feed in restore {
            let _ = control.send(feed);
        }
        let references = control.clone();
        if enrichment.is_enabled() {
            let geo = match &enrichment.geoip {
                Some(path) => Some(open_geoip(path).context("enrichment")?),
                None => None,
            };
            engine_config.enrichment = Some(EnrichmentSettings { ip_fields: enrichment.ip_fields.iter().cloned().collect(), geo });
            let (watcher, initial) = EnrichmentWatcher::start(enrichment).context("enrichment")?;
            tracing::info!(references = initial.len(), "Enrichment reference files loaded.");
            let _ = references.send(Feed::References(initial));
            tokio::spawn(watcher.run(
                move |update| {
                    let _ = references.send(Feed::References(update));
                },
                stop,
            ));
        }
        if let Some(cluster) = &engine_config.cluster {
            tracing::info!(process = cluster.process, peers = ?cluster.addresses, "Joining the timely cluster.");
        }
        let (engine, drain) = tokio::task::spawn_blocking(move || Engine::start(engine_config))
            .await
            .context("dataflow engine start")??;
        tracing::info!(workers = engine.local_workers(), tick_ms = config.tick_ms, "Dataflow engine started.");
        let pending = Arc::new(feeder::Pending::default());
        let tracker = FrontierTracker::new(engine.first_worker(), engine.local_workers());
        let (published, durable) = tokio::sync::watch::channel(None);
        let writer = tokio::spawn(writer::run(drain, store, Arc::clone(&pending), tracker, published, control.clone()));
        let stopped = CancellationToken::new();
        let feeder = tokio::spawn(feeder::run(engine, queue, changes, pending, durable.clone(), config.tick(), stopped.clone()));
        let lateness_ms = config.lateness_secs.saturating_mul(1000);
        Ok(Dataflow { feeder, writer, stopped, control, durable, lateness_ms })
    }

    /// A handle for sending reference changes or backfills and watching durability.
    pub fn control(&self) -> DataflowControl {
        DataflowControl { control: self.control.clone(), durable: self.durable.clone(), lateness_ms: self.lateness_ms }
    }

    /// Resolves if the workers stopped while the sources were still running (a worker panicked
    /// or, in a cluster, a peer process went away).
    pub async fn stopped(&self) {
        self.stopped.cancelled().await
    }

    /// Waits until the queue closed (the sources stopped), then closes the inputs, lets the
    /// workers finish and the writer store everything.
    pub async fn finish(self) -> anyhow::Result<()> {
        let engine = self.feeder.await.context("dataflow feeder")?;
        tokio::task::spawn_blocking(move || engine.stop()).await.context("dataflow engine stop")??;
        self.writer.await.context("dataflow writer")?;
        Ok(())
    }
}
