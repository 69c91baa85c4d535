//! The rollup dataflow: splits off late updates, schedules expiry, and counts per bucket.

use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use differential_dataflow::VecCollection;
use securewatch_schemas::{bucket_start, RollupKey, RollupRow};

use crate::time::{Epoch, TimeModel};
use crate::input::RollupInput;
use crate::window::{window, without_expiry, Windowed};

/// The outputs of [`build_rollups`], all at ingest-epoch times.
pub struct Rollups<'scope> {
    /// Rollup rows as differential updates: a changed count arrives as `(old, -1)` and
    /// `(new, +1)` at the epoch of the change. Only real changes appear here: a bucket's
    /// departure at the retention horizon is not a change, so the store keeps its final row.
    /// Feed it to a writer through [`securewatch_schemas::changes`].
    pub rows: VecCollection<'scope, Epoch, RollupRow, isize>,
    /// Input updates that arrived after their bucket closed, at the epoch they arrived, with
    /// their original diff. They are not in `rows`; the caller stores and counts them.
    pub late: VecCollection<'scope, Epoch, RollupInput, isize>,
    /// The rows resident in memory: like `rows`, plus the retraction of each bucket at its
    /// expiry epoch. Never write it to a store; it serves gauges and tests.
    pub resident: VecCollection<'scope, Epoch, RollupRow, isize>,
}

/// Builds the rollups over `input`, a collection of events at their ingest epochs.
///
/// Every step is keyed, so with several workers the counts are exchanged by
/// `(tenant, key, bucket)` and the distinct-host sets by `(tenant, bucket, host)`: every row
/// is per tenant; each worker may feed any
/// subset of the events. The lateness split needs no coordination: it depends only on an
/// update's own event time and epoch.
pub fn build_rollups<'scope>(
    input: VecCollection<'scope, Epoch, RollupInput, isize>,
    config: TimeModel,
) -> Rollups<'scope> {
    let Windowed { resident: windowed, late } =
        window(input, config, |record: &RollupInput| record.event_time_ms);

    let per_event = windowed.clone().flat_map(|record: RollupInput| {
        let bucket = bucket_start(record.event_time_ms);
        let source = RollupKey::Source {
            kind: record.kind,
            host: record.host,
            severity: record.severity,
        };
        [
            (record.tenant.clone(), source, bucket),
            (record.tenant, RollupKey::Category(record.category), bucket),
        ]
    });
    // Not `distinct_total`: in differential 0.25.1 it thresholds with a constant 1, which never
    // maps a count of zero to zero, so a (bucket, host) pair is never retracted. This threshold
    // keeps a pair while its event count is positive.
    let hosts = windowed
        .flat_map(|record: RollupInput| {
            record
                .host
                .map(|host| (record.tenant, bucket_start(record.event_time_ms), host))
        })
        .threshold_total(|_, count: &isize| isize::from(*count > 0))
        .map(|(tenant, bucket, _host)| (tenant, RollupKey::DistinctHosts, bucket));

    let resident = per_event
        .concat(hosts)
        .count_total()
        .map(|((tenant, key, bucket_start_ms), count)| RollupRow {
            tenant,
            key,
            bucket_start_ms,
            count: count as i64,
        });

    // Rows change only while their bucket is open (no accepted input arrives between its close
    // and its expiry), so this keeps every real change and drops the expiry retractions.
    let rows = without_expiry(resident.clone(), config, |row: &RollupRow| row.bucket_start_ms);

    Rollups {
        rows,
        late,
        resident,
    }
}
