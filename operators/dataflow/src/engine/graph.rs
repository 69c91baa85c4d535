//! The SecureWatch dataflow built on every worker: normalise → rollups and enrichment → one
//! draining sink.

use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use securewatch_parse::normalise;
use securewatch_schemas::RawRecord;
use securewatch_schemas::Event;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::operators::{Concat, Concatenate, Exchange};
use timely::dataflow::StreamVec;
use tokio::sync::mpsc::UnboundedSender;

use securewatch_detection::Match;

use super::detect::{detect, RulesHandle};
use super::{Drain, EnrichmentSettings, Output, Rejected};
use crate::time::TimeModel;
use crate::correlate::{build_correlations, CorrelatedInputs, CorrelationConfig};
use crate::enrich::{build_enrichment_with_geo, enrich_inputs, EnrichInput};
use securewatch_schemas::Reference;
use crate::input::{rollup_input, RollupInput};
use crate::rollup::build_rollups;
use crate::time::Epoch;
use crate::telemetry;

/// Where normalisation sends what it derives from a record.
#[derive(Clone, Debug)]
enum Routed {
    /// The event's rollup input.
    Rollup((RollupInput, Epoch, isize)),
    /// One of the event's enrichment lookup keys.
    Enrich((EnrichInput, Epoch, isize)),
    /// A detection-rule match that feeds the correlations.
    Match((Match, Epoch, isize)),
    /// The event itself, or the rejected record.
    Drain(Output),
}

impl Routed {
    fn part(&self) -> u64 {
        match self {
            Routed::Rollup(_) => 0,
            Routed::Enrich(_) => 1,
            Routed::Drain(_) => 2,
            Routed::Match(_) => 3,
        }
    }
}

/// The inputs of one worker's dataflow.
pub(crate) struct Inputs<'scope> {
    /// Raw records as ingested.
    pub raw: StreamVec<'scope, Epoch, RawRecord>,
    /// Stored events read back at a restart (`+1`, [`super::Feed::Restore`]) or found stored
    /// twice (`-1`, [`super::Feed::Duplicates`]).
    pub restored: StreamVec<'scope, Epoch, (Event, isize)>,
    /// Reference collections of the enrichment.
    pub references: VecCollection<'scope, Epoch, Reference, isize>,
    /// Matches for correlations' windows rebuilt from stored events.
    pub backfill: VecCollection<'scope, Epoch, (Match, Vec<u64>), isize>,
}

/// The settings every worker builds its dataflow from.
pub(crate) struct Graph {
    pub time_model: TimeModel,
    pub enrichment: Option<EnrichmentSettings>,
    pub detection: Option<RulesHandle>,
}

impl Graph {
    /// Builds the dataflow over this worker's raw records and reference changes and sinks every
    /// output into `drain`.
    ///
    /// Normalisation runs where the records entered (no exchange: any worker can parse any
    /// record). Rollups and enrichment exchange by key, and their rows are gathered on worker 0,
    /// so the process hosting worker 0 writes the complete rollup and enrichment tables; events
    /// and rejected records are written by the process that ingested them.
    pub fn build<'scope>(self, inputs: Inputs<'scope>, drain: UnboundedSender<Drain>, worker: usize) {
        let Inputs { raw, restored, references, backfill } = inputs;
        let scope = raw.scope();
        let ip_fields = self.enrichment.as_ref().map(|settings| Arc::clone(&settings.ip_fields));
        let correlations = self.detection.as_ref().map(RulesHandle::correlations);
        let restored = restore_events(restored, ip_fields.clone(), self.time_model);
        let mut parts = normalise_records(raw, ip_fields, self.detection)
            .concat(restored)
            .partition(4, |routed| (routed.part(), routed));
        let matches = parts.pop().expect("four parts").flat_map(|routed| match routed {
            Routed::Match(update) => Some(update),
            _ => None,
        });
        let outputs = parts.pop().expect("four parts").flat_map(|routed| match routed {
            Routed::Drain(output) => Some(output),
            _ => None,
        });
        let enrich_keys = parts.pop().expect("four parts").flat_map(|routed| match routed {
            Routed::Enrich(update) => Some(update),
            _ => None,
        });
        let rollup_inputs = parts.pop().expect("four parts").flat_map(|routed| match routed {
            Routed::Rollup(update) => Some(update),
            _ => None,
        });

        let rollups = build_rollups(rollup_inputs.as_collection(), self.time_model);
        let rows = rollups
            .rows
            .inner
            .exchange(|_| 0)
            .map(|(row, epoch, diff)| Output::Rollup(row, epoch, diff));
        let late = rollups
            .late
            .inner
            .map(|(input, epoch, diff)| Output::Late(input, epoch, diff));
        let mut streams = vec![outputs, rows, late];
        if let Some(correlations) = correlations {
            let inputs = CorrelatedInputs { matches: matches.as_collection(), backfill: Some(backfill) };
            let built = build_correlations(inputs, correlations, CorrelationConfig::from(self.time_model));
            count_records(built.late.inner, "late");
            count_records(built.skipped.inner, "skipped");
            let alerts = built.alerts.inner.exchange(|_| 0).map(|(alert, epoch, diff)| Output::Alert(alert, epoch, diff));
            streams.push(alerts);
        }
        if let Some(settings) = self.enrichment {
            let enrichment =
                build_enrichment_with_geo(enrich_keys.as_collection(), references, self.time_model, settings.geo);
            let tags = enrichment
                .rows
                .inner
                .exchange(|_| 0)
                .map(|(row, epoch, diff)| Output::Enrichment(row, epoch, diff));
            streams.push(tags);
        }
        drain_into(scope.concatenate(streams), drain, worker);
    }
}

/// Runs the parsers of `securewatch-parse` over each record: an event yields its rollup input,
/// its enrichment keys (when `ip_fields` is given, i.e. enrichment is on), its detections (when
/// `detection` is given) and itself; a record that fails yields a [`Rejected`] with the reason.
fn normalise_records<'scope>(
    raw: StreamVec<'scope, Epoch, RawRecord>,
    ip_fields: Option<Arc<[String]>>,
    detection: Option<RulesHandle>,
) -> StreamVec<'scope, Epoch, Routed> {
    raw.unary::<CapacityContainerBuilder<Vec<Routed>>, _, _, _>(Pipeline, "Normalise", move |_, _| {
        move |input, output| {
            input.for_each(|capability, records| {
                let epoch = *capability.time();
                let mut session = output.session(&capability);
                let records_in = records.len() as u64;
                let mut rejected = 0u64;
                let rules = detection.as_ref().map(RulesHandle::current);
                for record in records.drain(..) {
                    match normalise(&record) {
                        Ok(event) => {
                            session.give(Routed::Rollup((rollup_input(&event), epoch, 1)));
                            if let Some(fields) = &ip_fields {
                                for key in enrich_inputs(&event, fields) {
                                    session.give(Routed::Enrich((key, epoch, 1)));
                                }
                            }
                            if let Some(rules) = &rules {
                                let mut alerts = Vec::new();
                                let mut matches = Vec::new();
                                detect(rules, &event, |alert| alerts.push(alert), |found| matches.push(found));
                                for alert in alerts {
                                    session.give(Routed::Drain(Output::Alert(alert, epoch, 1)));
                                }
                                for found in matches {
                                    session.give(Routed::Match((found, epoch, 1)));
                                }
                            }
                            session.give(Routed::Drain(Output::Event(event)));
                        }
                        Err(error) => {
                            rejected += 1;
                            let reason = error.reason();
                            session.give(Routed::Drain(Output::Rejected(Rejected {
                                record,
                                reason,
                                detail: error.to_string(),
                            })));
                        }
                    }
                }
                let counter = |direction: &'static str| {
                    metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "normalise", "direction" => direction)
                };
                counter("in").increment(records_in);
                counter("out").increment(records_in - rejected);
                counter("rejected").increment(rejected);
            });
        }
    })
}

/// Turns stored events read back at a restart into the rollup inputs and enrichment keys of the
/// buckets still open at their epoch, and events stored twice into retractions of their rollup
/// inputs; events of closed buckets yield nothing (they are final in the store, and must not
/// count as late).
fn restore_events<'scope>(
    restored: StreamVec<'scope, Epoch, (Event, isize)>,
    ip_fields: Option<Arc<[String]>>,
    rollups: TimeModel,
) -> StreamVec<'scope, Epoch, Routed> {
    restored.unary::<CapacityContainerBuilder<Vec<Routed>>, _, _, _>(Pipeline, "Restore", move |_, _| {
        move |input, output| {
            input.for_each(|capability, events| {
                let epoch = *capability.time();
                let mut session = output.session(&capability);
                let (mut restored, mut retracted, mut final_already) = (0u64, 0u64, 0u64);
                for (event, diff) in events.drain(..) {
                    let rollup = rollup_input(&event);
                    if !rollups.accepts(rollup.event_time_ms, epoch) {
                        final_already += u64::from(diff < 0);
                        continue;
                    }
                    session.give(Routed::Rollup((rollup, epoch, diff)));
                    if diff < 0 {
                        retracted += 1;
                        continue;
                    }
                    restored += 1;
                    if let Some(fields) = &ip_fields {
                        for key in enrich_inputs(&event, fields) {
                            session.give(Routed::Enrich((key, epoch, 1)));
                        }
                    }
                }
                let counter = |direction: &'static str| {
                    metrics::counter!(telemetry::OPERATOR_RECORDS, "operator" => "restore", "direction" => direction)
                };
                counter("in").increment(restored);
                counter("retracted").increment(retracted);
                // A duplicate whose bucket closed meanwhile stays counted twice in that bucket.
                counter("duplicate_final").increment(final_already);
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

/// Counts the matches of a correlation side output (`late`: beyond the allowed lateness,
/// `skipped`: missing a group-by or value field) in `securewatch_correlation_matches_total`.
fn count_records<D: 'static>(stream: StreamVec<'_, Epoch, D>, outcome: &'static str) {
    stream.sink(Pipeline, "CountMatches", move |(input, _)| {
        input.for_each(|_, records| {
            metrics::counter!(telemetry::CORRELATION_MATCHES, "outcome" => outcome).increment(records.len() as u64);
        });
    });
}
