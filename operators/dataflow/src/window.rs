//! Event-time windowing shared by the rollups and the enrichment: lateness split and expiry.

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, Data, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::{Capability, OkErr};
use timely::dataflow::{Stream, StreamVec};

use crate::time::TimeModel;
use securewatch_schemas::bucket_start;
use crate::time::Epoch;

/// An input split by [`window`].
pub(crate) struct Windowed<'scope, D: 'static> {
    /// Accepted updates at their ingest epoch, each retracted again at its bucket's expiry
    /// epoch: the collection holds exactly the records of the resident buckets.
    pub(crate) resident: VecCollection<'scope, Epoch, D, isize>,
    /// Updates ingested after their bucket closed, at that epoch, with their original diff.
    pub(crate) late: VecCollection<'scope, Epoch, D, isize>,
}

/// Splits `input` by [`TimeModel::accepts`] on each record's event time, and retracts every
/// accepted update again at [`TimeModel::expiry_epoch`] of its bucket.
///
/// The expiry is never earlier than the update's own epoch (its bucket was still open), so the
/// timestamp invariant of differential collections holds. Once the frontier passes a bucket's
/// expiry its updates cancel, and the arrangements downstream compact them away. The split
/// depends only on an update's own event time and epoch, so it needs no coordination.
pub(crate) fn window<'scope, D>(
    input: VecCollection<'scope, Epoch, D, isize>,
    config: TimeModel,
    event_time_ms: fn(&D) -> u64,
) -> Windowed<'scope, D>
where
    D: Data,
{
    type Updates<D> = Vec<(D, Epoch, isize)>;
    let (accepted, late): (
        Stream<'scope, Epoch, Updates<D>>,
        Stream<'scope, Epoch, Updates<D>>,
    ) = input.inner.ok_err(move |(record, epoch, diff)| {
        if config.accepts(event_time_ms(&record), epoch) {
            Ok((record, epoch, diff))
        } else {
            Err((record, epoch, diff))
        }
    });
    let resident = with_expiry(accepted, move |record| config.expiry_epoch(bucket_start(event_time_ms(record))));
    Windowed {
        resident: resident.as_collection(),
        late: late.as_collection(),
    }
}

/// Passes every update through and emits its retraction at `expiry(record)` once the input
/// frontier reaches that epoch.
///
/// The retractions wait here, keyed by epoch, rather than as future-time updates downstream:
/// an arrangement's batcher walks every pending future update on each seal, ten times a second,
/// which made an idle worker's cost grow with the resident windows. Here an idle tick costs one
/// look at the earliest pending expiry. A capability is held at that epoch, so the frontier
/// downstream cannot pass it before the retractions are out.
pub(crate) fn with_expiry<'scope, D>(
    accepted: StreamVec<'scope, Epoch, (D, Epoch, isize)>,
    expiry: impl Fn(&D) -> Epoch + 'static,
) -> StreamVec<'scope, Epoch, (D, Epoch, isize)>
where
    D: Data,
{
    type Builder<D> = CapacityContainerBuilder<Vec<(D, Epoch, isize)>>;
    accepted.unary_frontier::<Builder<D>, _, _, _>(Pipeline, "Expire", move |_, _| {
        let mut pending: BTreeMap<Epoch, Vec<(D, isize)>> = BTreeMap::new();
        let mut held: Option<Capability<Epoch>> = None;
        move |(input, frontier), output| {
            input.for_each(|capability, updates| {
                let mut session = output.session(&capability);
                for (record, epoch, diff) in updates.drain(..) {
                    let at = expiry(&record).max(epoch);
                    if held.as_ref().is_none_or(|held| at < *held.time()) {
                        held = Some(capability.delayed(&at, 0));
                    }
                    pending.entry(at).or_default().push((record.clone(), -diff));
                    session.give((record, epoch, diff));
                }
            });
            // With the input closed every retraction is due; otherwise those the frontier reached.
            while let Some(mut entry) = pending.first_entry() {
                let at = *entry.key();
                if frontier.less_than(&at) {
                    break;
                }
                let capability = held.as_mut().expect("a capability is held at the earliest pending expiry");
                capability.downgrade(&at);
                output
                    .session(&*capability)
                    .give_iterator(std::mem::take(entry.get_mut()).into_iter().map(|(record, diff)| (record, at, diff)));
                entry.remove();
            }
            match (pending.keys().next(), held.as_mut()) {
                (Some(next), Some(capability)) => capability.downgrade(next),
                (None, _) => held = None,
                (Some(_), None) => unreachable!("a capability is held while retractions are pending"),
            }
        }
    })
}

/// Keeps the changes of `resident` that happen before the expiry epoch of their bucket, i.e.
/// drops the retractions that [`window`] scheduled: a bucket leaving memory is not a change of
/// what a store should hold, so the store keeps its last rows.
pub(crate) fn without_expiry<'scope, D>(
    resident: VecCollection<'scope, Epoch, D, isize>,
    config: TimeModel,
    bucket_start_ms: fn(&D) -> u64,
) -> VecCollection<'scope, Epoch, D, isize>
where
    D: Data,
{
    resident
        .inner
        .filter(move |(row, epoch, _)| *epoch < config.expiry_epoch(bucket_start_ms(row)))
        .as_collection()
}
