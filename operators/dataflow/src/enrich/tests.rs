//! Tests of the lookup keys and of the enrichment dataflow (1 and 2 workers) against brute force.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use differential_dataflow::input::Input;
use ipnet::IpNet;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use securewatch_schemas::{
    Asset, EnrichmentRow, Event, EventId, FieldValue, Fields, GeoLookup, Geo, LookupKey, Reference, Severity, Source, SourceKind, Tag,
};
use timely::dataflow::operators::capture::{Capture, Event as CaptureEvent};

use super::*;
use crate::{Epoch, TimeModel};
use securewatch_schemas::bucket_start;

type Update<D> = (D, Epoch, isize);

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn host_key(name: &str) -> LookupKey {
    LookupKey::Host(name.into())
}

fn ip_key(text: &str) -> LookupKey {
    LookupKey::Ip(ip(text))
}

fn asset(owner: &str, criticality: &str) -> Asset {
    Asset {
        owner: Some(owner.into()),
        criticality: Some(criticality.into()),
        tags: vec!["pci".into()],
    }
}

fn key_at(event_time_ms: u64, key: LookupKey) -> EnrichInput {
    EnrichInput { event_time_ms, key }
}

fn network(list: &str, text: &str) -> Reference {
    Reference::Network { list: list.into(), net: net(text) }
}

// ===== lookup keys =====

fn event(host: Option<&str>, peer: Option<&str>, fields: &[(&str, FieldValue)]) -> Event {
    Event {
        tenant: Default::default(),
        id: EventId(1),
        time: Utc.timestamp_millis_opt(1_700_000_123_456).unwrap(),
        received: Utc.timestamp_millis_opt(1_700_000_124_000).unwrap(),
        source: Source { kind: SourceKind::Syslog, name: "syslog".into(), peer: peer.map(str::to_string) },
        host: host.map(str::to_string),
        severity: Severity::Warning,
        category: None,
        message: "m".into(),
        fields: fields.iter().cloned().map(|(name, value)| (name.to_string(), value)).collect::<Fields>(),
        raw: None,
    }
}

#[test]
fn enrich_lookup_keys_take_host_peer_and_ip_fields() {
    let fields = [
        ("data.srcip", FieldValue::Str(" 203.0.113.9 ".into())),
        ("dstip", FieldValue::List(vec!["10.0.0.1".into(), "not-an-ip".into(), "::ffff:10.0.0.2".into()])),
        ("user", FieldValue::Str("10.9.9.9".into())), // not configured
        ("client_ip", FieldValue::Int(5)),
    ];
    let configured: Vec<String> = ["data.srcip", "dstip", "client_ip", "missing"].map(String::from).to_vec();
    let keys = lookup_keys(&event(Some("Web-01.Example"), Some("192.0.2.7:514"), &fields), &configured);
    assert_eq!(
        keys,
        vec![
            host_key("web-01.example"),
            ip_key("10.0.0.1"),
            ip_key("10.0.0.2"),
            ip_key("192.0.2.7"),
            ip_key("203.0.113.9"),
        ]
    );
}

#[test]
fn enrich_lookup_keys_of_ip_hosts_v6_peers_and_files() {
    let keys = lookup_keys(&event(Some("10.1.2.3"), Some("[2001:db8::1]:6514"), &[]), &[]);
    assert_eq!(keys, vec![host_key("10.1.2.3"), ip_key("10.1.2.3"), ip_key("2001:db8::1")]);
    let keys = lookup_keys(&event(Some("  "), Some("/var/ossec/logs/alerts/alerts.json"), &[]), &[]);
    assert!(keys.is_empty(), "{keys:?}");
    let duplicate = lookup_keys(&event(Some("10.0.0.1"), Some("10.0.0.1:1"), &[]), &[]);
    assert_eq!(duplicate, vec![host_key("10.0.0.1"), ip_key("10.0.0.1")]);
    let inputs = enrich_inputs(&event(Some("a"), None, &[]), &[]);
    assert_eq!(inputs, vec![key_at(1_700_000_123_456, host_key("a"))]);
}

#[test]
fn enrich_keys_print_and_parse() {
    for key in [host_key("web-1"), ip_key("10.0.0.1"), ip_key("2001:db8::1")] {
        assert_eq!(key.to_string().parse::<LookupKey>().unwrap(), key);
    }
    assert_eq!(host_key("web-1").to_string(), "host:web-1");
    assert_eq!("host:WEB-1".parse::<LookupKey>().unwrap(), host_key("web-1"));
    assert!("web-1".parse::<LookupKey>().is_err());
    assert!("ip:web-1".parse::<LookupKey>().is_err());
    assert_eq!(LookupKey::parse_asset_key("DB-1"), Some(host_key("db-1")));
    assert_eq!(LookupKey::parse_asset_key("10.0.0.1"), Some(ip_key("10.0.0.1")));
    assert_eq!(network("l", "10.1.2.3/8").canonical(), network("l", "10.0.0.0/8"));
}

// ===== the dataflow =====

/// Everything the enrichment dataflow emitted.
struct Output {
    rows: Vec<Update<EnrichmentRow>>,
    resident: Vec<Update<EnrichmentRow>>,
}

fn drain<D>(rx: Receiver<CaptureEvent<Epoch, Vec<Update<D>>>>) -> Vec<Update<D>> {
    rx.try_iter()
        .flat_map(|event| match event {
            CaptureEvent::Messages(_, data) => data,
            CaptureEvent::Progress(_) => Vec::new(),
        })
        .collect()
}

/// Runs the dataflow on `workers` workers (1: `execute_directly`); worker `i % workers` feeds
/// the `i`-th key update and the `i`-th reference update, sealing every epoch in order.
fn run(
    workers: usize,
    keys: Vec<Update<EnrichInput>>,
    references: Vec<Update<Reference>>,
    end: Epoch,
    config: TimeModel,
) -> Output {
    run_with_geo(workers, keys, references, end, config, None)
}

/// [`run`] with a GeoIP lookup.
fn run_with_geo(
    workers: usize,
    keys: Vec<Update<EnrichInput>>,
    references: Vec<Update<Reference>>,
    end: Epoch,
    config: TimeModel,
    geo: Option<GeoLookup>,
) -> Output {
    /// `(epoch, index, key update, reference update, diff)`: one of the two updates is set.
    type Step = (Epoch, usize, Option<EnrichInput>, Option<Reference>, isize);
    let mut feed: Vec<Step> = Vec::new();
    for (i, (key, epoch, diff)) in keys.into_iter().enumerate() {
        feed.push((epoch, i, Some(key), None, diff));
    }
    for (i, (reference, epoch, diff)) in references.into_iter().enumerate() {
        feed.push((epoch, i, None, Some(reference), diff));
    }
    feed.sort_by_key(|(epoch, ..)| *epoch);
    let feed = Arc::new(feed);
    let (rows_tx, rows_rx) = channel();
    let (resident_tx, resident_rx) = channel();
    let body = move |worker: &mut timely::worker::Worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (rows_tx, resident_tx, geo) = (rows_tx.clone(), resident_tx.clone(), geo.clone());
        let (mut key_input, mut reference_input) = worker.dataflow::<Epoch, _, _>(move |scope| {
            let (key_input, keys) = scope.new_collection::<EnrichInput, isize>();
            let (reference_input, references) = scope.new_collection::<Reference, isize>();
            let enrichment = build_enrichment_with_geo(keys, references, config, geo);
            enrichment.rows.inner.capture_into(rows_tx);
            enrichment.resident.inner.capture_into(resident_tx);
            (key_input, reference_input)
        });
        for (epoch, i, key, reference, diff) in feed.iter() {
            if *epoch > *key_input.time() {
                key_input.advance_to(*epoch);
                reference_input.advance_to(*epoch);
                key_input.flush();
                reference_input.flush();
                worker.step();
            }
            if i % peers == index {
                if let Some(key) = key {
                    key_input.update_at(key.clone(), *epoch, *diff);
                }
                if let Some(reference) = reference {
                    reference_input.update_at(reference.clone(), *epoch, *diff);
                }
            }
        }
        key_input.advance_to(end);
        reference_input.advance_to(end);
    };
    if workers == 1 {
        timely::execute_directly(body);
    } else {
        let guards = timely::execute(timely::Config::process(workers), body).expect("start workers");
        guards.join().into_iter().for_each(|result| result.expect("worker"));
    }
    Output { rows: drain(rows_rx), resident: drain(resident_rx) }
}

/// Consolidates updates to `(epoch, data) -> diff`, dropping zeros.
fn consolidate<D: Ord + Clone>(updates: &[Update<D>]) -> BTreeMap<(Epoch, D), isize> {
    let mut net = BTreeMap::new();
    for (data, epoch, diff) in updates {
        *net.entry((*epoch, data.clone())).or_insert(0) += diff;
    }
    net.retain(|_, diff| *diff != 0);
    net
}

/// The store after applying the (consolidated) changes of every epoch up to `upto` in order,
/// as `apply_enrichment_changes` does; checks that each insert is new and each delete present.
fn store_at(rows: &[Update<EnrichmentRow>], upto: Epoch) -> BTreeSet<EnrichmentRow> {
    let mut store = BTreeSet::new();
    for ((epoch, row), diff) in consolidate(rows) {
        if epoch > upto {
            break;
        }
        match diff {
            1 => assert!(store.insert(row.clone()), "{row:?} inserted twice at {epoch}"),
            -1 => assert!(store.remove(&row), "{row:?} deleted but absent at {epoch}"),
            other => panic!("{row:?} has diff {other} at {epoch}"),
        }
    }
    store
}

/// The rows still resident after all epochs.
fn net_resident(resident: &[Update<EnrichmentRow>]) -> BTreeMap<EnrichmentRow, isize> {
    let mut net = BTreeMap::new();
    for (row, _, diff) in resident {
        *net.entry(row.clone()).or_insert(0) += diff;
    }
    net.retain(|_, diff| *diff != 0);
    net
}

fn row(bucket_start_ms: u64, key: LookupKey, tag: Tag) -> EnrichmentRow {
    EnrichmentRow { bucket_start_ms, key, tag }
}

fn network_tag(list: &str, text: &str) -> Tag {
    Tag::Network { list: list.into(), net: net(text) }
}

#[test]
fn enrich_assets_join_by_host_and_ip() {
    let config = TimeModel::default();
    let web = asset("web-team", "high");
    let db = asset("dba", "critical");
    let references = vec![
        (Reference::Asset { key: host_key("web-1"), asset: web.clone() }, 0, 1),
        (Reference::Asset { key: ip_key("10.0.0.5"), asset: db.clone() }, 0, 1),
        (Reference::Asset { key: host_key("unused"), asset: db.clone() }, 0, 1),
        // The same entry twice (e.g. two reload diffs) still tags once.
        (Reference::Asset { key: ip_key("10.0.0.5"), asset: db.clone() }, 5_000, 1),
    ];
    let keys = vec![
        (key_at(1_000, host_key("web-1")), 2_000, 1),
        (key_at(2_000, host_key("web-1")), 2_000, 1),
        (key_at(61_000, ip_key("10.0.0.5")), 62_000, 1),
        (key_at(61_000, host_key("other")), 62_000, 1),
    ];
    let out = run(1, keys, references, 1_000_000, config);
    assert_eq!(
        store_at(&out.rows, 100_000),
        BTreeSet::from([
            row(0, host_key("web-1"), Tag::Asset(web)),
            row(60_000, ip_key("10.0.0.5"), Tag::Asset(db)),
        ])
    );
    assert_eq!(store_at(&out.rows, 1_000_000), store_at(&out.rows, 100_000), "expiry is not a change");
    assert!(net_resident(&out.resident).is_empty(), "everything left memory");
}

#[test]
fn enrich_asset_edit_retags_resident_buckets_and_leaves_expired_ones() {
    // Lateness 1 min, retention 5 min: bucket [0, 60 s) closes at 120 s and expires at 360 s.
    let config = TimeModel::new(Duration::from_secs(60), Duration::from_secs(300)).unwrap();
    let (old, new, newer) = (asset("alice", "low"), asset("bob", "high"), asset("carol", "medium"));
    let key = host_key("web-1");
    let references = vec![
        (Reference::Asset { key: key.clone(), asset: old.clone() }, 0, 1),
        // An edit while bucket 0 is closed but resident: it is re-tagged.
        (Reference::Asset { key: key.clone(), asset: old.clone() }, 200_000, -1),
        (Reference::Asset { key: key.clone(), asset: new.clone() }, 200_000, 1),
        // An edit after bucket 0 expired: only bucket 600 s is re-tagged.
        (Reference::Asset { key: key.clone(), asset: new.clone() }, 700_000, -1),
        (Reference::Asset { key: key.clone(), asset: newer.clone() }, 700_000, 1),
    ];
    let keys = vec![
        (key_at(10_000, key.clone()), 11_000, 1),
        (key_at(610_000, key.clone()), 611_000, 1),
    ];
    let out = run(1, keys, references, 2_000_000, config);

    assert_eq!(store_at(&out.rows, 100_000), BTreeSet::from([row(0, key.clone(), Tag::Asset(old.clone()))]));
    assert_eq!(store_at(&out.rows, 200_000), BTreeSet::from([row(0, key.clone(), Tag::Asset(new.clone()))]));
    assert_eq!(
        store_at(&out.rows, 611_000),
        BTreeSet::from([row(0, key.clone(), Tag::Asset(new.clone())), row(600_000, key.clone(), Tag::Asset(new.clone()))])
    );
    assert_eq!(
        store_at(&out.rows, 2_000_000),
        BTreeSet::from([row(0, key.clone(), Tag::Asset(new.clone())), row(600_000, key.clone(), Tag::Asset(newer))])
    );
    let at_second_edit: Vec<_> = consolidate(&out.rows).into_iter().filter(|((epoch, _), _)| *epoch == 700_000).collect();
    assert_eq!(at_second_edit.len(), 2, "one delete and one insert, for bucket 600 s only: {at_second_edit:?}");
    assert!(at_second_edit.iter().all(|((_, row), _)| row.bucket_start_ms == 600_000));
    // The resident copy of bucket 0 left at its expiry epoch.
    let resident_at_expiry: Vec<_> = consolidate(&out.resident).into_iter().filter(|((epoch, _), _)| *epoch == 360_000).collect();
    assert_eq!(resident_at_expiry, vec![((360_000, row(0, key, Tag::Asset(new))), -1)]);
}

#[test]
fn enrich_cidr_matches_every_containing_network_v4_and_v6() {
    let config = TimeModel::default();
    let references = vec![
        (network("internal", "10.0.0.0/8"), 0, 1),
        (network("internal", "10.1.0.0/16"), 0, 1),
        (network("threat", "10.1.2.3/32"), 0, 1),
        (network("dmz", "192.168.0.0/16"), 0, 1),
        (network("sloppy", "10.200.0.1/8"), 0, 1), // canonical form 10.0.0.0/8
        (network("sloppy", "10.0.0.0/8"), 0, 1),   // the same network again
        (network("internal", "2001:db8::/32"), 0, 1),
        (network("threat", "2001:db8:0:1::/64"), 0, 1),
        (network("everything", "0.0.0.0/0"), 0, 1),
    ];
    let keys = vec![
        (key_at(1_000, ip_key("10.1.2.3")), 1_000, 1),
        (key_at(1_000, ip_key("10.2.0.1")), 1_000, 1),
        (key_at(1_000, ip_key("2001:db8:0:1::5")), 1_000, 1),
        (key_at(1_000, ip_key("2001:db9::1")), 1_000, 1),
        (key_at(1_000, host_key("10.1.2.3")), 1_000, 1), // host keys never match networks
    ];
    let out = run(1, keys, references, 1_000_000, config);
    let tags = |key: LookupKey| -> BTreeSet<Tag> {
        store_at(&out.rows, 1_000).into_iter().filter(|row| row.key == key).map(|row| row.tag).collect()
    };
    assert_eq!(
        tags(ip_key("10.1.2.3")),
        BTreeSet::from([
            network_tag("internal", "10.0.0.0/8"),
            network_tag("internal", "10.1.0.0/16"),
            network_tag("threat", "10.1.2.3/32"),
            network_tag("sloppy", "10.0.0.0/8"),
            network_tag("everything", "0.0.0.0/0"),
        ])
    );
    assert_eq!(
        tags(ip_key("10.2.0.1")),
        BTreeSet::from([
            network_tag("internal", "10.0.0.0/8"),
            network_tag("sloppy", "10.0.0.0/8"),
            network_tag("everything", "0.0.0.0/0"),
        ])
    );
    assert_eq!(
        tags(ip_key("2001:db8:0:1::5")),
        BTreeSet::from([network_tag("internal", "2001:db8::/32"), network_tag("threat", "2001:db8:0:1::/64")])
    );
    assert!(tags(ip_key("2001:db9::1")).is_empty());
    assert!(tags(host_key("10.1.2.3")).is_empty());
}

#[test]
fn enrich_network_list_edits_retag_and_late_keys_are_not_enriched() {
    let config = TimeModel::default(); // bucket [0, 60 s) closes at 360 s, expires at 360 s
    let references = vec![
        (network("threat", "203.0.113.0/24"), 0, 1),
        (network("threat", "203.0.113.0/24"), 50_000, -1), // the line is deleted
        (network("threat", "198.51.100.7/32"), 50_000, 1),
    ];
    let keys = vec![
        (key_at(1_000, ip_key("203.0.113.9")), 1_000, 1),
        (key_at(2_000, ip_key("198.51.100.7")), 2_000, 1),
        (key_at(3_000, ip_key("198.51.100.7")), 360_000, 1), // too late for bucket 0
        (key_at(4_000, ip_key("203.0.113.1")), 400_000, 1),  // too late, and would match
    ];
    let out = run(1, keys, references, 1_000_000, config);
    assert_eq!(
        store_at(&out.rows, 1_000),
        BTreeSet::from([row(0, ip_key("203.0.113.9"), network_tag("threat", "203.0.113.0/24"))])
    );
    assert_eq!(
        store_at(&out.rows, 1_000_000),
        BTreeSet::from([row(0, ip_key("198.51.100.7"), network_tag("threat", "198.51.100.7/32"))])
    );
    assert!(out.rows.iter().all(|(_, epoch, _)| *epoch < 360_000), "late keys change nothing");
}

#[test]
fn enrich_geo_tags_each_located_ip_key_per_bucket() {
    let config = TimeModel::default();
    let amsterdam = Geo {
        country: Some("NL".into()),
        city: Some("Amsterdam".into()),
        latitude_e6: Geo::to_e6(52.374),
        longitude_e6: Geo::to_e6(4.8897),
    };
    let located = amsterdam.clone();
    let geo: GeoLookup =
        Arc::new(move |address: IpAddr| net("203.0.113.0/24").contains(&address).then(|| located.clone()));
    let keys = vec![
        (key_at(1_000, ip_key("203.0.113.9")), 1_000, 1),
        (key_at(2_000, ip_key("203.0.113.9")), 1_000, 1), // same bucket and key: one tag
        (key_at(61_000, ip_key("203.0.113.9")), 61_000, 1),
        (key_at(1_000, ip_key("198.51.100.1")), 1_000, 1), // not in the database
        (key_at(1_000, host_key("203.0.113.9")), 1_000, 1), // hosts are not located
    ];
    for workers in [1, 2] {
        let out = run_with_geo(workers, keys.clone(), Vec::new(), 1_000_000, config, Some(Arc::clone(&geo)));
        assert_eq!(
            store_at(&out.rows, 1_000_000),
            BTreeSet::from([
                row(0, ip_key("203.0.113.9"), Tag::Geo(amsterdam.clone())),
                row(60_000, ip_key("203.0.113.9"), Tag::Geo(amsterdam.clone())),
            ])
        );
        assert!(net_resident(&out.resident).is_empty(), "geo tags leave memory with their bucket");
    }
    assert_eq!(amsterdam.latitude(), Some(52.374));
    assert_eq!(Geo::to_e6(f64::NAN), None);
}

// ===== random streams, brute force, 1 vs 2 workers =====

const BASE: u64 = 1_700_000_000_000;

fn random_feed(seed: u64) -> (Vec<Update<EnrichInput>>, Vec<Update<Reference>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let hosts: Vec<LookupKey> = (0..8).map(|n| host_key(&format!("host-{n}"))).collect();
    let ips: Vec<LookupKey> = (0..12)
        .map(|n| if n % 4 == 3 { ip_key(&format!("2001:db8:{n}::{n}")) } else { ip_key(&format!("10.{}.{}.{n}", n % 3, n % 2)) })
        .collect();
    let all_keys: Vec<LookupKey> = hosts.iter().chain(&ips).cloned().collect();
    let mut keys = Vec::new();
    for _ in 0..600 {
        let event_time_ms = BASE + rng.random_range(0..20 * 60_000);
        let delay: u64 = match rng.random_range(0..10) {
            0..=7 => rng.random_range(0..200_000),
            _ => rng.random_range(300_000..600_000),
        };
        let epoch = (event_time_ms + delay).div_ceil(1_000) * 1_000;
        let input = key_at(event_time_ms, all_keys[rng.random_range(0..all_keys.len())].clone());
        if rng.random_range(0..100) < 5 {
            keys.push((input.clone(), epoch + rng.random_range(0..100) * 1_000, -1));
        }
        keys.push((input, epoch, 1));
    }
    // Reference candidates, toggled on and off at random epochs.
    let mut candidates: Vec<Reference> = all_keys
        .iter()
        .enumerate()
        .map(|(n, key)| Reference::Asset { key: key.clone(), asset: asset(&format!("owner-{}", n % 3), "high") })
        .collect();
    for text in ["10.0.0.0/8", "10.1.0.0/16", "10.0.1.0/24", "2001:db8::/32", "2001:db8:3::/48", "10.2.1.8/32"] {
        candidates.push(network("internal", text));
        candidates.push(network("threat", text));
    }
    let mut references = Vec::new();
    for candidate in candidates {
        let mut present = false;
        let mut epoch = BASE - 1_000;
        for _ in 0..rng.random_range(1..5) {
            references.push((candidate.clone(), epoch, if present { -1 } else { 1 }));
            present = !present;
            epoch = BASE + rng.random_range(0..25 * 60_000) / 1_000 * 1_000;
            epoch = epoch.max(references.last().map_or(0, |(_, e, _)| *e + 1_000));
        }
    }
    keys.shuffle(&mut rng);
    (keys, references)
}

/// Brute force: what the store holds at the end, from the key and reference states as of the
/// epoch before each bucket's expiry (the last epoch its tags can change).
fn brute_force(keys: &[Update<EnrichInput>], references: &[Update<Reference>], config: TimeModel) -> BTreeSet<EnrichmentRow> {
    let mut buckets: BTreeSet<u64> = BTreeSet::new();
    for (input, _, _) in keys {
        buckets.insert(bucket_start(input.event_time_ms));
    }
    let mut store = BTreeSet::new();
    for bucket in buckets {
        let last = config.expiry_epoch(bucket) - 1;
        let mut counts: BTreeMap<LookupKey, isize> = BTreeMap::new();
        for (input, epoch, diff) in keys {
            let accepted = *epoch < bucket + 60_000 + config.lateness_ms();
            if bucket_start(input.event_time_ms) == bucket && accepted && *epoch <= last {
                *counts.entry(input.key.clone()).or_insert(0) += diff;
            }
        }
        let mut reference_counts: BTreeMap<Reference, isize> = BTreeMap::new();
        for (reference, _, diff) in references.iter().filter(|(_, epoch, _)| *epoch <= last) {
            *reference_counts.entry(reference.clone()).or_insert(0) += diff;
        }
        for key in counts.into_iter().filter(|(_, n)| *n > 0).map(|(key, _)| key) {
            for reference in reference_counts.iter().filter(|(_, n)| **n > 0).map(|(r, _)| r) {
                match (reference, &key) {
                    (Reference::Asset { key: asset_key, asset }, _) if *asset_key == key => {
                        store.insert(row(bucket, key.clone(), Tag::Asset(asset.clone())));
                    }
                    (Reference::Network { list, net }, LookupKey::Ip(address)) if net.contains(address) => {
                        store.insert(row(bucket, key.clone(), Tag::Network { list: list.clone(), net: net.trunc() }));
                    }
                    _ => {}
                }
            }
        }
    }
    store
}

#[test]
fn enrich_random_stream_matches_brute_force_on_one_and_two_workers() {
    let config = TimeModel::default();
    let (keys, references) = random_feed(3);
    let end = BASE + 3 * 3_600_000;
    let expected = brute_force(&keys, &references, config);
    assert!(expected.len() > 100, "the stream tags enough: {}", expected.len());
    let one = run(1, keys.clone(), references.clone(), end, config);
    assert_eq!(store_at(&one.rows, end), expected);
    assert!(net_resident(&one.resident).is_empty());
    let two = run(2, keys, references, end, config);
    assert_eq!(consolidate(&two.rows), consolidate(&one.rows));
    assert_eq!(consolidate(&two.resident), consolidate(&one.resident));
}
