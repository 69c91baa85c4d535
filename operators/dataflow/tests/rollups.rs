//! Deterministic dataflow tests of the rollups against a brute-force count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::input::Input;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use securewatch_dataflow::{build_rollups, Epoch, TimeModel, RollupInput};
use securewatch_schemas::{changes, RollupKey, RollupRow, RollupTable};
use securewatch_schemas::{Severity, SourceKind, Tenant};
use timely::dataflow::operators::capture::{Capture, Event};

type Update<D> = (D, Epoch, isize);

/// Everything the rollup dataflow emitted, over all epochs.
#[derive(Default)]
struct Output {
    rows: Vec<Update<RollupRow>>,
    late: Vec<Update<RollupInput>>,
    resident: Vec<Update<RollupRow>>,
}

fn drain<D>(rx: Receiver<Event<Epoch, Vec<Update<D>>>>) -> Vec<Update<D>> {
    rx.try_iter()
        .flat_map(|event| match event {
            Event::Messages(_, data) => data,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

/// Runs the dataflow on `workers` workers (1: `execute_directly`), each feeding the updates
/// `i` with `i % workers == index`, sealing every epoch in order up to `end`.
fn run(workers: usize, feed: Vec<Update<RollupInput>>, end: Epoch, config: TimeModel) -> Output {
    let mut feed = feed;
    feed.sort_by_key(|(_, epoch, _)| *epoch);
    let feed = Arc::new(feed);
    let (rows_tx, rows_rx) = channel();
    let (late_tx, late_rx) = channel();
    let (resident_tx, resident_rx) = channel();
    let body = move |worker: &mut timely::worker::Worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (rows_tx, late_tx, resident_tx) =
            (rows_tx.clone(), late_tx.clone(), resident_tx.clone());
        let mut input = worker.dataflow::<Epoch, _, _>(move |scope| {
            let (input, events) = scope.new_collection::<RollupInput, isize>();
            let rollups = build_rollups(events, config);
            rollups.rows.inner.capture_into(rows_tx);
            rollups.late.inner.capture_into(late_tx);
            rollups.resident.inner.capture_into(resident_tx);
            input
        });
        for (i, (record, epoch, diff)) in feed.iter().enumerate() {
            if *epoch > *input.time() {
                input.advance_to(*epoch);
                input.flush();
                worker.step();
            }
            if i % peers == index {
                input.update_at(record.clone(), *epoch, *diff);
            }
        }
        input.advance_to(end);
        input.flush();
        // Dropping the input closes it; the runtime steps the dataflow to completion.
    };
    if workers == 1 {
        timely::execute_directly(body);
    } else {
        let guards =
            timely::execute(timely::Config::process(workers), body).expect("start workers");
        guards
            .join()
            .into_iter()
            .for_each(|result| result.expect("worker"));
    }
    Output {
        rows: drain(rows_rx),
        late: drain(late_rx),
        resident: drain(resident_rx),
    }
}

/// Consolidates updates to `(data, epoch) -> diff`, dropping zeros.
fn consolidate<D: Ord + Clone>(updates: &[Update<D>]) -> BTreeMap<(Epoch, D), isize> {
    let mut net = BTreeMap::new();
    for (data, epoch, diff) in updates {
        *net.entry((*epoch, data.clone())).or_insert(0) += diff;
    }
    net.retain(|_, diff| *diff != 0);
    net
}

/// The rollup table after all epochs up to and including `upto`, applying `changes` per epoch.
fn table_at(rows: &[Update<RollupRow>], upto: Epoch) -> RollupTable {
    let mut per_epoch: BTreeMap<Epoch, Vec<(RollupRow, isize)>> = BTreeMap::new();
    for (row, epoch, diff) in rows.iter().filter(|(_, epoch, _)| *epoch <= upto) {
        per_epoch
            .entry(*epoch)
            .or_default()
            .push((row.clone(), *diff));
    }
    let mut table = RollupTable::new();
    for (_, updates) in per_epoch {
        table.apply(&changes(updates));
    }
    table
}

fn as_map(table: &RollupTable) -> Counts {
    table
        .rows()
        .map(|(tenant, key, bucket, count)| ((tenant.to_string(), key.clone(), bucket), count))
        .collect()
}

/// Final count per (tenant, key, bucket).
type Counts = BTreeMap<(String, RollupKey, u64), i64>;
/// Consolidated late updates.
type Late = BTreeMap<(Epoch, RollupInput), isize>;

/// Brute force, independent of the crate's helpers: the expected final rows and late updates.
fn brute_force(feed: &[Update<RollupInput>], lateness_ms: u64) -> (Counts, Late) {
    let mut counts = Counts::new();
    let mut hosts: BTreeMap<(String, u64), BTreeMap<String, isize>> = BTreeMap::new();
    let mut late = BTreeMap::new();
    for (record, epoch, diff) in feed {
        let bucket = record.event_time_ms / 60_000 * 60_000;
        if *epoch >= bucket + 60_000 + lateness_ms {
            *late.entry((*epoch, record.clone())).or_insert(0) += diff;
            continue;
        }
        let source = RollupKey::Source {
            kind: record.kind,
            host: record.host.clone(),
            severity: record.severity,
        };
        let tenant = record.tenant.to_string();
        *counts.entry((tenant.clone(), source, bucket)).or_insert(0) += *diff as i64;
        *counts
            .entry((tenant.clone(), RollupKey::Category(record.category.clone()), bucket))
            .or_insert(0) += *diff as i64;
        if let Some(host) = &record.host {
            *hosts
                .entry((tenant, bucket))
                .or_default()
                .entry(host.clone())
                .or_insert(0) += diff;
        }
    }
    for ((tenant, bucket), per_host) in hosts {
        let distinct = per_host.values().filter(|n| **n > 0).count() as i64;
        counts.insert((tenant, RollupKey::DistinctHosts, bucket), distinct);
    }
    counts.retain(|_, n| *n != 0);
    late.retain(|_, diff| *diff != 0);
    (counts, late)
}

fn record(event_time_ms: u64, host: Option<&str>, category: Option<&str>) -> RollupInput {
    RollupInput {
        tenant: Tenant::default(),
        event_time_ms,
        kind: SourceKind::Syslog,
        host: host.map(str::to_string),
        severity: Severity::Warning,
        category: category.map(str::to_string),
    }
}

/// A shuffled, out-of-order stream: most events within lateness, some too late, some from the
/// future, some retracted again later.
fn random_feed(seed: u64, events: usize) -> Vec<Update<RollupInput>> {
    const BASE: u64 = 1_700_000_000_000;
    // Many hosts, so that a (bucket, host) pair often holds a single event and retracting it
    // must lower the distinct-host count.
    let hosts: Vec<Option<String>> = (0..40)
        .map(|n| Some(format!("host-{n}")))
        .chain([None])
        .collect();
    let categories = [Some("authentication"), Some("network"), Some("web"), None];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut feed = Vec::new();
    for _ in 0..events {
        let event_time_ms = BASE + rng.random_range(0..30 * 60_000);
        let delay: i64 = match rng.random_range(0..100) {
            0..=84 => rng.random_range(0..240_000),
            85..=94 => rng.random_range(300_000..720_000),
            _ => -rng.random_range(0..120_000),
        };
        let arrival = (event_time_ms as i64 + delay) as u64;
        let epoch = arrival.div_ceil(1_000) * 1_000; // one-second ticks
        // Two tenants sharing host names: their rows must never merge.
        let tenant = if rng.random_range(0..3) == 0 { Tenant::parse("acme").unwrap() } else { Tenant::default() };
        let input = RollupInput {
            tenant,
            event_time_ms,
            kind: SourceKind::ALL[rng.random_range(0..SourceKind::ALL.len())],
            host: hosts[rng.random_range(0..hosts.len())].clone(),
            severity: Severity::ALL[rng.random_range(0..Severity::ALL.len())],
            category: categories[rng.random_range(0..categories.len())].map(str::to_string),
        };
        if rng.random_range(0..100) < 4 {
            feed.push((input.clone(), epoch + rng.random_range(0..400) * 1_000, -1));
        }
        feed.push((input, epoch, 1));
    }
    feed.shuffle(&mut rng);
    feed
}

fn end_of(feed: &[Update<RollupInput>]) -> Epoch {
    feed.iter()
        .map(|(r, e, _)| (*e).max(r.event_time_ms))
        .max()
        .unwrap_or(0)
        + 3_600_000
}

#[test]
fn shuffled_stream_matches_brute_force() {
    let config = TimeModel::default();
    let feed = random_feed(7, 3_000);
    let (expected, expected_late) = brute_force(&feed, config.lateness_ms());
    let end = end_of(&feed);
    let out = run(1, feed, end, config);

    assert!(
        expected.len() > 100 && expected_late.len() > 50,
        "the stream exercises both paths"
    );
    assert_eq!(as_map(&table_at(&out.rows, end)), expected);
    assert_eq!(consolidate(&out.late), expected_late);
    // Rows change only while their bucket is open; a changed count is one retraction and one
    // insertion at the epoch of the change.
    for ((epoch, row), diff) in consolidate(&out.rows) {
        assert!(
            epoch < config.close_epoch(row.bucket_start_ms),
            "{row:?} changed at {epoch}"
        );
        assert!(diff == 1 || diff == -1);
    }
    // After the horizon passed every bucket, nothing is resident.
    let mut resident: BTreeMap<RollupRow, isize> = BTreeMap::new();
    for (row, _, diff) in &out.resident {
        *resident.entry(row.clone()).or_insert(0) += diff;
    }
    resident.retain(|_, diff| *diff != 0);
    assert!(
        resident.is_empty(),
        "{} rows still resident",
        resident.len()
    );
}

#[test]
fn late_event_within_lateness_corrects_a_past_bucket() {
    let config = TimeModel::default(); // bucket [0, 60 s) closes at epoch 360 s
    let early = record(10_000, Some("a"), Some("auth"));
    let late = record(30_000, Some("b"), Some("auth"));
    let feed = vec![(early, 20_000, 1), (late, 359_000, 1)];
    let out = run(1, feed, 1_000_000, config);

    let category = RollupKey::Category(Some("auth".into()));
    assert_eq!(table_at(&out.rows, 20_000).get(&category, 0), 1);
    assert_eq!(
        table_at(&out.rows, 20_000).get(&RollupKey::DistinctHosts, 0),
        1
    );
    let at_correction: Vec<_> = out
        .rows
        .iter()
        .filter(|(_, epoch, _)| *epoch == 359_000)
        .cloned()
        .collect();
    let corrected = changes(at_correction.into_iter().map(|(row, _, diff)| (row, diff)));
    assert!(corrected.contains(&securewatch_schemas::RollupChange {
        tenant: Tenant::default(),
        key: category.clone(),
        bucket_start_ms: 0,
        count: 2
    }));
    assert!(corrected.contains(&securewatch_schemas::RollupChange {
        tenant: Tenant::default(),
        key: RollupKey::DistinctHosts,
        bucket_start_ms: 0,
        count: 2
    }));
    assert!(out.late.is_empty());
}

#[test]
fn too_late_event_goes_to_the_late_output_only() {
    let config = TimeModel::new(Duration::from_secs(60), Duration::from_secs(60)).unwrap();
    let on_time = record(65_000, Some("a"), None); // bucket [60 s, 120 s) closes at 180 s
    let too_late = record(119_999, Some("b"), None);
    let feed = vec![
        (on_time, 70_000, 1),
        (too_late.clone(), 180_000, 1),
        (too_late.clone(), 190_000, -1),
    ];
    let out = run(1, feed, 1_000_000, config);

    assert_eq!(
        consolidate(&out.late),
        BTreeMap::from([((180_000, too_late.clone()), 1), ((190_000, too_late), -1)])
    );
    assert!(out.rows.iter().all(|(_, epoch, _)| *epoch == 70_000));
    let table = table_at(&out.rows, 1_000_000);
    assert_eq!(table.get(&RollupKey::Category(None), 60_000), 1);
    assert_eq!(table.get(&RollupKey::DistinctHosts, 60_000), 1);
}

#[test]
fn distinct_hosts_follow_insertions_and_retractions() {
    let config = TimeModel::default();
    let feed = vec![
        (record(1_000, Some("a"), None), 1_000, 1),
        (record(2_000, Some("a"), None), 1_000, 1),
        (record(3_000, Some("b"), None), 1_000, 1),
        (record(4_000, None, None), 1_000, 1),
        (record(61_000, Some("c"), None), 62_000, 1),
        (record(62_000, Some("a"), None), 62_000, 1),
        (record(1_000, Some("a"), None), 90_000, -1),
        (record(3_000, Some("b"), None), 100_000, -1),
        (record(2_000, Some("a"), None), 110_000, -1),
    ];
    let out = run(1, feed, 1_000_000, config);
    let distinct =
        |upto: Epoch, bucket: u64| table_at(&out.rows, upto).get(&RollupKey::DistinctHosts, bucket);
    assert_eq!((distinct(62_000, 0), distinct(62_000, 60_000)), (2, 2));
    assert_eq!(distinct(90_000, 0), 2); // "a" still has an event in the bucket
    assert_eq!(distinct(100_000, 0), 1);
    assert_eq!(distinct(110_000, 0), 0);
    assert_eq!(
        table_at(&out.rows, 110_000).get(&RollupKey::Category(None), 0),
        1
    );
}

#[test]
fn buckets_leave_memory_at_the_retention_horizon() {
    // Lateness 1 min, retention 3 min: bucket [0, 60 s) is final at 120 s and expires at 240 s.
    let config = TimeModel::new(Duration::from_secs(60), Duration::from_secs(180)).unwrap();
    let feed = vec![
        (record(5_000, Some("a"), Some("auth")), 6_000, 1),
        (record(50_000, Some("a"), Some("auth")), 100_000, 1),
        (record(600_000, Some("z"), Some("web")), 601_000, 1),
    ];
    let out = run(1, feed, 5_000_000, config);

    let resident_at = |epoch: Epoch| -> BTreeSet<u64> {
        let mut net: BTreeMap<RollupRow, isize> = BTreeMap::new();
        for (row, _, diff) in out.resident.iter().filter(|(_, e, _)| *e <= epoch) {
            *net.entry(row.clone()).or_insert(0) += diff;
        }
        net.into_iter()
            .filter(|(_, diff)| *diff != 0)
            .map(|(row, _)| row.bucket_start_ms)
            .collect()
    };
    assert_eq!(resident_at(239_999), BTreeSet::from([0]));
    assert!(resident_at(240_000).is_empty());
    assert_eq!(resident_at(601_000), BTreeSet::from([600_000]));
    assert!(resident_at(840_000).is_empty());
    // The store-facing rows keep the final counts: no retraction at expiry.
    let table = table_at(&out.rows, 5_000_000);
    assert_eq!(table.get(&RollupKey::Category(Some("auth".into())), 0), 2);
    assert_eq!(
        table.get(&RollupKey::Category(Some("web".into())), 600_000),
        1
    );
    assert!(out
        .rows
        .iter()
        .all(|(_, _, diff)| *diff == 1 || *diff == -1));
    assert_eq!(
        consolidate(&out.rows).values().filter(|d| **d < 0).count(),
        2
    ); // two corrections in bucket 0
}

#[test]
fn two_workers_agree_with_one() {
    let config = TimeModel::default();
    let feed = random_feed(11, 1_500);
    let end = end_of(&feed);
    let one = run(1, feed.clone(), end, config);
    let two = run(2, feed.clone(), end, config);
    let (expected, _) = brute_force(&feed, config.lateness_ms());

    assert_eq!(consolidate(&two.rows), consolidate(&one.rows));
    assert_eq!(consolidate(&two.late), consolidate(&one.late));
    assert_eq!(consolidate(&two.resident), consolidate(&one.resident));
    assert_eq!(as_map(&table_at(&two.rows, end)), expected);
}
