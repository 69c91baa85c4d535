//! Sigma detection inside the normalise operator: the rules in force and what a match emits.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use securewatch_detection::{match_of, CompiledCorrelations, Match, SourceDetectors};
use securewatch_schemas::{Alert, Event};

use crate::correlate::CorrelationRules;

/// A rule set as the dataflow runs it: the detectors of every source kind and the correlations
/// compiled from the same rules.
pub struct Rules {
    /// Single-event matching, per log source.
    pub detectors: SourceDetectors,
    /// The correlations, and which rules feed them.
    pub correlations: Arc<CompiledCorrelations>,
}

impl Rules {
    /// Every match of `event`, as the correlations and alerts see it.
    pub(crate) fn matches<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = Match> + 'a {
        self.detectors.matches(event).map(move |found| match_of(&found, event, &self.correlations))
    }

    /// The matches of `events` that feed correlations, each with the keys of the correlations
    /// it is for, keeping only keys `wanted` accepts: what a restore or a backfill after a
    /// reload feeds back ([`super::Feed::Backfill`]).
    pub fn correlation_matches(&self, events: &[Event], wanted: impl Fn(u64) -> bool) -> Vec<(Match, Vec<u64>)> {
        let mut found: Vec<(Match, Vec<u64>)> = Vec::new();
        for event in events {
            for matched in self.matches(event) {
                let keys: BTreeSet<u64> = self
                    .correlations
                    .routes(&matched.rule_id)
                    .iter()
                    .map(|&(index, _)| self.correlations.correlations[index].key)
                    .filter(|&key| wanted(key))
                    .collect();
                if !keys.is_empty() {
                    found.push((matched, keys.into_iter().collect()));
                }
            }
        }
        found
    }
}

/// The detection rules in force, shared by every worker of the process. A reload swaps the
/// whole set at once; a worker takes the current set once per batch, so a batch is matched
/// against one set, and events ingested after a swap see the new rules. The correlations are
/// swapped too: see [`CorrelationRules`] for what happens to their windows, and
/// [`super::Feed::Backfill`] for filling the windows of new ones.
#[derive(Clone)]
pub struct RulesHandle {
    rules: Arc<RwLock<Arc<Rules>>>,
    correlations: CorrelationRules,
}

impl RulesHandle {
    /// A handle holding `rules`.
    pub fn new(rules: Rules) -> RulesHandle {
        let correlations = CorrelationRules::replaceable(Arc::clone(&rules.correlations));
        RulesHandle { rules: Arc::new(RwLock::new(Arc::new(rules))), correlations }
    }

    /// Puts `rules` in force for everything matched from now on.
    pub fn replace(&self, rules: Rules) {
        let correlations = Arc::clone(&rules.correlations);
        *self.rules.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rules);
        self.correlations.replace(correlations);
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        Arc::clone(&self.rules.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The correlations as the dataflow's correlation operators see them.
    pub fn correlations(&self) -> CorrelationRules {
        self.correlations.clone()
    }
}

impl std::fmt::Debug for RulesHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules = self.current();
        formatter
            .debug_struct("RulesHandle")
            .field("correlations", &rules.correlations.correlations.len())
            .finish_non_exhaustive()
    }
}

/// What one event's matches produce: the single-rule alerts of the rules that emit their own,
/// and the matches the correlations consume.
pub(crate) fn detect(rules: &Rules, event: &Event, alert: impl FnMut(Alert), correlate: impl FnMut(Match)) {
    detect_each(rules, event, |_| {}, alert, correlate);
}

/// [`detect`], telling `seen` of every match first (a backtest counts the matches per rule).
pub(crate) fn detect_each(
    rules: &Rules,
    event: &Event,
    mut seen: impl FnMut(&Match),
    mut alert: impl FnMut(Alert),
    mut correlate: impl FnMut(Match),
) {
    for matched in rules.matches(event) {
        seen(&matched);
        if let Some(single) = rules.correlations.rule_alert(&matched) {
            alert(single);
        }
        if rules.correlations.feeds(&matched.rule_id) {
            correlate(matched);
        }
    }
}
