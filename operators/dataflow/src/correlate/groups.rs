//! The correlation operator: per (correlation, group), the resident matches and the alerts out, re-evaluating only the anchors a change can affect.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;

use rustc_hash::{FxHashMap, FxHasher};
use securewatch_detection::correlation::{CompiledCorrelation, Entry, Holding};
use securewatch_schemas::{Alert, Tenant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use super::{CorrelationConfig, CorrelationRules};
use crate::time::Epoch;

/// A correlation's state key, the tenant and a group's values: groups are per tenant, so
/// two tenants' `alice` are two groups.
pub(crate) type GroupKey = (u64, Tenant, Vec<String>);

/// One epoch's input, waiting for the epoch to complete: its capability and updates.
type Waiting = (Capability<Epoch>, Vec<((GroupKey, Entry), isize)>);

/// One group's resident matches, which of their anchors hold, and the alerts it has emitted
/// and not retracted, by window start.
#[derive(Default)]
struct Group {
    /// The matches present (count > 0; inside `apply`, departed ones wait with count 0 for
    /// `drop_absent`), sorted, so that the evaluation reads a slice of them.
    entries: Vec<Entry>,
    /// Their counts, in the same order.
    counts: Vec<isize>,
    /// Entries whose count is negative (a retraction ahead of its insertion); not present.
    owed: BTreeMap<Entry, isize>,
    /// Every anchor of `entries` whose window's condition holds, in order of window start.
    holding: Vec<Holding>,
    emitted: BTreeMap<u64, Alert>,
}

/// How a change altered the present entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Unchanged,
    Entered,
    Left,
}

/// Turns the resident matches of every (correlation, group) into that group's alerts, as a
/// differential collection: at each completed epoch, the alerts that the epoch's changes
/// retract (`-1`) and add (`+1`).
///
/// This is what a `reduce` evaluating each changed group whole
/// ([`CompiledCorrelation::evaluate`]) would output, computed from the changes instead. An
/// entry at event time `e` can only change whether the anchors in `(e - T, e]` hold (`T` the
/// timespan: their windows contain `e`), so only those are evaluated again, from the matches in
/// `(e - T, e + T)`; every group remembers which of its anchors hold. When an epoch only adds
/// matches to a condition that more matches can only make true
/// ([`CompiledCorrelation::lists_prefix`]), an anchor that already held before the earliest
/// added match keeps holding as it was and is not evaluated at all: in-order data re-evaluates
/// only the anchors that did not hold yet. Suppression can change for the anchors in
/// `(e - T, e + T)`; their alerts are compared with the ones emitted, and rebuilt only where
/// the listed matches or `fired_at` may differ. Work per change is bounded by the matches near
/// it, not by everything the group holds.
pub(crate) fn correlate_groups<'scope>(
    resident: StreamVec<'scope, Epoch, ((GroupKey, Entry), Epoch, isize)>,
    rules: CorrelationRules,
    config: CorrelationConfig,
) -> StreamVec<'scope, Epoch, ((GroupKey, Alert), Epoch, isize)> {
    type Builder = CapacityContainerBuilder<Vec<((GroupKey, Alert), Epoch, isize)>>;
    let exchange = Exchange::new(|((group, _), _, _): &((GroupKey, Entry), Epoch, isize)| hash_of(group));
    resident.unary_frontier::<Builder, _, _, _>(exchange, "Correlate", move |_, _| {
        let mut pending: BTreeMap<Epoch, Waiting> = BTreeMap::new();
        let mut groups: FxHashMap<GroupKey, Group> = FxHashMap::default();
        move |(input, frontier), output| {
            input.for_each(|capability, updates| {
                for (keyed, epoch, diff) in updates.drain(..) {
                    let (_, waiting) =
                        pending.entry(epoch).or_insert_with(|| (capability.delayed(&epoch, 0), Vec::new()));
                    waiting.push((keyed, diff));
                }
            });
            // Epochs complete in order; each one's changes are applied together.
            while let Some(first) = pending.first_entry() {
                if frontier.less_equal(first.key()) {
                    break;
                }
                let (epoch, (capability, mut updates)) = first.remove_entry();
                updates.sort_unstable();
                let mut session = output.session(&capability);
                for changes in updates.chunk_by(|((a, _), _), ((b, _), _)| a == b) {
                    let key = &changes[0].0 .0;
                    let correlation = rules.get(key.0);
                    if !groups.contains_key(key) {
                        groups.insert(key.clone(), Group::default());
                    }
                    let group = groups.get_mut(key).expect("inserted above");
                    let open = |start: u64| epoch < config.close_epoch(&correlation, start);
                    for (alert, diff) in group.apply(&correlation, &key.1, &key.2, changes, open) {
                        session.give(((key.clone(), alert), epoch, diff));
                    }
                    if group.is_empty() {
                        debug_assert!(group.emitted.is_empty(), "a group without matches has no alerts");
                        debug_assert!(group.holding.is_empty(), "a group without matches has no anchors");
                        groups.remove(key);
                    }
                }
            }
        }
    })
}

fn hash_of(group: &GroupKey) -> u64 {
    let mut hasher = FxHasher::default();
    group.hash(&mut hasher);
    hasher.finish()
}

impl Group {
    /// Applies one epoch's `changes` (sorted) and returns the alert changes they cause.
    ///
    /// `open(start)` says whether the alert of the window anchored at `start` can still change
    /// at this epoch. A final alert is neither raised nor rewritten here (the caller drops such
    /// changes anyway: they come from matches leaving memory); one that is no longer wanted is
    /// still retracted, so the resident alerts leave with their matches.
    fn apply(
        &mut self,
        correlation: &CompiledCorrelation,
        tenant: &Tenant,
        group: &[String],
        changes: &[((GroupKey, Entry), isize)],
        open: impl Fn(u64) -> bool,
    ) -> Vec<(Alert, isize)> {
        let mut changed_times = Vec::new();
        let mut only_entered = true;
        for same in changes.chunk_by(|((_, a), _), ((_, b), _)| a == b) {
            let entry = &same[0].0 .1;
            let diff: isize = same.iter().map(|(_, diff)| diff).sum();
            let presence = if diff == 0 { Presence::Unchanged } else { self.change(entry, diff) };
            if presence != Presence::Unchanged {
                changed_times.push(entry.time_ms);
                only_entered &= presence == Presence::Entered;
            }
        }
        if !only_entered {
            self.drop_absent();
        }
        let Some(&earliest) = changed_times.first() else { return Vec::new() };
        let span = correlation.timespan_ms.max(1);
        // Anchors that held before every added match keep holding as they were.
        let kept_before = (only_entered && correlation.lists_prefix()).then_some(earliest);
        for anchors in windows_containing(&changed_times, span) {
            self.reevaluate(correlation, anchors, kept_before);
        }
        let mut group_key = None;
        let mut out = Vec::new();
        for anchors in affected_anchors(&changed_times, span) {
            let (from, to) = self.holding_between(&anchors);
            let mut previous = from.checked_sub(1).map(|before| self.holding[before].start);
            let mut wanted = Vec::new();
            for &holding in &self.holding[from..to] {
                if !correlation.suppressed(holding.start, previous) {
                    wanted.push(holding);
                }
                previous = Some(holding.start);
            }
            let stale: Vec<u64> = self
                .emitted
                .range(anchors)
                .map(|(start, _)| *start)
                .filter(|start| wanted.binary_search_by_key(start, |holding| holding.start).is_err())
                .collect();
            for start in stale {
                out.push((self.emitted.remove(&start).expect("emitted"), -1));
            }
            for holding in wanted {
                if !open(holding.start) {
                    continue;
                }
                let listed = correlation.listed_times(holding);
                let unchanged = self.emitted.get(&holding.start).is_some_and(|alert| {
                    alert.fired_at_ms == holding.fired_at && !contains_any(&changed_times, &listed)
                });
                if unchanged {
                    continue;
                }
                let window = &self.entries[self.position(listed.start)..self.position(listed.end)];
                let group_key = group_key.get_or_insert_with(|| correlation.group_key(group));
                let alert = correlation.alert(tenant, group_key, holding, window);
                match self.emitted.insert(holding.start, alert.clone()) {
                    Some(old) if old == alert => {}
                    Some(old) => {
                        out.push((old, -1));
                        out.push((alert, 1));
                    }
                    None => out.push((alert, 1)),
                }
            }
        }
        out
    }

    /// Evaluates again whether the anchors in `anchors` hold. With `kept_before`, the leading
    /// anchors that held with a `fired_at` before it are left as they are.
    fn reevaluate(&mut self, correlation: &CompiledCorrelation, anchors: Range<u64>, kept_before: Option<u64>) {
        let mut first = anchors.start;
        if let Some(kept_before) = kept_before {
            let (from, to) = self.holding_between(&anchors);
            let mut holding = self.holding[from..to].iter().peekable();
            let from = self.position(anchors.start);
            let anchor_times = self.entries[from..]
                .iter()
                .take_while(|entry| entry.time_ms < anchors.end)
                .filter(|entry| correlation.anchors_at(entry))
                .map(|entry| entry.time_ms);
            first = anchors.end;
            for time in anchor_times {
                while holding.next_if(|held| held.start < time).is_some() {}
                let kept = holding.peek().is_some_and(|held| held.start == time && held.fired_at < kept_before);
                if !kept {
                    first = time;
                    break;
                }
            }
        }
        let reach = anchors.end.saturating_add(correlation.timespan_ms);
        let window = &self.entries[self.position(first)..self.position(reach)];
        let fresh = correlation.holding_anchors(window, first..anchors.end);
        let (from, to) = self.holding_between(&(first..anchors.end));
        self.holding.splice(from..to, fresh);
    }

    /// Adds `diff` to `entry`'s count; whether that made it present or absent.
    fn change(&mut self, entry: &Entry, diff: isize) -> Presence {
        match self.entries.binary_search(entry) {
            Ok(index) => {
                self.counts[index] += diff;
                let count = self.counts[index];
                if count > 0 {
                    return Presence::Unchanged;
                }
                // Left in place with count 0 until `drop_absent`: one pass for all the
                // epoch's departures instead of one shift of the vector per departure.
                self.counts[index] = 0;
                if count < 0 {
                    self.owed.insert(entry.clone(), count);
                }
                Presence::Left
            }
            Err(index) => {
                let count = self.owed.remove(entry).unwrap_or(0) + diff;
                if count > 0 {
                    self.entries.insert(index, entry.clone());
                    self.counts.insert(index, count);
                    return Presence::Entered;
                }
                if count < 0 {
                    self.owed.insert(entry.clone(), count);
                }
                Presence::Unchanged
            }
        }
    }

    /// Removes the entries that left (count 0), keeping the rest in order.
    fn drop_absent(&mut self) {
        let mut counts = self.counts.iter();
        self.entries.retain(|_| counts.next().is_some_and(|count| *count > 0));
        self.counts.retain(|count| *count > 0);
    }

    /// The positions in `holding` of the anchors in `anchors`.
    fn holding_between(&self, anchors: &Range<u64>) -> (usize, usize) {
        let from = self.holding.partition_point(|held| held.start < anchors.start);
        let to = from + self.holding[from..].partition_point(|held| held.start < anchors.end);
        (from, to)
    }

    /// Index of the first present entry at or after `time_ms`.
    fn position(&self, time_ms: u64) -> usize {
        self.entries.partition_point(|entry| entry.time_ms < time_ms)
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.owed.is_empty()
    }
}

/// Whether any of `times` (sorted) lies in `range`.
fn contains_any(times: &[u64], range: &Range<u64>) -> bool {
    times.get(times.partition_point(|time| *time < range.start)).is_some_and(|time| *time < range.end)
}

/// The anchors whose windows contain one of `times` (sorted), `(e - span, e]` for each, as
/// disjoint ranges in order.
fn windows_containing(times: &[u64], span: u64) -> Vec<Range<u64>> {
    merged(times.iter().map(|&time| time.saturating_sub(span - 1)..time.saturating_add(1)))
}

/// The anchors whose decision a match entering or leaving at each of `times` (sorted) can
/// change, `(e - span, e + span)` for each, as disjoint ranges in order.
fn affected_anchors(times: &[u64], span: u64) -> Vec<Range<u64>> {
    merged(times.iter().map(|&time| time.saturating_sub(span - 1)..time.saturating_add(span)))
}

/// Ranges (in order of their starts) merged where they overlap or touch.
fn merged(ranges: impl Iterator<Item = Range<u64>>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::new();
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::affected_anchors;

    #[test]
    fn affected_anchors_merge_overlapping_spans_and_stop_at_zero() {
        assert_eq!(affected_anchors(&[5, 20, 100], 10), vec![0..30, 91..110]);
        assert_eq!(affected_anchors(&[], 10), vec![]);
        assert_eq!(affected_anchors(&[u64::MAX - 1], 10), vec![u64::MAX - 10..u64::MAX]);
    }
}
