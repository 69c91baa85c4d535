//! The SecureWatch dataflow built on every worker: normalise → rollups → one draining sink.

use differential_dataflow::AsCollection;
use securewatch_parse::{normalise, RawRecord};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Exchange, OkErr};
use timely::dataflow::StreamVec;
use tokio::sync::mpsc::UnboundedSender;

use super::{Drain, Output, Rejected};
use crate::config::RollupConfig;
use crate::input::{rollup_input, RollupInput};
use crate::rollup::{build_rollups, Epoch};
use crate::telemetry;

/// What normalisation routes where: rollup inputs on the left, outputs to drain on the right.
type Routed = Result<(RollupInput, Epoch, isize), Output>;

/// Builds the dataflow over the raw records of this worker's input and sinks every output
/// into `drain`.
///
/// Normalisation runs where the records entered (no exchange: any worker can parse any
/// record). The rollups exchange by key, and their rows are gathered on worker 0, so the
/// process that hosts worker 0 writes the complete rollup tables; events and rejected
/// records are written by the process that ingested them.
// `Routed` values move through containers once; boxing every event to shrink them costs more.
#[allow(clippy::result_large_err)]
pub(crate) fn build<'scope>(
    raw: StreamVec<'scope, Epoch, RawRecord>,
    rollups: RollupConfig,
    drain: UnboundedSender<Drain>,
    worker: usize,
) {
    let scope = raw.scope();
    let routed = normalise_records(raw);
    let (rollup_inputs, outputs) = routed.ok_err(|routed| routed);
    let rollups = build_rollups(rollup_inputs.as_collection(), rollups);
    let rows = rollups
        .rows
        .inner
        .exchange(|_| 0)
        .map(|(row, epoch, diff)| Output::Rollup(row, epoch, diff));
    let late = rollups
        .late
        .inner
        .map(|(input, epoch, diff)| Output::Late(input, epoch, diff));
    drain_into(scope.concatenate([outputs, rows, late]), drain, worker);
}

/// Runs the parsers of `securewatch-parse` over each record: an event yields its rollup input
/// and itself; a record that fails yields a [`Rejected`] with the reason.
fn normalise_records<'scope>(
    raw: StreamVec<'scope, Epoch, RawRecord>,
) -> StreamVec<'scope, Epoch, Routed> {
    raw.unary::<CapacityContainerBuilder<Vec<Routed>>, _, _, _>(Pipeline, "Normalise", |_, _| {
        move |input, output| {
            input.for_each(|capability, records| {
                let epoch = *capability.time();
                let mut session = output.session(&capability);
                let mut rejected = 0u64;
                let records_in = records.len() as u64;
                metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "normalise", "direction" => "in")
                    .increment(records_in);
                for record in records.drain(..) {
                    match normalise(&record) {
                        Ok(event) => {
                            session.give(Ok((rollup_input(&event), epoch, 1)));
                            session.give(Err(Output::Event(event)));
                        }
                        Err(error) => {
                            rejected += 1;
                            let reason = error.reason();
                            session.give(Err(Output::Rejected(Rejected {
                                record,
                                reason,
                                detail: error.to_string(),
                            })));
                        }
                    }
                }
                let events = records_in - rejected;
                metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "normalise", "direction" => "out")
                    .increment(events);
                metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "normalise", "direction" => "rejected")
                    .increment(rejected);
            });
        }
    })
}

/// The frontier-forwarding sink: forwards each batch of outputs, then, whenever it moved, the
/// input frontier, so the receiver knows when an epoch's outputs are complete.
fn drain_into<'scope>(outputs: StreamVec<'scope, Epoch, Output>, drain: UnboundedSender<Drain>, worker: usize) {
    let mut reported = Some(0);
    outputs.sink(Pipeline, "Drain", move |(input, frontier)| {
        input.for_each(|capability, outputs| {
            metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "drain", "direction" => "in")
                .increment(outputs.len() as u64);
            // A closed drain means the writer is gone (shutting down): nothing to do.
            let _ = drain.send(Drain::Data { worker, epoch: *capability.time(), outputs: std::mem::take(outputs) });
        });
        let now = frontier.frontier().first().copied();
        if now != reported {
            reported = now;
            let _ = drain.send(Drain::Frontier { worker, frontier: now });
        }
    });
}
