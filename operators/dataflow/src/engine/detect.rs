//! Sigma detection inside the normalise operator: the rules in force and what a match emits.

use std::sync::{Arc, RwLock};

use securewatch_detection::{match_of, CompiledCorrelations, Match, SourceDetectors};
use securewatch_schemas::{Alert, Event};

use crate::correlate::CorrelationRules;

/// A rule set as the dataflow runs it: the detectors of every source kind and the correlations
/// compiled from the same rules.
pub struct Rules {
    pub detectors: SourceDetectors,
    pub correlations: Arc<CompiledCorrelations>,
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
pub(crate) fn detect(rules: &Rules, event: &Event, mut alert: impl FnMut(Alert), mut correlate: impl FnMut(Match)) {
    for found in rules.detectors.matches(event) {
        let matched = match_of(&found, event, &rules.correlations);
        if let Some(single) = rules.correlations.rule_alert(&matched) {
            alert(single);
        }
        if rules.correlations.feeds(&matched.rule_id) {
            correlate(matched);
        }
    }
}
