//! The correlation operator: per (correlation, group), the resident matches and the alerts out, re-evaluating only the anchors a change can affect.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Range;

use rustc_hash::{FxHashMap, FxHasher};
use securewatch_detection::correlation::{CompiledCorrelation, Entry};
use securewatch_schemas::Alert;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use super::CorrelationRules;
use crate::rollup::Epoch;

/// A correlation's state key and a group's values.
pub(crate) type GroupKey = (u64, Vec<String>);

/// One epoch's input, waiting for the epoch to complete: its capability and updates.
type Waiting = (Capability<Epoch>, Vec<((GroupKey, Entry), isize)>);

/// One group's resident matches and the alerts it has emitted and not retracted, by window
/// start.
#[derive(Default)]
struct Group {
    /// The matches present (count > 0), sorted, so that the evaluation reads a slice of them.
    entries: Vec<Entry>,
    /// Their counts, in the same order.
    counts: Vec<isize>,
    /// Entries whose count is negative (a retraction ahead of its insertion); not present.
    owed: BTreeMap<Entry, isize>,
    emitted: BTreeMap<u64, Alert>,
}

/// Turns the resident matches of every (correlation, group) into that group's alerts, as a
/// differential collection: at each completed epoch, the alerts that the epoch's changes
/// retract (`-1`) and add (`+1`).
///
/// This is what a `reduce` evaluating each changed group whole would output, computed from
/// the changes instead: an entry at event time `e` can only change the decisions of anchors in
/// `(e - T, e + T)` (`T` the timespan; see
/// [`CompiledCorrelation::evaluate_within`]), so only those anchors are evaluated again, from
/// the matches in `(e - 2T, e + 2T)`, and compared with the alerts emitted for them. Work per
/// change is bounded by the matches near it, not by everything the group holds.
pub(crate) fn correlate_groups<'scope>(
    resident: StreamVec<'scope, Epoch, ((GroupKey, Entry), Epoch, isize)>,
    rules: CorrelationRules,
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
                    let group = groups.entry(key.clone()).or_default();
                    for (alert, diff) in group.apply(&correlation, &key.1, changes) {
                        session.give(((key.clone(), alert), epoch, diff));
                    }
                    if group.is_empty() {
                        debug_assert!(group.emitted.is_empty(), "a group without matches has no alerts");
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
    fn apply(
        &mut self,
        correlation: &CompiledCorrelation,
        group: &[String],
        changes: &[((GroupKey, Entry), isize)],
    ) -> Vec<(Alert, isize)> {
        let mut changed_times = Vec::new();
        for same in changes.chunk_by(|((_, a), _), ((_, b), _)| a == b) {
            let entry = &same[0].0 .1;
            let diff: isize = same.iter().map(|(_, diff)| diff).sum();
            if diff != 0 && self.change(entry, diff) {
                changed_times.push(entry.time_ms);
            }
        }
        let span = correlation.timespan_ms.max(1);
        let mut out = Vec::new();
        for anchors in affected_anchors(&changed_times, span) {
            let from = anchors.start.saturating_sub(span - 1);
            let to = anchors.end.saturating_add(span);
            let nearby = &self.entries[self.position(from)..self.position(to)];
            let mut fresh: BTreeMap<u64, Alert> = correlation
                .evaluate_within(group, nearby, anchors.clone())
                .into_iter()
                .map(|alert| (alert.window_start_ms, alert))
                .collect();
            let emitted_here: Vec<u64> = self.emitted.range(anchors).map(|(start, _)| *start).collect();
            for start in emitted_here {
                match fresh.remove(&start) {
                    Some(alert) if self.emitted[&start] == alert => {}
                    Some(alert) => {
                        out.push((self.emitted.insert(start, alert.clone()).expect("emitted"), -1));
                        out.push((alert, 1));
                    }
                    None => out.push((self.emitted.remove(&start).expect("emitted"), -1)),
                }
            }
            for (start, alert) in fresh {
                out.push((alert.clone(), 1));
                self.emitted.insert(start, alert);
            }
        }
        out
    }

    /// Adds `diff` to `entry`'s count; whether that made it present or absent.
    fn change(&mut self, entry: &Entry, diff: isize) -> bool {
        match self.entries.binary_search(entry) {
            Ok(index) => {
                self.counts[index] += diff;
                let count = self.counts[index];
                if count > 0 {
                    return false;
                }
                self.entries.remove(index);
                self.counts.remove(index);
                if count < 0 {
                    self.owed.insert(entry.clone(), count);
                }
                true
            }
            Err(index) => {
                let count = self.owed.remove(entry).unwrap_or(0) + diff;
                if count > 0 {
                    self.entries.insert(index, entry.clone());
                    self.counts.insert(index, count);
                    return true;
                }
                if count < 0 {
                    self.owed.insert(entry.clone(), count);
                }
                false
            }
        }
    }

    /// Index of the first present entry at or after `time_ms`.
    fn position(&self, time_ms: u64) -> usize {
        self.entries.partition_point(|entry| entry.time_ms < time_ms)
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.owed.is_empty()
    }
}

/// The anchors whose decision a match entering or leaving at each of `times` (sorted) can
/// change, `(e - span, e + span)` for each, as disjoint ranges in order.
fn affected_anchors(times: &[u64], span: u64) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &time in times {
        let range = time.saturating_sub(span - 1)..time.saturating_add(span);
        match ranges.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => ranges.push(range),
        }
    }
    ranges
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
