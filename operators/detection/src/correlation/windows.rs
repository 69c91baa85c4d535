//! Evaluating one group's matches: the anchored windows whose condition holds, suppression, and the alerts.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use rsigma_parser::ConditionOperator;
use rustc_hash::FxHashMap;
use securewatch_schemas::{Alert, EventId, Tenant};

use super::{CompiledCorrelation, Condition, CorrelationKind, Entry, Predicate};

fn compare(value: f64, predicates: &[Predicate]) -> bool {
    predicates.iter().all(|(op, bound)| {
        let bound = *bound as f64;
        match op {
            ConditionOperator::Lt => value < bound,
            ConditionOperator::Lte => value <= bound,
            ConditionOperator::Gt => value > bound,
            ConditionOperator::Gte => value >= bound,
            ConditionOperator::Eq => value == bound,
            ConditionOperator::Neq => value != bound,
        }
    })
}

/// What a condition is judged on.
struct Counts<'a> {
    ids: usize,
    values: usize,
    sum: f64,
    numeric: usize,
    seen: &'a [bool],
    stage: usize,
}

/// An anchor whose window's condition holds: the window start and `fired_at`, the event time
/// of the shortest prefix of the window on which the condition held.
///
/// For conditions that adding matches can only make true ([`CompiledCorrelation::lists_prefix`])
/// the alert lists that shortest prefix: the matches that made the condition hold, up to and
/// including `fired_at`. Later matches in the window do not change the alert, so an alert
/// raised by in-order data is never rewritten. For the others (`lt`, `lte`, `eq`, `neq`,
/// `value_sum`, `value_avg`) the decision reads the whole window, and the alert lists all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    /// The anchor: window start.
    pub start: u64,
    /// When the condition first held in the window.
    pub fired_at: u64,
}

/// Distinct ids, distinct values and inputs seen in a window that matches enter and leave.
struct Sliding<'e> {
    ids: FxHashMap<EventId, usize>,
    values: FxHashMap<&'e str, usize>,
    inputs: Vec<usize>,
    seen: Vec<bool>,
}

impl<'e> Sliding<'e> {
    fn new(inputs: usize) -> Self {
        Sliding { ids: FxHashMap::default(), values: FxHashMap::default(), inputs: vec![0; inputs], seen: vec![false; inputs] }
    }

    fn add(&mut self, entry: &'e Entry) {
        *self.ids.entry(entry.event_id).or_default() += 1;
        if let Some(value) = &entry.value {
            *self.values.entry(value.as_str()).or_default() += 1;
        }
        self.inputs[entry.input] += 1;
        self.seen[entry.input] = true;
    }

    fn remove(&mut self, entry: &'e Entry) {
        fn take<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, usize>, key: K) {
            if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        take(&mut self.ids, entry.event_id);
        if let Some(value) = &entry.value {
            take(&mut self.values, value.as_str());
        }
        self.inputs[entry.input] -= 1;
        self.seen[entry.input] = self.inputs[entry.input] > 0;
    }

    fn counts(&self) -> Counts<'_> {
        Counts { ids: self.ids.len(), values: self.values.len(), sum: 0.0, numeric: 0, seen: &self.seen, stage: 0 }
    }
}

/// Aggregate of a window prefix, updated match by match.
struct State<'e> {
    ids: BTreeSet<EventId>,
    values: BTreeSet<&'e str>,
    sum: f64,
    numeric: usize,
    seen: Vec<bool>,
    stage: usize,
}


impl CompiledCorrelation {
    fn holds(&self, state: &State<'_>) -> bool {
        self.holds_on(&Counts {
            ids: state.ids.len(),
            values: state.values.len(),
            sum: state.sum,
            numeric: state.numeric,
            seen: &state.seen,
            stage: state.stage,
        })
    }

    fn holds_on(&self, counts: &Counts<'_>) -> bool {
        match (&self.condition, self.kind) {
            (Condition::AllRules, CorrelationKind::TemporalOrdered) => counts.stage == self.inputs.len(),
            (Condition::AllRules, _) => counts.seen.iter().all(|seen| *seen),
            (Condition::Expr(expr), _) => expr.eval(counts.seen),
            (Condition::Threshold(predicates), kind) => {
                let value = match kind {
                    CorrelationKind::EventCount => counts.ids as f64,
                    CorrelationKind::ValueCount => counts.values as f64,
                    CorrelationKind::ValueSum => counts.sum,
                    CorrelationKind::ValueAvg if counts.numeric == 0 => return false,
                    CorrelationKind::ValueAvg => counts.sum / counts.numeric as f64,
                    CorrelationKind::Temporal | CorrelationKind::TemporalOrdered => {
                        counts.seen.iter().filter(|seen| **seen).count() as f64
                    }
                };
                compare(value, predicates)
            }
        }
    }

    /// Evaluates one window (entries sorted by time, all inside it): whether the condition
    /// holds on all of them, and the time of the first prefix on which it held.
    fn scan(&self, window: &[Entry]) -> (bool, Option<u64>) {
        let mut state = State {
            ids: BTreeSet::new(),
            values: BTreeSet::new(),
            sum: 0.0,
            numeric: 0,
            seen: vec![false; self.inputs.len()],
            stage: 0,
        };
        let mut first = None;
        let mut holds = false;
        let mut start = 0;
        while start < window.len() {
            let time = window[start].time_ms;
            let end = start + window[start..].iter().take_while(|entry| entry.time_ms == time).count();
            let batch = &window[start..end];
            for entry in batch {
                state.ids.insert(entry.event_id);
                state.seen[entry.input] = true;
                if let Some(value) = &entry.value {
                    state.values.insert(value);
                    if let Ok(number) = value.trim().parse::<f64>() {
                        state.sum += number;
                        state.numeric += 1;
                    }
                }
            }
            // Equal times count as in order: advance through every listed rule present now.
            while state.stage < self.inputs.len() && batch.iter().any(|entry| entry.input == state.stage) {
                state.stage += 1;
            }
            holds = self.holds(&state);
            if holds && first.is_none() {
                first = Some(time);
            }
            start = end;
        }
        (holds, first)
    }

    /// The alerts of one group of the `default` tenant: `entries` are its matches, sorted,
    /// without duplicates.
    pub fn evaluate(&self, group: &[String], entries: &[Entry]) -> Vec<Alert> {
        self.evaluate_for(&Tenant::default(), group, entries)
    }

    /// The alerts of one group of `tenant`: `entries` are its matches, sorted, without
    /// duplicates.
    pub fn evaluate_for(&self, tenant: &Tenant, group: &[String], entries: &[Entry]) -> Vec<Alert> {
        let group_key = self.group_key(group);
        let mut alerts = Vec::new();
        let mut previous: Option<u64> = None;
        for holding in self.holding_anchors(entries, 0..u64::MAX) {
            if !self.suppressed(holding.start, previous) {
                alerts.push(self.alert(tenant, &group_key, holding, self.listed(entries, holding)));
            }
            previous = Some(holding.start);
        }
        alerts
    }

    /// The anchors in `anchors` whose window's condition holds, in order, each with the time at
    /// which it first held. Exact when `entries` (sorted, without duplicates) hold every match
    /// of the group with an event time in `[anchors.start, anchors.end + timespan)`: an
    /// anchor's window reads nothing else.
    pub fn holding_anchors(&self, entries: &[Entry], anchors: Range<u64>) -> Vec<Holding> {
        if self.kind == CorrelationKind::TemporalOrdered && self.condition == Condition::AllRules {
            self.holding_windows_ordered(entries, &anchors)
        } else if self.monotone() {
            self.holding_windows_sliding(entries, &anchors)
        } else {
            self.holding_windows_scanned(entries, &anchors)
        }
    }

    /// Whether `entry` anchors a window: any match, or for `temporal_ordered` a match of the
    /// first listed rule.
    pub fn anchors_at(&self, entry: &Entry) -> bool {
        self.kind != CorrelationKind::TemporalOrdered || entry.input == 0
    }

    /// Whether a holding anchor at `start` is suppressed, `previous` being the holding anchor
    /// before it: one alert when a condition starts to hold, none while it keeps holding.
    pub fn suppressed(&self, start: u64, previous: Option<u64>) -> bool {
        previous.is_some_and(|previous| start - previous < self.timespan_ms)
    }

    /// Whether more matches can only make the condition true, so that a holding window keeps
    /// holding, with the same `fired_at`, whatever is added after `fired_at`; its alert then
    /// lists the matches up to `fired_at` (see [`Holding`]).
    pub fn lists_prefix(&self) -> bool {
        self.monotone() || (self.kind == CorrelationKind::TemporalOrdered && self.condition == Condition::AllRules)
    }

    /// The event times of the matches that the alert of `holding` lists.
    pub fn listed_times(&self, holding: Holding) -> Range<u64> {
        if self.lists_prefix() {
            holding.start..holding.fired_at.saturating_add(1)
        } else {
            holding.start..holding.start.saturating_add(self.timespan_ms)
        }
    }

    fn listed<'e>(&self, entries: &'e [Entry], holding: Holding) -> &'e [Entry] {
        let times = self.listed_times(holding);
        let from = entries.partition_point(|entry| entry.time_ms < times.start);
        let to = entries.partition_point(|entry| entry.time_ms < times.end);
        &entries[from..to]
    }

    /// The group key of `group`'s values: group-by field to value.
    pub fn group_key(&self, group: &[String]) -> BTreeMap<String, String> {
        self.group_by.iter().cloned().zip(group.iter().cloned()).collect()
    }

    /// The alert of the window `holding`, listing `listed` (the group's matches with event
    /// times in [`Self::listed_times`]).
    pub fn alert(&self, tenant: &Tenant, group_key: &BTreeMap<String, String>, holding: Holding, listed: &[Entry]) -> Alert {
        let Holding { start, fired_at } = holding;
        let mut event_ids: Vec<EventId> = listed.iter().map(|entry| entry.event_id).collect();
        event_ids.sort();
        event_ids.dedup();
        Alert {
            id: Alert::correlation_id(tenant, &self.rule_id, group_key, start),
            tenant: tenant.clone(),
            rule_id: self.rule_id.clone(),
            rule_title: self.title.clone(),
            kind: self.kind.as_str().to_string(),
            level: self.level,
            tags: self.tags.clone(),
            group_key: group_key.clone(),
            window_start_ms: start,
            window_end_ms: start.saturating_add(self.timespan_ms),
            fired_at_ms: fired_at,
            first_seen_ms: listed.first().map_or(start, |entry| entry.time_ms),
            last_seen_ms: listed.last().map_or(start, |entry| entry.time_ms),
            event_ids,
        }
    }

    /// Whether adding matches to a window can only turn the condition from false to true
    /// (never back): then the windows of consecutive anchors can be slid incrementally.
    fn monotone(&self) -> bool {
        use ConditionOperator::{Gt, Gte};
        match (&self.condition, self.kind) {
            (_, CorrelationKind::TemporalOrdered) => false,
            (Condition::AllRules, _) => true,
            (Condition::Expr(expr), _) => !expr.negates(),
            (Condition::Threshold(predicates), CorrelationKind::EventCount | CorrelationKind::ValueCount | CorrelationKind::Temporal) => {
                predicates.iter().all(|(op, _)| matches!(op, Gt | Gte))
            }
            (Condition::Threshold(_), _) => false,
        }
    }

    /// The holding anchors in `anchors`, each anchor's window built from scratch.
    fn holding_windows_scanned(&self, entries: &[Entry], anchors: &Range<u64>) -> Vec<Holding> {
        let mut starts: Vec<u64> = entries
            .iter()
            .filter(|entry| anchors.contains(&entry.time_ms) && self.anchors_at(entry))
            .map(|entry| entry.time_ms)
            .collect();
        starts.dedup();
        let mut windows = Vec::new();
        for start in starts {
            let end = start.saturating_add(self.timespan_ms);
            let from = entries.partition_point(|entry| entry.time_ms < start);
            let to = entries.partition_point(|entry| entry.time_ms < end);
            if let (true, fired_at) = self.scan(&entries[from..to]) {
                windows.push(Holding { start, fired_at: fired_at.unwrap_or(start) });
            }
        }
        windows
    }

    /// [`Self::holding_windows_scanned`] for `temporal_ordered`: from each anchor (a match of
    /// the first rule), each next rule's earliest match at or after the previous step (equal
    /// times count as in order), found by binary search in that rule's match times.
    fn holding_windows_ordered(&self, entries: &[Entry], anchors: &Range<u64>) -> Vec<Holding> {
        let mut times: Vec<Vec<u64>> = vec![Vec::new(); self.inputs.len()];
        for entry in entries {
            times[entry.input].push(entry.time_ms);
        }
        let mut starts: Vec<u64> = times[0].iter().copied().filter(|time| anchors.contains(time)).collect();
        starts.dedup();
        let mut windows = Vec::new();
        for start in starts {
            let end = start.saturating_add(self.timespan_ms);
            let mut reached = Some(start);
            for later in &times[1..] {
                reached = reached.and_then(|previous| {
                    let next = later.partition_point(|time| *time < previous);
                    later.get(next).copied().filter(|time| *time < end)
                });
            }
            if let Some(fired_at) = reached {
                windows.push(Holding { start, fired_at });
            }
        }
        windows
    }

    /// [`Self::holding_windows_scanned`] for a [`Self::monotone`] condition in linear time:
    /// one sliding aggregate over each anchor's whole window and one over the shortest prefix
    /// on which the condition holds (both ends of both only move forward as the anchor does).
    fn holding_windows_sliding(&self, entries: &[Entry], anchors: &Range<u64>) -> Vec<Holding> {
        let mut windows = Vec::new();
        let mut whole = Sliding::new(self.inputs.len());
        let mut prefix = Sliding::new(self.inputs.len());
        let mut index = entries.partition_point(|entry| entry.time_ms < anchors.start);
        let (mut from, mut to, mut prefix_to) = (index, index, index);
        while index < entries.len() && entries[index].time_ms < anchors.end {
            let start = entries[index].time_ms;
            let end = start.saturating_add(self.timespan_ms);
            while from < index {
                if from < to {
                    whole.remove(&entries[from]);
                }
                if from < prefix_to {
                    prefix.remove(&entries[from]);
                }
                from += 1;
            }
            prefix_to = prefix_to.max(from);
            to = to.max(from);
            while to < entries.len() && entries[to].time_ms < end {
                whole.add(&entries[to]);
                to += 1;
            }
            if self.holds_on(&whole.counts()) {
                // Extend the prefix by whole equal-time batches until the condition holds.
                while !self.holds_on(&prefix.counts()) && prefix_to < to {
                    let time = entries[prefix_to].time_ms;
                    while prefix_to < to && entries[prefix_to].time_ms == time {
                        prefix.add(&entries[prefix_to]);
                        prefix_to += 1;
                    }
                }
                windows.push(Holding { start, fired_at: entries[prefix_to.max(from + 1) - 1].time_ms });
            }
            index += entries[index..].iter().take_while(|entry| entry.time_ms == start).count();
        }
        windows
    }
}
