//! Sigma correlation rules as differential operators over event time.
//!
//! [`build_correlations`] turns a collection of rule [`Match`]es (at their ingest epochs) into
//! a collection of correlation [`Alert`]s: an alert is added when a correlation's condition
//! starts to hold for (rule, group key, window), retracted when late data invalidates it, and
//! never duplicated (one alert per group and window start). [`rule_alerts`] maps the
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
//! (correlation, group), an operator keeps the resident matches and, at each completed epoch,
//! re-evaluates the anchors that the epoch's changes can affect (see `groups`), so the output
//! is exactly the alerts of the accepted matches, whatever the order they arrived in. The alert id is a hash of (rule id, group key, window start).
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
//! * An accepted match leaves memory at epoch `e + 2T + H + settle` (rounded up to a minute): it is retracted inside
//!   the dataflow and the arrangements compact it away. By then every anchor whose window
//!   could see it is closed, and the changes that its departure causes downstream (after the
//!   close epoch of every affected alert) are dropped from [`Correlations::alerts`], as the
//!   rollups drop their expiry (they stay visible on [`Correlations::resident`]).
//!
//! Chains (correlations of correlations) are built level by level: level 0 reads detection
//! rule matches, level `d` also the alerts of levels `< d` (as [`Match::of_alert`]). Each level
//! is one keyed operator for all its correlations, so the operator count grows with the chain
//! depth, not with the number of rules.
//!
//! # Replacing the rules
//!
//! The state is keyed by each correlation's definition hash ([`CorrelationRules`]), not by its
//! position in the set, so a new set can be put in force while the dataflow runs: matches are
//! routed by the set in force when they reach the router; an unchanged correlation keeps its
//! windows; a new or changed one starts empty, and the caller fills its windows with
//! [`CorrelatedInputs::backfill`] (matches recomputed from stored events); a removed one stops
//! receiving matches and its state expires. Alerts already emitted stay as they are.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use differential_dataflow::{AsCollection, VecCollection};
use securewatch_detection::correlation::{CompiledCorrelation, Entry, Skip};
use securewatch_detection::{CompiledCorrelations, Match, MAX_CHAIN_DEPTH};
use securewatch_schemas::Alert;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::OkErr;

use crate::time::{TimeModel, TimeModelError};
use crate::time::Epoch;
use crate::window::with_expiry;

mod groups;

use groups::{correlate_groups, GroupKey};

/// Expiry epochs are rounded up to a multiple of this (see [`CorrelationConfig::expiry_epoch`]).
pub const EXPIRY_GRANULARITY_MS: u64 = 60_000;

/// Allowed lateness and retention of the correlations (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationConfig {
    lateness_ms: u64,
    retention_ms: u64,
}

impl Default for CorrelationConfig {
    /// The rollups' defaults: five minutes of lateness, retention equal to lateness.
    fn default() -> Self {
        TimeModel::default().into()
    }
}

impl From<TimeModel> for CorrelationConfig {
    /// The same lateness and retention as the rollups.
    fn from(config: TimeModel) -> Self {
        CorrelationConfig { lateness_ms: config.lateness_ms(), retention_ms: config.retention_ms() }
    }
}

impl CorrelationConfig {
    /// Builds a config; fails when `retention` is shorter than `lateness`.
    pub fn new(lateness: Duration, retention: Duration) -> Result<Self, TimeModelError> {
        TimeModel::new(lateness, retention).map(Into::into)
    }

    /// The same lateness, but matches never leave memory: for a finished batch, where expiry
    /// would only make every group be evaluated again once the input ends.
    pub fn never_expiring(self) -> Self {
        CorrelationConfig { retention_ms: u64::MAX, ..self }
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

    /// Epoch at which a match with event time `event_time_ms` leaves `correlation`'s state:
    /// `e + 2T + H + settle`, rounded up to a whole [`EXPIRY_GRANULARITY_MS`], so that the
    /// matches of a burst leave together and their group is evaluated once, not once per match.
    pub fn expiry_epoch(&self, correlation: &CompiledCorrelation, event_time_ms: u64) -> Epoch {
        let due = event_time_ms
            .saturating_add(correlation.timespan_ms.saturating_mul(2))
            .saturating_add(self.retention_ms)
            .saturating_add(correlation.settle_ms);
        due.div_ceil(EXPIRY_GRANULARITY_MS).saturating_mul(EXPIRY_GRANULARITY_MS)
    }
}

/// The correlation rules a dataflow evaluates, replaceable at run time.
///
/// Every correlation's state is kept under its [`CompiledCorrelation::key`], a hash of its
/// definition. A new set ([`CorrelationRules::replace`]) routes the matches that arrive from
/// then on; a correlation that the new set keeps unchanged keeps its key and therefore its
/// windows, a new or changed one starts under a new key (fill it with
/// [`CorrelatedInputs::backfill`]), and the state of a removed one only expires. Every
/// definition ever put in force stays known, so the operators can still evaluate and expire
/// the state of an old key.
#[derive(Clone)]
pub struct CorrelationRules {
    current: Arc<RwLock<Arc<CompiledCorrelations>>>,
    known: Arc<RwLock<HashMap<u64, Arc<CompiledCorrelation>>>>,
    /// Chain levels the dataflow builds (fixed when it is built).
    levels: usize,
}

impl From<Arc<CompiledCorrelations>> for CorrelationRules {
    /// A fixed set: the dataflow builds only the chain levels this set uses.
    fn from(set: Arc<CompiledCorrelations>) -> Self {
        let levels = set.max_depth() + 1;
        let rules = CorrelationRules {
            current: Arc::new(RwLock::new(Arc::new(CompiledCorrelations::default()))),
            known: Arc::default(),
            levels,
        };
        rules.replace(set);
        rules
    }
}

impl CorrelationRules {
    /// A replaceable set: the dataflow builds every chain level up to [`MAX_CHAIN_DEPTH`].
    pub fn replaceable(set: Arc<CompiledCorrelations>) -> Self {
        CorrelationRules { levels: MAX_CHAIN_DEPTH + 1, ..CorrelationRules::from(set) }
    }

    /// Puts `set` in force for the matches routed from now on.
    pub fn replace(&self, set: Arc<CompiledCorrelations>) {
        {
            let mut known = self.known.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for correlation in &set.correlations {
                known.entry(correlation.key).or_insert_with(|| Arc::new(correlation.clone()));
            }
        }
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = set;
    }

    /// The set in force.
    pub fn current(&self) -> Arc<CompiledCorrelations> {
        Arc::clone(&self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The correlation with this key; every key in the dataflow came from a set put in force.
    fn get(&self, key: u64) -> Arc<CompiledCorrelation> {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(known.get(&key).expect("correlation keys come from sets put in force"))
    }
}

/// The inputs of [`build_correlations`].
pub struct CorrelatedInputs<'scope> {
    /// Detection-rule matches at their ingest epochs, routed by the set in force and judged
    /// against the allowed lateness.
    pub matches: VecCollection<'scope, Epoch, Match, isize>,
    /// Matches recomputed from stored events for new correlations, each with the keys of the
    /// correlations it is for: routed to those keys only and never late (they rebuild windows
    /// that the correlations would have seen had they been in force).
    pub backfill: Option<VecCollection<'scope, Epoch, (Match, Vec<u64>), isize>>,
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

/// A match at one chain level: all its correlations, or only those with the given keys.
type Routable = (Match, Option<Vec<u64>>);
type Keyed = (GroupKey, Entry);

/// Builds every correlation of `rules` over `inputs` (detection-rule matches at their ingest
/// epochs, e.g. from [`securewatch_detection::match_of`]). Any worker may feed any match; the
/// state is exchanged by (correlation key, group).
// `result_large_err`: the `Result`s here route updates to two outputs (`ok_err`); their `Err`
// side is a skipped match, not an error.
#[allow(clippy::result_large_err)]
pub fn build_correlations<'scope>(
    inputs: impl Into<CorrelatedInputs<'scope>>,
    rules: impl Into<CorrelationRules>,
    config: CorrelationConfig,
) -> Correlations<'scope> {
    let CorrelatedInputs { matches, backfill } = inputs.into();
    let rules: CorrelationRules = rules.into();
    let (accepted, late) = matches.inner.ok_err(move |(m, epoch, diff)| {
        if config.accepts(m.event_time_ms, epoch) {
            Ok((m, epoch, diff))
        } else {
            Err((m, epoch, diff))
        }
    });
    let scope = accepted.scope();
    let mut level_input: VecCollection<'scope, Epoch, Routable, isize> = accepted.as_collection().map(|m| (m, None));
    if let Some(backfill) = backfill {
        level_input = level_input.concat(backfill.map(|(m, keys)| (m, Some(keys))));
    }
    let mut chained: Option<VecCollection<'scope, Epoch, Match, isize>> = None;
    let (mut alerts, mut resident, mut skipped) = (Vec::new(), Vec::new(), Vec::new());

    for depth in 0..rules.levels {
        let input = match &chained {
            Some(chained) => level_input.clone().concat(chained.clone().map(|m| (m, None))),
            None => level_input.clone(),
        };
        let routing = rules.clone();
        let (keyed, skips) = input
            .flat_map(move |(m, only): Routable| {
                let set = routing.current();
                set.routes(&m.rule_id)
                    .iter()
                    .map(|&(index, input)| (&set.correlations[index], input))
                    .filter(|(correlation, _)| correlation.depth == depth)
                    .filter(|(correlation, _)| only.as_ref().is_none_or(|keys| keys.contains(&correlation.key)))
                    .map(|(correlation, input)| match correlation.entry(input, &m) {
                        Ok((group, entry)) => Ok(((correlation.key, m.tenant.clone(), group), entry)),
                        Err(Skip::MissingGroupField | Skip::MissingValue) => {
                            Err((correlation.rule_id.clone(), m.clone()))
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

        let expiring = rules.clone();
        let resident_entries = with_expiry(keyed, move |((key, _, _), entry): &Keyed| {
            config.expiry_epoch(&expiring.get(*key), entry.time_ms)
        });

        let level_alerts = correlate_groups(resident_entries, rules.clone(), config).as_collection();
        resident.push(level_alerts.clone().map(|(_, alert)| alert));

        // Changes after an alert's close epoch come from expiry, not from input: drop them.
        let closing = rules.clone();
        let final_alerts = level_alerts
            .inner
            .filter(move |(((key, _, _), alert), epoch, _)| {
                *epoch < config.close_epoch(&closing.get(*key), alert.window_start_ms)
            })
            .as_collection();

        let emitting = rules.clone();
        alerts.push(
            final_alerts
                .clone()
                .filter(move |((key, _, _), _)| emitting.current().emits_key(*key))
                .map(|(_, alert)| alert),
        );
        // The last level's alerts feed no further level.
        if depth + 1 < rules.levels {
            let as_matches = final_alerts.map(|(_, alert)| Match::of_alert(&alert));
            chained = Some(match chained {
                Some(chained) => chained.concat(as_matches),
                None => as_matches,
            });
        }
    }

    Correlations {
        alerts: concat_all(scope, alerts),
        late: late.as_collection(),
        skipped: concat_all(scope, skipped),
        resident: concat_all(scope, resident),
    }
}

impl<'scope> From<VecCollection<'scope, Epoch, Match, isize>> for CorrelatedInputs<'scope> {
    /// Matches only, no backfill.
    fn from(matches: VecCollection<'scope, Epoch, Match, isize>) -> Self {
        CorrelatedInputs { matches, backfill: None }
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
