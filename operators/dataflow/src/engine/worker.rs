//! One worker thread's loop: drain the inbox into the dataflow's input, step, park when idle.

use std::time::Duration;

use differential_dataflow::input::Input;
use timely::dataflow::InputHandleVec;
use timely::worker::Worker;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{Receiver, UnboundedSender};

use super::{graph, Drain, EnrichmentSettings, Feed};
use securewatch_schemas::Reference;
use crate::time::TimeModel;
use crate::time::Epoch;
use securewatch_detection::Match;
use securewatch_schemas::RawRecord;
use securewatch_schemas::Event;

/// Inbox messages taken per step, so a flood of input never starves the dataflow.
const FEEDS_PER_STEP: usize = 256;

/// What every worker needs to build and run its dataflow.
pub(super) struct Settings {
    pub time_model: TimeModel,
    pub enrichment: Option<EnrichmentSettings>,
    pub detection: Option<super::RulesHandle>,
    pub park_timeout: Duration,
}

/// Builds the dataflow on `worker` and feeds it until the inbox closes; the caller
/// (`timely::execute`) then steps the dataflow to completion.
pub(super) fn run(
    worker: &mut Worker,
    mut inbox: Receiver<Feed>,
    drain: UnboundedSender<Drain>,
    settings: &Settings,
) {
    let index = worker.index();
    let mut input = InputHandleVec::<Epoch, RawRecord>::new();
    let mut restored = InputHandleVec::<Epoch, (Event, isize)>::new();
    let (mut references, mut backfill) = worker.dataflow::<Epoch, _, _>(|scope| {
        let raw = input.to_stream(scope);
        let restored = restored.to_stream(scope);
        let (references, reference_collection) = scope.new_collection::<Reference, isize>();
        let (backfill, backfill_collection) = scope.new_collection::<(Match, Vec<u64>), isize>();
        let graph = graph::Graph {
            time_model: settings.time_model,
            enrichment: settings.enrichment.clone(),
            detection: settings.detection.clone(),
        };
        graph.build(graph::Inputs { raw, restored, references: reference_collection, backfill: backfill_collection }, drain, index);
        (references, backfill)
    });
    loop {
        let mut taken = 0;
        let mut closed = false;
        while taken < FEEDS_PER_STEP {
            match inbox.try_recv() {
                Ok(Feed::Records { epoch, mut records }) => {
                    if epoch > *input.time() {
                        input.advance_to(epoch);
                        restored.advance_to(epoch);
                    }
                    if epoch > *references.time() {
                        references.advance_to(epoch);
                        backfill.advance_to(epoch);
                    }
                    input.send_batch(&mut records);
                }
                Ok(Feed::References(changes)) => {
                    for (reference, diff) in changes {
                        references.update(reference, diff);
                    }
                }
                Ok(Feed::Backfill(matches)) => {
                    for found in matches {
                        backfill.update(found, 1);
                    }
                }
                Ok(Feed::Restore(events)) => restored.send_batch(&mut events.into_iter().map(|event| (event, 1)).collect()),
                Ok(Feed::Duplicates(events)) => {
                    restored.send_batch(&mut events.into_iter().map(|event| (event, -1)).collect())
                }
                Ok(Feed::Seal(epoch)) => {
                    if epoch > *input.time() {
                        input.advance_to(epoch);
                        restored.advance_to(epoch);
                    }
                    if epoch > *references.time() {
                        references.advance_to(epoch);
                        references.flush();
                        backfill.advance_to(epoch);
                        backfill.flush();
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
            taken += 1;
        }
        if closed {
            return; // dropping the inputs closes them
        }
        if taken == FEEDS_PER_STEP {
            worker.step(); // more is waiting: do not park
        } else {
            worker.step_or_park(Some(settings.park_timeout));
        }
    }
}
