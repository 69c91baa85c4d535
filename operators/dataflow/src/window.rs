//! Event-time windowing shared by the rollups and the enrichment: lateness split and expiry.

use differential_dataflow::{AsCollection, Data, VecCollection};
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::OkErr;
use timely::dataflow::Stream;

use crate::config::{bucket_start, RollupConfig};
use crate::rollup::Epoch;

/// An input split by [`window`].
pub(crate) struct Windowed<'scope, D: 'static> {
    /// Accepted updates at their ingest epoch, each retracted again at its bucket's expiry
    /// epoch: the collection holds exactly the records of the resident buckets.
    pub(crate) resident: VecCollection<'scope, Epoch, D, isize>,
    /// Updates ingested after their bucket closed, at that epoch, with their original diff.
    pub(crate) late: VecCollection<'scope, Epoch, D, isize>,
}

/// Splits `input` by [`RollupConfig::accepts`] on each record's event time, and schedules the
/// retraction of every accepted update at [`RollupConfig::expiry_epoch`] of its bucket.
///
/// The expiry is never earlier than the update's own epoch (its bucket was still open), so the
/// timestamp invariant of differential collections holds. Once the frontier passes a bucket's
/// expiry its updates cancel, and the arrangements downstream compact them away. The split
/// depends only on an update's own event time and epoch, so it needs no coordination.
pub(crate) fn window<'scope, D>(
    input: VecCollection<'scope, Epoch, D, isize>,
    config: RollupConfig,
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
    let resident = accepted
        .flat_map(move |(record, epoch, diff)| {
            let expiry = config.expiry_epoch(bucket_start(event_time_ms(&record)));
            [(record.clone(), epoch, diff), (record, expiry, -diff)]
        })
        .as_collection();
    Windowed {
        resident,
        late: late.as_collection(),
    }
}

/// Keeps the changes of `resident` that happen before the expiry epoch of their bucket, i.e.
/// drops the retractions that [`window`] scheduled: a bucket leaving memory is not a change of
/// what a store should hold, so the store keeps its last rows.
pub(crate) fn without_expiry<'scope, D>(
    resident: VecCollection<'scope, Epoch, D, isize>,
    config: RollupConfig,
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
