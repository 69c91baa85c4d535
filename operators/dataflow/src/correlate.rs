//! Sigma correlation rules as differential operators over event time.
//!
//! [`build_correlations`] turns a collection of rule [`Match`]es (at their ingest epochs) into
//! a collection of correlation [`Alert`]s: an alert is added when a correlation's condition
//! starts to hold for (rule, group key, window), retracted when late data invalidates it, and
//! never duplicated (the reduce holds at most one copy per id). [`rule_alerts`] maps the
//! matches of plain detection rules to their own alerts, so the caller can emit every alert
//! from one collection (`rule_alerts(..).concat(correlations.alerts)`).
//!
//! # Semantics
//!
//! The window semantics are those of
//! [`securewatch_detection::correlation`]: sliding windows `[s, s + timespan)` anchored at
//! each match time `s` (for `temporal_ordered`, at matches of the first rule), one alert when
//! the condition starts to hold (suppressed while an anchor less than a timespan earlier
//! holds), matches lacking a group-by field skipped, counting by distinct event id. Per
//! (correlation, group), a `reduce` re-evaluates the group's resident matches whenever they
//! change, so the output is exactly the alerts of the accepted matches, whatever the order
//! they arrived in. The alert id is a hash of (rule id, group key, window start).
//!
//! # Lateness and retention
//!
//! With allowed lateness `L` and retention `H >= L` (a [`CorrelationConfig`]):
//!
//! * A match of a detection rule with event time `e` ingested at epoch `p` is **accepted**
//!   when `p < e + L` (the watermark at `p` is `p - L`); otherwise it goes to
//!   [`Correlations::late`], to be counted, and changes nothing. Alerts of inner correlations
//!   are derived from accepted matches and are never late themselves.
//! * An alert with window start `s` can only change before its **close epoch**
//!   `s + T + L + settle` (`T` the timespan, `settle` the chain delay of
//!   [`CompiledCorrelation::settle_ms`]); after that it is final.
//! * An accepted match leaves memory at epoch `e + 2T + H + settle`: it is retracted inside
//!   the dataflow and the arrangements compact it away. By then every anchor whose window
//!   could see it is closed, and the changes that its departure causes downstream (after the
//!   close epoch of every affected alert) are dropped from [`Correlations::alerts`], as the
//!   rollups drop their expiry (they stay visible on [`Correlations::resident`]).
//!
//! Chains (correlations of correlations) are built level by level: level 0 reads detection
//! rule matches, level `d` also the alerts of levels `< d` (as [`Match::of_alert`]). Each level
//! is one keyed `reduce` for all its correlations, so the operator count grows with the chain
//! depth, not with the number of rules.

use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::{AsCollection, VecCollection};
use securewatch_detection::correlation::{CompiledCorrelation, Entry, Skip};
use securewatch_detection::{CompiledCorrelations, Match};
use securewatch_schemas::Alert;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::OkErr;

use crate::config::{RollupConfig, RollupConfigError};
use crate::rollup::Epoch;
use crate::window::with_expiry;

/// Allowed lateness and retention of the correlations (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationConfig {
    lateness_ms: u64,
    retention_ms: u64,
}

impl Default for CorrelationConfig {
    /// The rollups' defaults: five minutes of lateness, retention equal to lateness.
    fn default() -> Self {
        RollupConfig::default().into()
    }
}

impl From<RollupConfig> for CorrelationConfig {
    /// The same lateness and retention as the rollups.
    fn from(config: RollupConfig) -> Self {
        CorrelationConfig { lateness_ms: config.lateness_ms(), retention_ms: config.retention_ms() }
    }
}

impl CorrelationConfig {
    /// Builds a config; fails when `retention` is shorter than `lateness`.
    pub fn new(lateness: Duration, retention: Duration) -> Result<Self, RollupConfigError> {
        RollupConfig::new(lateness, retention).map(Into::into)
    }

    /// The allowed lateness in milliseconds.
    pub fn lateness_ms(&self) -> u64 {
        self.lateness_ms
    }

    /// The retention in milliseconds.
    pub fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    /// Whether a detection-rule match with event time `event_time_ms` ingested at `epoch` is
    /// applied (`true`) or late (`false`).
    pub fn accepts(&self, event_time_ms: u64, epoch: Epoch) -> bool {
        epoch < event_time_ms.saturating_add(self.lateness_ms)
    }

    /// First epoch at which the alert of `correlation` with window start `window_start_ms`
    /// is final.
    pub fn close_epoch(&self, correlation: &CompiledCorrelation, window_start_ms: u64) -> Epoch {
        window_start_ms
            .saturating_add(correlation.timespan_ms)
            .saturating_add(self.lateness_ms)
            .saturating_add(correlation.settle_ms)
    }

    /// Epoch at which a match with event time `event_time_ms` leaves `correlation`'s state.
    pub fn expiry_epoch(&self, correlation: &CompiledCorrelation, event_time_ms: u64) -> Epoch {
        event_time_ms
            .saturating_add(correlation.timespan_ms.saturating_mul(2))
            .saturating_add(self.retention_ms)
            .saturating_add(correlation.settle_ms)
    }
}

/// The outputs of [`build_correlations`], all at ingest-epoch times.
pub struct Correlations<'scope> {
    /// Correlation alerts as the store should hold them: `+1` when a condition starts to hold,
    /// `-1` when late data invalidates it. Correlations referenced by others are left out
    /// unless a referencing correlation says `generate: true`.
    pub alerts: VecCollection<'scope, Epoch, Alert, isize>,
    /// Detection-rule matches that arrived after the allowed lateness, at their epoch; they
    /// changed nothing.
    pub late: VecCollection<'scope, Epoch, Match, isize>,
    /// Matches that a correlation skipped because they lack a group-by field (or the value
    /// field of a `value_*` correlation), with that correlation's rule id.
    pub skipped: VecCollection<'scope, Epoch, (String, Match), isize>,
    /// The alerts resident in memory (all correlations, including the expiry retractions).
    /// Never write it to a store; it serves gauges and tests.
    pub resident: VecCollection<'scope, Epoch, Alert, isize>,
}

type Keyed = ((usize, Vec<String>), Entry);

/// Builds every correlation of `correlations` over `matches` (detection-rule matches at their
/// ingest epochs, e.g. from [`securewatch_detection::match_of`]). Any worker may feed any
/// match; the state is exchanged by (correlation, group).
// `result_large_err`: the `Result`s here route updates to two outputs (`ok_err`); their `Err`
// side is a skipped match, not an error.
#[allow(clippy::result_large_err)]
pub fn build_correlations<'scope>(
    matches: VecCollection<'scope, Epoch, Match, isize>,
    correlations: Arc<CompiledCorrelations>,
    config: CorrelationConfig,
) -> Correlations<'scope> {
    let (accepted, late) = matches.inner.ok_err(move |(m, epoch, diff)| {
        if config.accepts(m.event_time_ms, epoch) {
            Ok((m, epoch, diff))
        } else {
            Err((m, epoch, diff))
        }
    });
    let accepted = accepted.as_collection();
    let mut chained: Option<VecCollection<'scope, Epoch, Match, isize>> = None;
    let (mut alerts, mut resident, mut skipped) = (Vec::new(), Vec::new(), Vec::new());

    for depth in 0..=correlations.max_depth() {
        if !correlations.correlations.iter().any(|c| c.depth == depth) {
            continue;
        }
        let input = match &chained {
            Some(chained) => accepted.clone().concat(chained.clone()),
            None => accepted.clone(),
        };
        let routing = Arc::clone(&correlations);
        let (keyed, skips) = input
            .flat_map(move |m: Match| {
                routing
                    .routes(&m.rule_id)
                    .iter()
                    .filter(|(index, _)| routing.correlations[*index].depth == depth)
                    .map(|&(index, input)| {
                        let correlation = &routing.correlations[index];
                        match correlation.entry(input, &m) {
                            Ok((group, entry)) => Ok(((index, group), entry)),
                            Err(Skip::MissingGroupField | Skip::MissingValue) => {
                                Err((correlation.rule_id.clone(), m.clone()))
                            }
                        }
                    })
                    .collect::<Vec<Result<Keyed, (String, Match)>>>()
            })
            .inner
            .ok_err(|(result, epoch, diff)| match result {
                Ok(keyed) => Ok((keyed, epoch, diff)),
                Err(skip) => Err((skip, epoch, diff)),
            });
        skipped.push(skips.as_collection());

        let expiring = Arc::clone(&correlations);
        let resident_entries = with_expiry(keyed, move |((index, _), entry): &Keyed| {
            config.expiry_epoch(&expiring.correlations[*index], entry.time_ms)
        })
        .as_collection();

        let evaluating = Arc::clone(&correlations);
        let level_alerts = resident_entries.reduce_named("Correlate", move |(index, group), input, output| {
            let entries: Vec<Entry> =
                input.iter().filter(|(_, count)| *count > 0).map(|(entry, _)| (*entry).clone()).collect();
            for alert in evaluating.correlations[*index].evaluate(group, &entries) {
                output.push((alert, 1isize));
            }
        });
        resident.push(level_alerts.clone().map(|(_, alert)| alert));

        // Changes after an alert's close epoch come from expiry, not from input: drop them.
        let closing = Arc::clone(&correlations);
        let final_alerts = level_alerts
            .inner
            .filter(move |(((index, _), alert), epoch, _)| {
                *epoch < config.close_epoch(&closing.correlations[*index], alert.window_start_ms)
            })
            .as_collection();

        let emitting = Arc::clone(&correlations);
        alerts.push(
            final_alerts
                .clone()
                .filter(move |((index, _), _)| emitting.emits_correlation(*index))
                .map(|(_, alert)| alert),
        );
        let as_matches = final_alerts.map(|(_, alert)| Match::of_alert(&alert));
        chained = Some(match chained {
            Some(chained) => chained.concat(as_matches),
            None => as_matches,
        });
    }

    let scope = accepted.scope();
    Correlations {
        alerts: concat_all(scope, alerts),
        late: late.as_collection(),
        skipped: concat_all(scope, skipped),
        resident: concat_all(scope, resident),
    }
}

fn concat_all<'scope, D: differential_dataflow::Data>(
    scope: timely::dataflow::Scope<'scope, Epoch>,
    collections: Vec<VecCollection<'scope, Epoch, D, isize>>,
) -> VecCollection<'scope, Epoch, D, isize> {
    differential_dataflow::collection::concatenate(scope, collections)
}

/// The single-rule alerts of detection-rule `matches` (id from rule id and event id), for the
/// rules that emit their own alerts (`generate`). No lateness applies: a match is an alert
/// whenever it arrives.
pub fn rule_alerts<'scope>(
    matches: VecCollection<'scope, Epoch, Match, isize>,
    correlations: Arc<CompiledCorrelations>,
) -> VecCollection<'scope, Epoch, Alert, isize> {
    matches.flat_map(move |m: Match| correlations.rule_alert(&m))
}
