//! Sigma correlation rules compiled for evaluation over event time, and the window semantics.
//!
//! This module is pure (no dataflow): [`CompiledCorrelations::compile`] turns the correlations
//! of a [`RuleSet`] into [`CompiledCorrelation`]s (or rejections), [`match_of`] derives the
//! small [`Match`] record the dataflow carries from a rule match, and
//! [`CompiledCorrelation::evaluate`] computes the alerts of one group from its matches. The
//! dataflow (crate `securewatch-dataflow`, module `correlate`) runs `evaluate` incrementally
//! per (correlation, group) and owns lateness and retention.
//!
//! # Semantics
//!
//! * **Windows** are sliding and anchored at matches: for a match at event time `s` the window
//!   is `[s, s + timespan)` (start inclusive, end exclusive). For `temporal_ordered` only
//!   matches of the first listed rule anchor a window. The condition is evaluated over all
//!   matches of the group inside the window.
//! * **Suppression**: a window fires when its condition holds and no window anchored in
//!   `(s - timespan, s)` holds: one alert when a condition *starts* to hold, none while it keeps
//!   holding; a new alert needs a full timespan of anchors without the condition. The decision
//!   for an anchor depends only on matches in `(s - timespan, s + timespan)`, so it is local
//!   and exact under any arrival order.
//! * **Listed matches**: when more matches can only make the condition true (`gt`/`gte`
//!   thresholds of `event_count`, `value_count` and `temporal`, rule-presence conditions
//!   without `not`, `temporal_ordered`), an alert lists the matches from its window start up
//!   to `fired_at`, the event time at which the condition first held: the matches that made
//!   it hold. Later matches in the window leave the alert as it is, so in-order data never
//!   rewrites an alert. Otherwise (`lt`, `lte`, `eq`, `neq`, `value_sum`, `value_avg`) the
//!   decision reads the whole window and the alert lists all of it.
//! * **Counting** is by distinct event id: an event delivered twice counts once.
//!   `event_count` counts events; `value_count` distinct values of the condition `field`
//!   (several fields: distinct tuples); `value_sum` / `value_avg` sum / average the numeric
//!   values of `field` (matches without a numeric value are left out); `temporal` needs every
//!   listed rule in the window (an explicit threshold other than `gte: 1` compares the number
//!   of distinct rules seen; a boolean condition string is evaluated over the rules seen);
//!   `temporal_ordered` needs matches of the listed rules at non-decreasing event times (equal
//!   times are in order).
//! * **Group-by**: a match that lacks a group-by field (after aliases) is **skipped** for that
//!   correlation, as SIEM `stats ... by` does; it never forms a "null" group.
//! * **Chains**: the alert of an inner correlation is a match of the outer one, with the
//!   inner alert's id as event id, its `fired_at` (the event time at which the inner
//!   condition first held in its window) as event time, and its group key as fields.
//! * **generate**: a rule (or correlation) referenced by correlations emits its own alerts only
//!   when one of them says `generate: true`; unreferenced rules always do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rsigma_eval::Event as _;
use rsigma_parser::ConditionOperator;
use securewatch_schemas::{Alert, AlertLevel, Event, EventId, Tenant};
use serde::{Deserialize, Serialize};

use crate::detector::RuleMatch;
use crate::error::Rejection;
use crate::view::EventView;

/// One rule match (of a detection rule, or an alert of an inner correlation) as the
/// correlation dataflow sees it: only the fields the loaded correlations need.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Match {
    /// The rule's id, else name, else title ([`crate::DetectorRule::reference`]).
    pub rule_id: String,
    /// The event's (or inner alert's) tenant: correlation groups never span tenants.
    pub tenant: Tenant,
    /// The event (or inner alert) id.
    pub event_id: EventId,
    /// Event time, ms since the Unix epoch.
    pub event_time_ms: u64,
    /// Field name (as the correlations spell it) to value, as text.
    pub fields: BTreeMap<String, String>,
}

impl Match {
    /// The match an alert of an inner correlation is for the correlations that reference it.
    pub fn of_alert(alert: &Alert) -> Match {
        Match {
            rule_id: alert.rule_id.clone(),
            tenant: alert.tenant.clone(),
            event_id: alert.id,
            event_time_ms: alert.fired_at_ms,
            fields: alert.group_key.clone(),
        }
    }
}

/// The kinds of correlation SecureWatch evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CorrelationKind {
    /// `event_count`
    EventCount,
    /// `value_count`
    ValueCount,
    /// `temporal`
    Temporal,
    /// `temporal_ordered`
    TemporalOrdered,
    /// `value_sum`
    ValueSum,
    /// `value_avg`
    ValueAvg,
}

impl CorrelationKind {
    /// The Sigma name.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrelationKind::EventCount => "event_count",
            CorrelationKind::ValueCount => "value_count",
            CorrelationKind::Temporal => "temporal",
            CorrelationKind::TemporalOrdered => "temporal_ordered",
            CorrelationKind::ValueSum => "value_sum",
            CorrelationKind::ValueAvg => "value_avg",
        }
    }
}

/// A comparison of the condition.
pub type Predicate = (ConditionOperator, u64);

/// The condition of a correlation.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// All predicates hold on the aggregate (a range is two predicates).
    Threshold(Vec<Predicate>),
    /// `temporal` / `temporal_ordered` default: every listed rule is seen.
    AllRules,
    /// `temporal` with a boolean condition over the listed rules (by input index).
    Expr(RuleExpr),
}

/// A boolean expression over the inputs of a `temporal` correlation.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleExpr {
    /// The input with this index was seen in the window.
    Seen(usize),
    /// All hold.
    And(Vec<RuleExpr>),
    /// One holds.
    Or(Vec<RuleExpr>),
    /// Does not hold.
    Not(Box<RuleExpr>),
}

impl RuleExpr {
    /// Whether a `not` appears anywhere in the expression.
    fn negates(&self) -> bool {
        match self {
            RuleExpr::Seen(_) => false,
            RuleExpr::And(items) | RuleExpr::Or(items) => items.iter().any(RuleExpr::negates),
            RuleExpr::Not(_) => true,
        }
    }

    fn eval(&self, seen: &[bool]) -> bool {
        match self {
            RuleExpr::Seen(index) => seen[*index],
            RuleExpr::And(items) => items.iter().all(|item| item.eval(seen)),
            RuleExpr::Or(items) => items.iter().any(|item| item.eval(seen)),
            RuleExpr::Not(inner) => !inner.eval(seen),
        }
    }
}

/// What a correlation input is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// A detection rule, by its canonical reference (id, else name, else title).
    Rule(String),
    /// Another correlation, by index in [`CompiledCorrelations::correlations`].
    Correlation(usize),
}

/// One referenced rule of a correlation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationInput {
    /// The reference as written in `rules:`.
    pub reference: String,
    /// The `rule_id` its [`Match`]es carry.
    pub rule_id: String,
    /// Where its matches come from.
    pub source: InputSource,
    /// The field holding each group-by value, in group-by order (aliases resolved).
    pub group_fields: Vec<String>,
    /// The fields of the condition's `field` (aliases resolved), for `value_*` kinds.
    pub value_fields: Vec<String>,
}

/// One correlation rule, ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledCorrelation {
    /// Index in [`CompiledCorrelations::correlations`].
    pub index: usize,
    /// A hash of everything that decides this correlation's alerts (its definition, with
    /// inner correlations by their own keys, not by index): equal across reloads of the same
    /// definition, different when anything that changes its alerts changes. Stable within one
    /// build of SecureWatch. The dataflow keeps a correlation's state under this key.
    pub key: u64,
    /// The id, else name, else title: the `rule_id` of its alerts.
    pub rule_id: String,
    /// `name`, when given.
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `level`.
    pub level: Option<AlertLevel>,
    /// `tags`.
    pub tags: Vec<String>,
    /// The correlation type.
    pub kind: CorrelationKind,
    /// The referenced rules, in listed order.
    pub inputs: Vec<CorrelationInput>,
    /// The group-by names (aliases or field names): the keys of the alerts' group keys.
    pub group_by: Vec<String>,
    /// `timespan` in milliseconds.
    pub timespan_ms: u64,
    /// The condition.
    pub condition: Condition,
    /// `generate`.
    pub generate: bool,
    /// 0 when every input is a detection rule, else one more than the deepest input.
    pub depth: usize,
    /// How much later (in event time) than its own event time the latest update of an input
    /// match can happen, beyond the allowed lateness: 0 for detection rules, the inner
    /// correlation's `timespan + settle` for chained inputs.
    pub settle_ms: u64,
}

/// A match's contribution to one group of one correlation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Event time (first, so entries sort by time).
    pub time_ms: u64,
    /// The event (or inner alert) id.
    pub event_id: EventId,
    /// Index of the input (referenced rule) it matched.
    pub input: usize,
    /// The value of the condition's field(s), for `value_*` kinds (tuples joined by U+001F).
    pub value: Option<String>,
}

/// Why a match does not contribute to a correlation it is referenced by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A group-by field is missing.
    MissingGroupField,
    /// The condition's field is missing (or not numeric for `value_sum` / `value_avg`).
    MissingValue,
}

impl CompiledCorrelation {
    /// See [`CompiledCorrelation::key`]; `earlier` holds the correlations compiled before this
    /// one (its inner correlations among them).
    fn definition_key(&self, earlier: &[CompiledCorrelation]) -> u64 {
        use std::hash::{Hash, Hasher};
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|input| {
                let source = match &input.source {
                    InputSource::Rule(rule) => format!("rule {rule}"),
                    InputSource::Correlation(index) => format!("correlation {:x}", earlier[*index].key),
                };
                format!("{}|{}|{source}|{:?}|{:?}", input.reference, input.rule_id, input.group_fields, input.value_fields)
            })
            .collect();
        let definition = format!(
            "{}|{:?}|{}|{:?}|{:?}|{}|{inputs:?}|{:?}|{}|{:?}|{}|{}",
            self.rule_id,
            self.name,
            self.title,
            self.level,
            self.tags,
            self.kind.as_str(),
            self.group_by,
            self.timespan_ms,
            self.condition,
            self.depth,
            self.settle_ms
        );
        let mut hasher = std::hash::DefaultHasher::new();
        definition.hash(&mut hasher);
        hasher.finish()
    }

    /// The group values and entry of `m` (a match of input `input`), or why it is skipped.
    pub fn entry(&self, input: usize, m: &Match) -> Result<(Vec<String>, Entry), Skip> {
        let spec = &self.inputs[input];
        let mut group = Vec::with_capacity(spec.group_fields.len());
        for field in &spec.group_fields {
            group.push(m.fields.get(field).cloned().ok_or(Skip::MissingGroupField)?);
        }
        let value = if spec.value_fields.is_empty() {
            None
        } else {
            let mut parts = Vec::with_capacity(spec.value_fields.len());
            for field in &spec.value_fields {
                parts.push(m.fields.get(field).ok_or(Skip::MissingValue)?.as_str());
            }
            let text = parts.join("\u{1f}");
            if matches!(self.kind, CorrelationKind::ValueSum | CorrelationKind::ValueAvg)
                && !text.trim().parse::<f64>().is_ok_and(f64::is_finite)
            {
                return Err(Skip::MissingValue);
            }
            Some(text)
        };
        Ok((group, Entry { time_ms: m.event_time_ms, event_id: m.event_id, input, value }))
    }


}

/// Metadata of a detection rule for its single-rule alerts.
#[derive(Clone, Debug)]
pub struct RuleInfo {
    /// Title.
    pub title: String,
    /// Level.
    pub level: Option<AlertLevel>,
    /// Tags.
    pub tags: Vec<String>,
    /// Whether it emits its own alerts (see `generate`).
    pub emits: bool,
}

/// The correlations of a rule set, compiled, with what the matches of each rule feed.
#[derive(Clone, Debug, Default)]
pub struct CompiledCorrelations {
    /// In dependency order: a correlation comes after every correlation it references.
    pub correlations: Vec<CompiledCorrelation>,
    /// Correlations that cannot be evaluated, with the reason.
    pub rejected: Vec<Rejection>,
    /// Detection rules by canonical reference.
    pub rules: BTreeMap<String, RuleInfo>,
    /// `rule_id` of a match → the (correlation, input) pairs it feeds.
    routes: HashMap<String, Vec<(usize, usize)>>,
    /// Detection rule `rule_id` → the fields its matches must carry.
    needed: HashMap<String, BTreeSet<String>>,
    /// Correlations whose own alerts are emitted.
    emitting: Vec<bool>,
}

/// Shared between workers.
pub type SharedCorrelations = Arc<CompiledCorrelations>;

/// The deepest correlation chain accepted: a correlation may reference correlations that
/// reference correlations, this many levels down. The dataflow builds one level per depth up
/// front, so a reload can bring any chain up to this depth.
pub const MAX_CHAIN_DEPTH: usize = 3;

impl CompiledCorrelations {
    /// The correlation whose [`CompiledCorrelation::key`] is `key`, if this set has it.
    pub fn by_key(&self, key: u64) -> Option<&CompiledCorrelation> {
        self.correlations.iter().find(|correlation| correlation.key == key)
    }

    /// Whether the alerts of the correlation with this key are emitted (see `generate`);
    /// `true` for a key this set does not have.
    pub fn emits_key(&self, key: u64) -> bool {
        self.by_key(key).is_none_or(|correlation| self.emits_correlation(correlation.index))
    }

    /// The (correlation, input) pairs that matches with this `rule_id` feed.
    pub fn routes(&self, rule_id: &str) -> &[(usize, usize)] {
        self.routes.get(rule_id).map_or(&[], Vec::as_slice)
    }

    /// Whether the alerts of correlation `index` are emitted (see `generate`).
    pub fn emits_correlation(&self, index: usize) -> bool {
        self.emitting.get(index).copied().unwrap_or(true)
    }

    /// Whether the matches of detection rule `rule_id` are emitted as alerts of their own.
    pub fn emits_rule(&self, rule_id: &str) -> bool {
        self.rules.get(rule_id).is_none_or(|info| info.emits)
    }

    /// Whether matches of detection rule (or correlation) `rule_id` feed any correlation.
    pub fn feeds(&self, rule_id: &str) -> bool {
        self.routes.contains_key(rule_id)
    }

    /// The fields the matches of `rule_id` must carry for the correlations.
    pub fn needed_fields(&self, rule_id: &str) -> impl Iterator<Item = &str> {
        self.needed.get(rule_id).into_iter().flatten().map(String::as_str)
    }

    /// The deepest chain level (0 when no correlation references another one).
    pub fn max_depth(&self) -> usize {
        self.correlations.iter().map(|c| c.depth).max().unwrap_or(0)
    }

    /// The single-rule alert of a detection rule's match (id from rule id and event id), or
    /// `None` when the rule does not emit its own alerts (`generate`).
    pub fn rule_alert(&self, m: &Match) -> Option<Alert> {
        let info = self.rules.get(&m.rule_id);
        if info.is_some_and(|info| !info.emits) {
            return None;
        }
        Some(Alert {
            id: Alert::rule_id_for_event(&m.rule_id, m.event_id),
            tenant: m.tenant.clone(),
            rule_id: m.rule_id.clone(),
            rule_title: info.map_or_else(|| m.rule_id.clone(), |info| info.title.clone()),
            kind: "rule".into(),
            level: info.and_then(|info| info.level),
            tags: info.map(|info| info.tags.clone()).unwrap_or_default(),
            group_key: BTreeMap::new(),
            window_start_ms: m.event_time_ms,
            window_end_ms: m.event_time_ms,
            fired_at_ms: m.event_time_ms,
            first_seen_ms: m.event_time_ms,
            last_seen_ms: m.event_time_ms,
            event_ids: vec![m.event_id],
        })
    }
}

/// The [`Match`] of a detection rule's match on `event`, carrying only the fields the
/// correlations need from that rule (looked up as the matchers see the event, so Wazuh's
/// spellings of Windows fields work too).
pub fn match_of(rule_match: &RuleMatch<'_>, event: &Event, correlations: &CompiledCorrelations) -> Match {
    let rule_id = rule_match.rule.reference().to_string();
    let view = EventView::new(event);
    let fields = correlations
        .needed_fields(&rule_id)
        .filter_map(|field| {
            let value = view.get_field(field)?;
            let text = value.as_str()?.into_owned();
            Some((field.to_string(), text))
        })
        .collect();
    Match {
        rule_id,
        tenant: event.tenant.clone(),
        event_id: event.id,
        event_time_ms: u64::try_from(event.time.timestamp_millis()).unwrap_or(0),
        fields,
    }
}

mod compile;
mod windows;

pub use windows::Holding;

#[cfg(test)]
mod tests;
