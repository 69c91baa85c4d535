//! Sigma detection inside the normalise operator: the rules in force and what a match emits.

use std::sync::{Arc, RwLock};

use securewatch_detection::{match_of, CompiledCorrelations, Match, SourceDetectors};
use securewatch_schemas::{Alert, Event};

/// A rule set as the dataflow runs it: the detectors of every source kind and the correlations
/// compiled from the same rules.
pub struct Rules {
    pub detectors: SourceDetectors,
    pub correlations: Arc<CompiledCorrelations>,
}

/// The detection rules in force, shared by every worker of the process. A reload swaps the
/// whole set at once; a worker takes the current set once per batch, so a batch is matched
/// against one set, and events ingested after a swap see the new rules.
///
/// The correlation operators are built once, from the set in force when the dataflow starts;
/// a swapped set changes single-event matching and which rules raise their own alerts.
#[derive(Clone)]
pub struct RulesHandle(Arc<RwLock<Arc<Rules>>>);

impl RulesHandle {
    /// A handle holding `rules`.
    pub fn new(rules: Rules) -> RulesHandle {
        RulesHandle(Arc::new(RwLock::new(Arc::new(rules))))
    }

    /// Puts `rules` in force for everything matched from now on.
    pub fn replace(&self, rules: Rules) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rules);
    }

    /// The rules in force.
    pub fn current(&self) -> Arc<Rules> {
        Arc::clone(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
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
