//! Single-event Sigma detection inside the normalise operator: the rules in force and the matches it emits.

use std::sync::{Arc, RwLock};

use securewatch_detection::SourceDetectors;
use securewatch_schemas::Event;

/// The detection rules in force, shared by every worker of the process. A reload swaps the
/// whole set at once; a worker takes the current set once per batch, so a batch is matched
/// against one set, and events ingested after a swap see the new rules.
#[derive(Clone, Default)]
pub struct RulesHandle(Arc<RwLock<Option<Arc<SourceDetectors>>>>);

impl RulesHandle {
    /// A handle holding `rules`.
    pub fn new(rules: SourceDetectors) -> RulesHandle {
        RulesHandle(Arc::new(RwLock::new(Some(Arc::new(rules)))))
    }

    /// Puts `rules` in force for everything matched from now on.
    pub fn replace(&self, rules: SourceDetectors) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(rules));
    }

    /// The rules in force (`None`: detection is off).
    pub fn current(&self) -> Option<Arc<SourceDetectors>> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl std::fmt::Debug for RulesHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("RulesHandle").field("active", &self.current().is_some()).finish()
    }
}

/// One detection rule that matched one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The rule's id, else its name, else its title.
    pub rule_id: String,
    pub title: String,
    /// Sigma level (`medium` when the rule states none).
    pub level: &'static str,
    pub tags: Vec<String>,
    /// The matched event's id and time.
    pub event: securewatch_schemas::EventId,
    pub event_time: chrono::DateTime<chrono::Utc>,
}

/// The detections of `event` under `rules`.
pub(crate) fn detect(rules: &SourceDetectors, event: &Event) -> impl Iterator<Item = Detection> {
    let found: Vec<Detection> = rules
        .matches(event)
        .map(|found| Detection {
            rule_id: found.rule.reference().to_string(),
            title: found.rule.title.clone(),
            level: found.rule.level.map_or("medium", |level| level.as_str()),
            tags: found.rule.tags.clone(),
            event: event.id,
            event_time: event.time,
        })
        .collect();
    found.into_iter()
}
