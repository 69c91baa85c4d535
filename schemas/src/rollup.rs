//! Rollup rows: what the dataflow counts per one-minute event-time bucket, the changes a store
//! applies, an in-memory table of them, and the top-hosts query over it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Severity, SourceKind, Tenant};

/// Width of a rollup bucket in event time: one minute.
pub const BUCKET_MS: u64 = 60_000;

/// Start (inclusive, ms since the Unix epoch) of the one-minute bucket holding `event_time_ms`.
pub fn bucket_start(event_time_ms: u64) -> u64 {
    event_time_ms - event_time_ms % BUCKET_MS
}

/// What a rollup row counts; one variant per rollup table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RollupKey {
    /// Events per (source kind, host, severity).
    Source {
        /// The connector kind.
        kind: SourceKind,
        /// The host, when the event named one.
        host: Option<String>,
        /// The severity.
        severity: Severity,
    },
    /// Events per category (`None` for events without a category).
    Category(Option<String>),
    /// Distinct hosts seen in the bucket (events without a host are not counted).
    DistinctHosts,
}

/// One rollup row: the count of `key` among `tenant`'s events in the one-minute bucket
/// starting at `bucket_start_ms`. Rows are per tenant: the tenant is part of the row's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RollupRow {
    /// Whose events are counted.
    #[serde(default)]
    pub tenant: Tenant,
    /// What is counted.
    pub key: RollupKey,
    /// Bucket start in event time, ms since the Unix epoch, a multiple of one minute.
    pub bucket_start_ms: u64,
    /// Events (or distinct hosts) in the bucket; negative only if the input retracted events it
    /// never inserted.
    pub count: i64,
}

/// The new state of one stored rollup row: an idempotent upsert, or a delete when `count == 0`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupChange {
    /// Whose events are counted.
    pub tenant: Tenant,
    /// What is counted.
    pub key: RollupKey,
    /// Bucket start in event time (ms since the Unix epoch).
    pub bucket_start_ms: u64,
    /// The row's count after the change; zero means the row no longer exists.
    pub count: i64,
}

/// Consolidates the `Rollups::rows` (the dataflow crate's rollups) updates of a run of completed epochs into one
/// change per touched row, sorted by key and bucket.
///
/// The run must start right after the epochs the store already reflects; applying the result
/// (upsert the count, delete on zero) then brings the store to the state at the run's end.
/// Applying it twice is harmless, which makes replays after a crash safe.
pub fn changes(updates: impl IntoIterator<Item = (RollupRow, isize)>) -> Vec<RollupChange> {
    let mut net: BTreeMap<RollupRow, isize> = BTreeMap::new();
    for (row, diff) in updates {
        *net.entry(row).or_insert(0) += diff;
    }
    // Per (key, bucket) at most one row survives with a positive diff: the new count. A row
    // left with only a negative diff was retracted without a replacement.
    let mut latest: BTreeMap<(Tenant, RollupKey, u64), i64> = BTreeMap::new();
    for (row, diff) in net {
        if diff == 0 {
            continue;
        }
        let slot = latest.entry((row.tenant, row.key, row.bucket_start_ms)).or_insert(0);
        if diff > 0 {
            *slot = row.count;
        }
    }
    latest
        .into_iter()
        .map(|((tenant, key, bucket_start_ms), count)| RollupChange {
            tenant,
            key,
            bucket_start_ms,
            count,
        })
        .collect()
}

/// A host and its event count over a bucket range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostVolume {
    /// The host name.
    pub host: String,
    /// Events from the host in the range.
    pub events: i64,
}

/// The `n` hosts with the most events in buckets starting in `[from_ms, to_ms)`, most first,
/// ties by host name; computed from the (kind, host, severity) rows. Events without a host are
/// left out.
pub fn top_hosts<'a>(
    rows: impl IntoIterator<Item = (&'a RollupKey, u64, i64)>,
    from_ms: u64,
    to_ms: u64,
    n: usize,
) -> Vec<HostVolume> {
    let mut per_host: BTreeMap<&'a str, i64> = BTreeMap::new();
    for (key, bucket, count) in rows {
        if let RollupKey::Source {
            host: Some(host), ..
        } = key
        {
            if (from_ms..to_ms).contains(&bucket) {
                *per_host.entry(host.as_str()).or_insert(0) += count;
            }
        }
    }
    let mut ranked: Vec<HostVolume> = per_host
        .into_iter()
        .filter(|(_, events)| *events != 0)
        .map(|(host, events)| HostVolume {
            host: host.to_string(),
            events,
        })
        .collect();
    // The map iterates by host name and the sort is stable, so ties stay in name order.
    ranked.sort_by_key(|volume| std::cmp::Reverse(volume.events));
    ranked.truncate(n);
    ranked
}

/// The current rollup rows, kept by applying [`RollupChange`]s: what a store holds, in memory.
/// [`RollupTable::get`], [`RollupTable::iter`] and [`RollupTable::top_hosts`] see every tenant;
/// [`RollupTable::for_tenant`] keeps one tenant's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupTable {
    rows: BTreeMap<(RollupKey, u64, Tenant), i64>,
}

impl RollupTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies changes as upserts (deleting rows whose count becomes zero).
    pub fn apply<'a>(&mut self, changes: impl IntoIterator<Item = &'a RollupChange>) {
        for change in changes {
            let slot = (change.key.clone(), change.bucket_start_ms, change.tenant.clone());
            if change.count == 0 {
                self.rows.remove(&slot);
            } else {
                self.rows.insert(slot, change.count);
            }
        }
    }

    /// The count of `key` in the bucket starting at `bucket_start_ms`, summed over the
    /// tenants (zero when absent).
    pub fn get(&self, key: &RollupKey, bucket_start_ms: u64) -> i64 {
        self.rows
            .iter()
            .filter(|((row_key, bucket, _), _)| row_key == key && *bucket == bucket_start_ms)
            .map(|(_, count)| *count)
            .sum()
    }

    /// All rows as `(key, bucket_start_ms, count)`, ordered by key then bucket (then tenant:
    /// one row per tenant that has the key).
    pub fn iter(&self) -> impl Iterator<Item = (&RollupKey, u64, i64)> {
        self.rows
            .iter()
            .map(|((key, bucket, _), count)| (key, *bucket, *count))
    }

    /// All rows as `(tenant, key, bucket_start_ms, count)`.
    pub fn rows(&self) -> impl Iterator<Item = (&Tenant, &RollupKey, u64, i64)> {
        self.rows
            .iter()
            .map(|((key, bucket, tenant), count)| (tenant, key, *bucket, *count))
    }

    /// The rows of `tenant` only, as a table of their own.
    pub fn for_tenant(&self, tenant: &str) -> RollupTable {
        let rows = self
            .rows
            .iter()
            .filter(|((_, _, row_tenant), _)| row_tenant.as_str() == tenant)
            .map(|(slot, count)| (slot.clone(), *count))
            .collect();
        RollupTable { rows }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// [`top_hosts`] over this table.
    pub fn top_hosts(&self, from_ms: u64, to_ms: u64, n: usize) -> Vec<HostVolume> {
        top_hosts(self.iter(), from_ms, to_ms, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_minute_aligned() {
        assert_eq!(bucket_start(0), 0);
        assert_eq!(bucket_start(59_999), 0);
        assert_eq!(bucket_start(60_000), 60_000);
        assert_eq!(bucket_start(1_700_000_123_456), 1_700_000_100_000);
    }

    fn source(host: &str) -> RollupKey {
        RollupKey::Source {
            kind: SourceKind::Syslog,
            host: Some(host.to_string()),
            severity: Severity::Notice,
        }
    }

    fn row(key: &RollupKey, bucket: u64, count: i64) -> RollupRow {
        RollupRow {
            tenant: Tenant::default(),
            key: key.clone(),
            bucket_start_ms: bucket,
            count,
        }
    }

    #[test]
    fn changes_collapse_to_the_last_count_and_deletes() {
        let a = source("a");
        let b = source("b");
        let updates = vec![
            (row(&a, 0, 1), 1),
            (row(&a, 0, 1), -1),
            (row(&a, 0, 2), 1),
            (row(&b, 60_000, 4), -1),
            (row(&a, 60_000, 3), -1),
            (row(&a, 60_000, 3), 1),
        ];
        let out = changes(updates);
        assert_eq!(
            out,
            vec![
                RollupChange {
                tenant: Tenant::default(),
                    key: a.clone(),
                    bucket_start_ms: 0,
                    count: 2
                },
                RollupChange {
                tenant: Tenant::default(),
                    key: b.clone(),
                    bucket_start_ms: 60_000,
                    count: 0
                },
            ]
        );
        let mut table = RollupTable::new();
        table.apply(&[RollupChange {
                tenant: Tenant::default(),
            key: b.clone(),
            bucket_start_ms: 60_000,
            count: 4,
        }]);
        table.apply(&out);
        table.apply(&out); // idempotent
        assert_eq!(table.get(&a, 0), 2);
        assert_eq!(table.get(&b, 60_000), 0);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn top_hosts_sums_over_the_range_and_breaks_ties_by_name() {
        let mut table = RollupTable::new();
        let other = RollupKey::Source {
            kind: SourceKind::Hec,
            host: Some("b".into()),
            severity: Severity::Error,
        };
        let nameless = RollupKey::Source {
            kind: SourceKind::Hec,
            host: None,
            severity: Severity::Error,
        };
        table.apply(&[
            RollupChange {
                tenant: Tenant::default(),
                key: source("a"),
                bucket_start_ms: 0,
                count: 5,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: source("b"),
                bucket_start_ms: 0,
                count: 2,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: other,
                bucket_start_ms: 60_000,
                count: 3,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: source("c"),
                bucket_start_ms: 60_000,
                count: 5,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: source("d"),
                bucket_start_ms: 120_000,
                count: 50,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: nameless,
                bucket_start_ms: 0,
                count: 90,
            },
            RollupChange {
                tenant: Tenant::default(),
                key: RollupKey::Category(Some("auth".into())),
                bucket_start_ms: 0,
                count: 99,
            },
        ]);
        let top = table.top_hosts(0, 120_000, 3);
        let names: Vec<(&str, i64)> = top.iter().map(|v| (v.host.as_str(), v.events)).collect();
        assert_eq!(names, vec![("a", 5), ("b", 5), ("c", 5)]);
        assert_eq!(
            table.top_hosts(60_000, 180_000, 1),
            vec![HostVolume {
                host: "d".into(),
                events: 50
            }]
        );
        assert!(table.top_hosts(180_000, 240_000, 5).is_empty());
    }
}
