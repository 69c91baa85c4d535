//! The engine: timely workers as OS threads, fed through bounded inboxes, drained with frontiers.
//!
//! [`Engine::start`] starts the local worker threads of a timely cluster (one process, or one
//! process of several) and builds the SecureWatch dataflow on each ([`graph`]). The tokio side
//! then talks to the workers only through channels:
//!
//! * **in**: one bounded inbox per local worker ([`Engine::send`] waits when it is full). A
//!   [`Feed::Records`] batch enters the dataflow at its epoch; [`Feed::Seal`] promises that no
//!   more records below an epoch follow. The caller seals every worker on every tick, including
//!   workers that got no records, so the frontier advances everywhere. Sending unparks the
//!   worker: workers park while idle and never spin.
//! * **out**: one unbounded [`Drain`] channel. Each worker's sink forwards its outputs and then
//!   its frontier; per worker the channel is FIFO, so once every local worker reported a
//!   frontier beyond epoch `t`, the writer holds every output of the epochs before it
//!   ([`FrontierTracker`]). The drain needs no bound of its own: the records in flight are
//!   bounded by the ingest queue, whose reservations last until the writer made them durable.
//!
//! Closing the inboxes ([`Engine::stop`]) closes the inputs; the workers then run the dataflow
//! to completion, the sinks report the empty frontier, and the threads end.

pub(crate) mod detect;
mod frontier;
pub(crate) mod graph;
mod worker;

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use securewatch_schemas::RawRecord;
use securewatch_schemas::{Alert, Event};
use tokio::sync::mpsc;

pub use detect::{Rules, RulesHandle};
pub use frontier::FrontierTracker;

use crate::time::TimeModel;
use securewatch_schemas::{EnrichmentRow, GeoLookup, Reference};
use crate::input::RollupInput;
use crate::time::Epoch;
use securewatch_schemas::RollupRow;

/// Where this process sits in a timely cluster of several processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This process's index into `addresses`.
    pub process: usize,
    /// `host:port` of every process, in process-index order, the same list on every process.
    pub addresses: Vec<String>,
}

/// What the enrichment needs on every worker.
#[derive(Clone)]
pub struct EnrichmentSettings {
    /// Event fields whose IP addresses are looked up (besides the host and the peer).
    pub ip_fields: Arc<[String]>,
    /// A static GeoIP lookup, when a database is configured.
    pub geo: Option<GeoLookup>,
}

impl std::fmt::Debug for EnrichmentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrichmentSettings")
            .field("ip_fields", &self.ip_fields)
            .field("geo", &self.geo.is_some())
            .finish()
    }
}

/// How to run the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Worker threads in this process (at least one).
    pub workers: usize,
    /// The cluster this process belongs to; `None` runs alone.
    pub cluster: Option<ClusterConfig>,
    /// The time model: lateness and retention of rollups, enrichment windows and correlations.
    pub time_model: TimeModel,
    /// Enrichment with reference collections; `None` leaves it out of the dataflow.
    pub enrichment: Option<EnrichmentSettings>,
    /// Single-event Sigma detection with the rules in force; `None` leaves it out.
    pub detection: Option<RulesHandle>,
    /// Feed messages each inbox holds before [`Engine::send`] waits.
    pub inbox_capacity: usize,
    /// Longest a worker parks without being woken (a safety net: senders unpark it).
    pub park_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            cluster: None,
            time_model: TimeModel::default(),
            enrichment: None,
            detection: None,
            inbox_capacity: 64,
            park_timeout: Duration::from_secs(1),
        }
    }
}

/// A message into a worker.
#[derive(Debug)]
pub enum Feed {
    /// Raw records ingested at `epoch`; `epoch` must not be below the worker's last seal.
    Records {
        /// The epoch they entered at.
        epoch: Epoch,
        /// The records, normalised inside the worker.
        records: Vec<RawRecord>,
    },
    /// Changes of the reference collections (asset inventory, network lists) at the worker's
    /// current epoch; send them to one worker only (the join exchanges them by key).
    References(Vec<(Reference, isize)>),
    /// Matches recomputed from stored events for correlations that a rule reload brought in,
    /// each with the keys of the correlations it is for, at the worker's current epoch; send
    /// them to one worker only. See [`crate::correlate::CorrelatedInputs::backfill`].
    Backfill(Vec<(securewatch_detection::Match, Vec<u64>)>),
    /// Stored events whose rollups and enrichment tags a restarted worker rebuilds, at the
    /// worker's current epoch: they count in the rollups of buckets still open then (older
    /// ones are skipped, never counted as late) and are not written again. Correlation windows
    /// are rebuilt separately, through [`Feed::Backfill`].
    Restore(Vec<securewatch_schemas::Event>),
    /// Events the store found it held already (delivered twice, e.g. re-sent after an ingest
    /// crash): taken out of the rollups of buckets still open, at the worker's current epoch,
    /// so the rollups count each stored event once.
    Duplicates(Vec<securewatch_schemas::Event>),
    /// No records below this epoch will follow on this worker.
    Seal(Epoch),
}

/// A record that normalisation rejected, with its reason.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// The record as received.
    pub record: RawRecord,
    /// Metrics label, e.g. `invalid_json`.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub detail: String,
}

/// One output of the dataflow.
#[derive(Clone, Debug)]
pub enum Output {
    /// A normalised event, to be stored once by its id.
    Event(Event),
    /// A record that could not be normalised, for the dead letter.
    Rejected(Rejected),
    /// A rollup row update at its own epoch (see [`crate::Rollups::rows`]).
    Rollup(RollupRow, Epoch, isize),
    /// An update that arrived after its bucket closed (see [`crate::Rollups::late`]).
    Late(RollupInput, Epoch, isize),
    /// An enrichment tag update at its own epoch (see [`crate::Enrichment::rows`]).
    Enrichment(EnrichmentRow, Epoch, isize),
    /// An alert update at its own epoch: a single-rule alert (`+1` at the event's epoch) or a
    /// correlation alert added or retracted (see [`crate::Correlations::alerts`]).
    Alert(Alert, Epoch, isize),
}

/// A message out of the workers.
#[derive(Debug)]
pub enum Drain {
    /// Outputs of `worker` produced at `epoch` (rollup and late updates carry their own epochs,
    /// never below this one).
    Data {
        /// The worker's index.
        worker: usize,
        /// The epoch the outputs were produced at.
        epoch: Epoch,
        /// The outputs.
        outputs: Vec<Output>,
    },
    /// `worker` will send nothing more below `frontier`; `None` means nothing more at all.
    Frontier {
        /// The worker's index.
        worker: usize,
        /// Its new output frontier.
        frontier: Option<Epoch>,
    },
}

/// Why the engine could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Invalid configuration.
    #[error("dataflow engine: {0}")]
    Config(String),
    /// timely could not build its communication (e.g. a peer address cannot be bound).
    #[error("dataflow engine: cannot start the workers: {0}")]
    Start(String),
    /// A worker thread panicked.
    #[error("dataflow engine: worker failed: {0}")]
    Worker(String),
}

/// The inboxes have closed: the engine is stopping or a worker died.
#[derive(Debug, thiserror::Error)]
#[error("the dataflow workers have stopped")]
pub struct EngineStopped;

struct Inbox {
    sender: mpsc::Sender<Feed>,
    thread: Arc<OnceLock<Thread>>,
}

/// The running workers of this process.
pub struct Engine {
    inboxes: Vec<Inbox>,
    /// In a mutex only to make the engine `Sync` (the guards are touched once, by `stop`).
    guards: Mutex<timely::communication::WorkerGuards<()>>,
    first_worker: usize,
}

impl Engine {
    /// Starts the local workers and returns the engine and its drain.
    ///
    /// In a cluster this blocks until every process is connected: call it off the async
    /// runtime (`spawn_blocking`).
    pub fn start(config: EngineConfig) -> Result<(Engine, mpsc::UnboundedReceiver<Drain>), EngineError> {
        if config.workers == 0 {
            return Err(EngineError::Config("workers must be at least 1".into()));
        }
        let communication = communication(&config)?;
        let first_worker = config.cluster.as_ref().map_or(0, |cluster| cluster.process * config.workers);
        let mut inboxes = Vec::with_capacity(config.workers);
        let mut receivers = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            let (sender, receiver) = mpsc::channel(config.inbox_capacity.max(1));
            inboxes.push(Inbox { sender, thread: Arc::new(OnceLock::new()) });
            receivers.push(Some(receiver));
        }
        let receivers = Arc::new(Mutex::new(receivers));
        let threads: Vec<_> = inboxes.iter().map(|inbox| Arc::clone(&inbox.thread)).collect();
        let (drain, drained) = mpsc::unbounded_channel();
        let settings = worker::Settings {
            time_model: config.time_model,
            enrichment: config.enrichment.clone(),
            detection: config.detection.clone(),
            park_timeout: config.park_timeout,
        };
        let timely_config = timely::Config { communication, worker: timely::WorkerConfig::default() };
        let guards = timely::execute(timely_config, move |worker| {
            let local = worker.index() - first_worker;
            let receiver = receivers.lock().expect("inbox list poisoned")[local]
                .take()
                .expect("one inbox per local worker");
            let _ = threads[local].set(std::thread::current());
            worker::run(worker, receiver, drain.clone(), &settings);
        })
        .map_err(EngineError::Start)?;
        Ok((Engine { inboxes, guards: Mutex::new(guards), first_worker }, drained))
    }

    /// Number of worker threads in this process.
    pub fn local_workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Global index of this process's first worker (drains name workers by global index).
    pub fn first_worker(&self) -> usize {
        self.first_worker
    }

    /// Sends `feed` to local worker `local` (taken modulo the worker count), waiting while its
    /// inbox is full, and wakes the worker.
    pub async fn send(&self, local: usize, feed: Feed) -> Result<(), EngineStopped> {
        let inbox = &self.inboxes[local % self.inboxes.len()];
        inbox.sender.send(feed).await.map_err(|_| EngineStopped)?;
        if let Some(thread) = inbox.thread.get() {
            thread.unpark();
        }
        Ok(())
    }

    /// Seals `epoch` on every local worker.
    pub async fn seal(&self, epoch: Epoch) -> Result<(), EngineStopped> {
        for local in 0..self.inboxes.len() {
            self.send(local, Feed::Seal(epoch)).await?;
        }
        Ok(())
    }

    /// Messages waiting in each local worker's inbox.
    pub fn inbox_depths(&self) -> Vec<usize> {
        self.inboxes
            .iter()
            .map(|inbox| inbox.sender.max_capacity() - inbox.sender.capacity())
            .collect()
    }

    /// Closes the inputs and waits until the workers ran the dataflow to completion
    /// (blocking; in a cluster, until every process closed its inputs).
    pub fn stop(self) -> Result<(), EngineError> {
        let threads: Vec<_> = self.inboxes.iter().filter_map(|inbox| inbox.thread.get().cloned()).collect();
        drop(self.inboxes);
        for thread in threads {
            thread.unpark();
        }
        let guards = self.guards.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let failures: Vec<String> = guards.join().into_iter().filter_map(Result::err).collect();
        match failures.is_empty() {
            true => Ok(()),
            false => Err(EngineError::Worker(failures.join("; "))),
        }
    }
}

fn communication(config: &EngineConfig) -> Result<timely::CommunicationConfig, EngineError> {
    Ok(match &config.cluster {
        Some(cluster) if cluster.addresses.len() > 1 => {
            if cluster.process >= cluster.addresses.len() {
                return Err(EngineError::Config(format!(
                    "process index {} is outside the {} cluster addresses",
                    cluster.process,
                    cluster.addresses.len()
                )));
            }
            timely::CommunicationConfig::Cluster {
                threads: config.workers,
                process: cluster.process,
                addresses: cluster.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        }
        _ if config.workers > 1 => timely::CommunicationConfig::Process(config.workers),
        _ => timely::CommunicationConfig::Thread,
    })
}
