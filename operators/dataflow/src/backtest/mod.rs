//! Backtests: stored events, read in event-time order, through the live pipeline's matcher and correlation operators in a dataflow of their own.
//!
//! [`Backtest::start`] starts one timely worker on a thread of its own (the live engine's
//! workers are untouched) and builds [`build_correlations`] on it, with the same
//! [`CorrelationConfig`] as the live pipeline. [`Backtest::feed`] hands it a chunk of events
//! sorted by event time; each event goes through the same detection code as the live
//! normalise operator (single-rule alerts, matches for the correlations).
//!
//! # Epochs
//!
//! Live, the logical time is the ingest epoch. Here a chunk enters at the event time of its
//! first event (the chunks come in event-time order, so epochs only grow), so no match is ever
//! later than the allowed lateness, windows close and their state expires as the epochs move
//! through the history (memory stays bounded by the windows, as live), and the alerts are the
//! ones the correlations hold for the matches read, whatever the chunk boundaries: the
//! operators are exact under any arrival order and any batching.
//!
//! Each chunk is answered by a [`Step`] once the dataflow completed every epoch before the
//! chunk's (the alerts of the chunk itself come with the next step, or with
//! [`Backtest::finish`], which closes the input and runs the windows to their end).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use differential_dataflow::input::Input;
use securewatch_detection::Match;
use securewatch_schemas::{Alert, Event};
use timely::dataflow::operators::capture::{Capture, Event as Captured};
use timely::dataflow::operators::probe::Handle as Probe;
use timely::dataflow::operators::Probe as _;
use tokio::sync::mpsc;

use crate::correlate::{build_correlations, CorrelationConfig};
use crate::engine::detect::detect_each;
use crate::engine::Rules;
use crate::time::Epoch;

#[cfg(test)]
mod tests;

/// Why a backtest stopped.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The worker thread could not be started.
    #[error("cannot start the backtest worker: {0}")]
    Start(String),
    /// The worker thread stopped (it panicked).
    #[error("the backtest worker stopped: {0}")]
    Stopped(String),
}

/// What the dataflow produced for one chunk (and the epochs completed before it).
#[derive(Debug, Default)]
pub struct Step {
    /// Events of the chunk.
    pub events: u64,
    /// Event time of the chunk's last event (ms since the Unix epoch): the cursor.
    pub cursor_ms: u64,
    /// Detection-rule matches of the chunk, per rule id.
    pub matches: BTreeMap<String, u64>,
    /// Alert updates: single-rule alerts (`+1`) and correlation alerts added (`+1`) or
    /// retracted (`-1`) as their windows saw the matches.
    pub alerts: Vec<(Alert, isize)>,
    /// The chunk's events that matched a rule (the evidence of the alerts).
    pub evidence: Vec<Event>,
}

type Captures = std::sync::mpsc::Receiver<Captured<Epoch, Vec<(Alert, Epoch, isize)>>>;

/// A running backtest: one worker thread, fed chunk by chunk.
pub struct Backtest {
    chunks: Option<mpsc::Sender<Vec<Event>>>,
    steps: mpsc::UnboundedReceiver<Step>,
    thread: Option<JoinHandle<()>>,
}

impl Backtest {
    /// Starts the worker for `rules` (detectors and correlations) with the live pipeline's
    /// `config`; `setup` runs first on the worker's thread (e.g. to lower its priority so the
    /// live pipeline keeps its pace).
    pub fn start(rules: Arc<Rules>, config: CorrelationConfig, setup: impl FnOnce() + Send + 'static) -> Result<Backtest, BacktestError> {
        let (chunk_sender, chunks) = mpsc::channel::<Vec<Event>>(1);
        let (step_sender, steps) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("securewatch-backtest".into())
            .spawn(move || {
                setup();
                run(rules, config, chunks, step_sender);
            })
            .map_err(|error| BacktestError::Start(error.to_string()))?;
        Ok(Backtest { chunks: Some(chunk_sender), steps, thread: Some(thread) })
    }

    /// Feeds a chunk of events sorted by event time (after every earlier chunk's); waits while
    /// the worker is one chunk behind.
    pub async fn feed(&mut self, events: Vec<Event>) -> Result<(), BacktestError> {
        let chunks = self.chunks.as_ref().expect("fed before finish");
        if chunks.send(events).await.is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// The steps answered so far, without waiting.
    pub fn steps(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Ok(step) = self.steps.try_recv() {
            steps.push(step);
        }
        steps
    }

    /// Closes the input, runs every window to its end and answers the remaining steps.
    pub async fn finish(mut self) -> Result<Vec<Step>, BacktestError> {
        self.chunks.take();
        let mut steps = Vec::new();
        while let Some(step) = self.steps.recv().await {
            steps.push(step);
        }
        let thread = self.thread.take().expect("joined once");
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|error| BacktestError::Stopped(error.to_string()))?
            .map_err(|_| BacktestError::Stopped("the worker panicked".into()))?;
        Ok(steps)
    }

    fn stopped(&mut self) -> BacktestError {
        BacktestError::Stopped("the worker ended before its input".into())
    }
}

impl Drop for Backtest {
    fn drop(&mut self) {
        // Dropping the sender ends the worker; it is not waited for.
        self.chunks.take();
    }
}

/// The worker: builds the correlations, then per chunk detects, feeds the matches at the
/// chunk's epoch and steps until every earlier epoch is complete.
fn run(rules: Arc<Rules>, config: CorrelationConfig, mut chunks: mpsc::Receiver<Vec<Event>>, steps: mpsc::UnboundedSender<Step>) {
    timely::execute_directly(move |worker| {
        let (sender, captured) = std::sync::mpsc::channel();
        let probe = Probe::new();
        let correlations = Arc::clone(&rules.correlations);
        let mut input = worker.dataflow::<Epoch, _, _>(|scope| {
            let (input, matches) = scope.new_collection::<Match, isize>();
            let built = build_correlations(matches, correlations, config);
            built.alerts.inner.probe_with(&probe).capture_into(sender);
            input
        });
        let mut epoch: Epoch = 0;
        while let Some(events) = chunks.blocking_recv() {
            let mut step = Step { events: events.len() as u64, ..Step::default() };
            if let Some(first) = events.first() {
                epoch = epoch.max(event_ms(first));
                input.advance_to(epoch);
            }
            for event in events {
                step.cursor_ms = step.cursor_ms.max(event_ms(&event));
                let mut matched = false;
                detect_each(
                    &rules,
                    &event,
                    |found| {
                        matched = true;
                        *step.matches.entry(found.rule_id.clone()).or_insert(0) += 1;
                    },
                    |alert| step.alerts.push((alert, 1)),
                    |found| input.update(found, 1),
                );
                if matched {
                    step.evidence.push(event);
                }
            }
            input.flush();
            while probe.less_than(input.time()) {
                worker.step();
            }
            collect(&captured, &mut step.alerts);
            if steps.send(step).is_err() {
                return;
            }
        }
        input.close();
        while worker.step() {}
        let mut last = Step::default();
        collect(&captured, &mut last.alerts);
        let _ = steps.send(last);
    });
}

/// The correlation alert updates captured so far, netted per alert.
fn collect(captured: &Captures, alerts: &mut Vec<(Alert, isize)>) {
    let mut net: BTreeMap<Alert, isize> = BTreeMap::new();
    for event in captured.try_iter() {
        if let Captured::Messages(_, updates) = event {
            for (alert, _, diff) in updates {
                *net.entry(alert).or_insert(0) += diff;
            }
        }
    }
    alerts.extend(net.into_iter().filter(|(_, diff)| *diff != 0));
}

fn event_ms(event: &Event) -> u64 {
    event.time.timestamp_millis().max(0) as u64
}
