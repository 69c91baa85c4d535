//! The engine end to end in one process: raw records in through the inboxes, events, dead
//! letters and rollups out through the drain, with frontiers that say when an epoch is done.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use securewatch_detection::{match_of, CompiledCorrelations, Match, Pipelines, RuleSet, SourceDetectors};
use securewatch_dataflow::engine::{
    Drain, EnrichmentSettings, Engine, EngineConfig, Feed, FrontierTracker, Output, Rules, RulesHandle,
};
use securewatch_dataflow::Epoch;
use securewatch_schemas::{changes, Asset, EnrichmentRow, LookupKey, Reference, RollupKey, RollupTable, Tag, DEFAULT_IP_FIELDS};
use securewatch_parse::normalise;
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::{Alert, AlertLevel, Severity, SourceKind};

/// A base rule on every syslog message and an event_count correlation over it (3 per host in a
/// minute) that hides the base rule's own alerts.
const BURST_RULES: &str = r#"title: any message
id: base
name: base_rule
level: low
logsource:
  product: linux
  service: syslog
detection:
  selection:
    message|startswith: 'message'
  condition: selection
---
title: three per host
id: burst
level: high
correlation:
  type: event_count
  rules: [base_rule]
  group-by: [host]
  timespan: 1m
  condition:
    gte: 3
"#;

/// Start of the test's event times: 2026-11-21T10:00:00Z.
const BASE_MS: u64 = 1_795_255_200_000;

fn syslog(index: usize, time_ms: u64, host: &str, severity: u8) -> RawRecord {
    let time = Utc.timestamp_millis_opt(time_ms as i64).unwrap();
    let body = format!(
        "<{}>1 {} {host} app - - - message {index}",
        8 + severity,
        time.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Syslog,
        source_name: Arc::from("syslog"),
        peer: Some("127.0.0.1:40000".into()),
        received: time,
        body: body.into_bytes(),
        meta: RecordMeta::None,
    }
}

/// What came out of a run.
#[derive(Default)]
struct Drained {
    events: usize,
    rejected: Vec<String>,
    rollups: RollupTable,
    late: usize,
    enrichment: Vec<(EnrichmentRow, Epoch, isize)>,
    alerts: Vec<(Alert, Epoch, isize)>,
    /// Outputs that arrived for an epoch the combined frontier had already passed (which would
    /// break the writer's protocol).
    violations: usize,
}

/// One input of a run.
enum Step {
    Record(RawRecord),
    References(Vec<(Reference, isize)>),
    /// Waits until the engine finished every epoch before this one, then puts the rules in force.
    Swap(RulesHandle, Box<Rules>),
    Backfill(Vec<(Match, Vec<u64>)>),
}

/// Feeds `records` (each with its epoch, in epoch order) round robin to `workers` workers,
/// sealing as epochs advance, stops the engine and collects the drain.
fn run(workers: usize, records: Vec<(Epoch, RawRecord)>, end: Epoch) -> Drained {
    let steps = records.into_iter().map(|(epoch, record)| (epoch, Step::Record(record))).collect();
    run_steps(EngineConfig { workers, ..EngineConfig::default() }, steps, end)
}

fn run_steps(config: EngineConfig, steps: Vec<(Epoch, Step)>, end: Epoch) -> Drained {
    let (engine, mut drain) = Engine::start(config).expect("engine starts");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut messages = Vec::new();
    let engine = runtime.block_on(async {
        let mut open = 0;
        let mut progress = FrontierTracker::new(engine.first_worker(), engine.local_workers());
        for (index, (epoch, step)) in steps.into_iter().enumerate() {
            if epoch > open {
                engine.seal(epoch).await.unwrap();
                open = epoch;
            }
            let feed = match step {
                Step::Record(record) => Feed::Records { epoch: open, records: vec![record] },
                Step::References(changes) => Feed::References(changes),
                Step::Backfill(matches) => Feed::Backfill(matches),
                Step::Swap(handle, rules) => {
                    while progress.combined().is_some_and(|frontier| frontier < open) {
                        let message = drain.recv().await.expect("the workers run");
                        if let Drain::Frontier { worker, frontier } = &message {
                            progress.update(*worker, *frontier);
                        }
                        messages.push(message);
                    }
                    handle.replace(*rules);
                    continue;
                }
            };
            engine.send(index, feed).await.unwrap();
        }
        engine.seal(end).await.unwrap();
        engine
    });
    let mut tracker = FrontierTracker::new(engine.first_worker(), engine.local_workers());
    engine.stop().expect("workers finish");
    let mut drained = Drained::default();
    let mut updates = Vec::new();
    while let Ok(message) = drain.try_recv() {
        messages.push(message);
    }
    for message in messages {
        match message {
            Drain::Data { epoch, outputs, .. } => {
                if tracker.combined().is_none_or(|frontier| epoch < frontier) {
                    drained.violations += 1;
                }
                for output in outputs {
                    match output {
                        Output::Event(_) => drained.events += 1,
                        Output::Rejected(rejected) => drained.rejected.push(rejected.reason.to_string()),
                        Output::Rollup(row, _, diff) => updates.push((row, diff)),
                        Output::Late(..) => drained.late += 1,
                        Output::Enrichment(row, at, diff) => drained.enrichment.push((row, at, diff)),
                        Output::Alert(alert, at, diff) => drained.alerts.push((alert, at, diff)),
                    }
                }
            }
            Drain::Frontier { worker, frontier } => {
                tracker.update(worker, frontier);
            }
        }
    }
    assert!(tracker.finished(), "every worker reports the empty frontier at the end");
    drained.rollups.apply(&changes(updates));
    drained
}

fn brute_force(hosts: &[(u64, &str, u8)]) -> BTreeMap<(String, u64), i64> {
    let mut counts = BTreeMap::new();
    for (time_ms, host, _) in hosts {
        *counts.entry((host.to_string(), time_ms - time_ms % 60_000)).or_insert(0) += 1;
    }
    counts
}

#[test]
fn shuffled_records_give_exact_rollups_on_one_and_two_workers() {
    let mut rng = StdRng::seed_from_u64(7);
    let hosts = ["web-1", "web-2", "db-1"];
    let mut specs: Vec<(u64, &str, u8)> = (0..600)
        .map(|i| (BASE_MS + (i as u64 * 7_919) % 240_000, hosts[i % 3], (i % 8) as u8))
        .collect();
    specs.shuffle(&mut rng);
    // Arrival over two minutes of epochs, all within the five minutes of lateness.
    let records: Vec<(Epoch, RawRecord)> = specs
        .iter()
        .enumerate()
        .map(|(i, (time, host, severity))| (BASE_MS + 100 * i as u64, syslog(i, *time, host, *severity)))
        .collect();
    let expected = brute_force(&specs);
    let end = BASE_MS + 100 * records.len() as u64 + 100;
    for workers in [1, 2] {
        let drained = run(workers, records.clone(), end);
        assert_eq!(drained.events, 600, "{workers} workers");
        assert_eq!(drained.violations, 0);
        assert_eq!(drained.late, 0);
        let mut per_host: BTreeMap<(String, u64), i64> = BTreeMap::new();
        let mut distinct: BTreeMap<u64, i64> = BTreeMap::new();
        for (key, bucket, count) in drained.rollups.iter() {
            match key {
                RollupKey::Source { host: Some(host), kind, severity } => {
                    assert_eq!(*kind, SourceKind::Syslog);
                    assert!(*severity <= Severity::Debug);
                    *per_host.entry((host.clone(), bucket)).or_insert(0) += count;
                }
                RollupKey::DistinctHosts => {
                    distinct.insert(bucket, count);
                }
                _ => {}
            }
        }
        assert_eq!(per_host, expected, "{workers} workers");
        for (bucket, count) in distinct {
            let hosts_in_bucket = expected.keys().filter(|(_, b)| *b == bucket).count() as i64;
            assert_eq!(count, hosts_in_bucket);
        }
    }
}

#[test]
fn rejected_records_carry_their_reason_and_late_events_are_reported() {
    let mut bad = syslog(0, BASE_MS, "x", 1);
    bad.kind = SourceKind::Wazuh; // a Wazuh alert line must be JSON
    bad.body = b"not json".to_vec();
    let late = syslog(1, BASE_MS, "web-1", 3);
    // Ingested 20 minutes after its bucket ended: past the five minutes of lateness.
    let records = vec![(BASE_MS, bad), (BASE_MS + 21 * 60_000, late)];
    let drained = run(1, records, BASE_MS + 22 * 60_000);
    assert_eq!(drained.rejected, vec!["invalid_json".to_string()]);
    assert_eq!(drained.events, 1);
    assert_eq!(drained.late, 1);
    assert!(drained.rollups.is_empty(), "a late event is not rolled up");
}

#[test]
fn editing_an_asset_retags_resident_buckets_at_the_epoch_of_the_edit() {
    let web = LookupKey::Host("web-1".into());
    let asset = |owner: &str| Reference::Asset {
        key: web.clone(),
        asset: Asset { owner: Some(owner.into()), criticality: Some("high".into()), tags: vec![] },
    };
    let edit_epoch = BASE_MS + 30_000;
    let steps = vec![
        (BASE_MS, Step::References(vec![(asset("alice"), 1)])),
        (BASE_MS + 100, Step::Record(syslog(0, BASE_MS, "web-1", 3))),
        (BASE_MS + 200, Step::Record(syslog(1, BASE_MS + 70_000, "db-1", 3))),
        (edit_epoch, Step::References(vec![(asset("alice"), -1), (asset("bob"), 1)])),
    ];
    let settings = EnrichmentSettings { ip_fields: DEFAULT_IP_FIELDS.iter().map(|f| f.to_string()).collect(), geo: None };
    let config = EngineConfig { workers: 2, enrichment: Some(settings), ..EngineConfig::default() };
    let drained = run_steps(config, steps, edit_epoch + 100);
    let owner = |row: &EnrichmentRow| match &row.tag {
        Tag::Asset(asset) => asset.owner.clone(),
        _ => None,
    };
    let mut asset_updates: Vec<(Option<String>, Epoch, isize)> = drained
        .enrichment
        .iter()
        .filter(|(row, _, _)| row.key == web && row.bucket_start_ms == BASE_MS)
        .map(|(row, at, diff)| (owner(row), *at, *diff))
        .collect();
    asset_updates.sort();
    assert_eq!(
        asset_updates,
        vec![
            (Some("alice".into()), BASE_MS + 100, 1),
            (Some("alice".into()), edit_epoch, -1),
            (Some("bob".into()), edit_epoch, 1),
        ],
        "tagged when the key arrives, re-tagged at the very epoch of the edit"
    );
    assert!(
        drained.enrichment.iter().all(|(row, _, _)| row.key != LookupKey::Host("db-1".into()) || !matches!(row.tag, Tag::Asset(_))),
        "db-1 is not in the inventory"
    );
}

#[test]
fn detection_rules_raise_one_alert_per_matching_event_and_a_swap_applies_to_later_records() {
    let rule = |id: &str, suffix: &str| {
        format!(
            "title: ends with {suffix}\nid: {id}\nlevel: high\ntags: [attack.t1000]\nlogsource:\n  product: linux\n  service: syslog\n\
             detection:\n  selection:\n    message|endswith: '{suffix}'\n  condition: selection\n"
        )
    };
    let compile = |text: String| {
        let set = RuleSet::from_text(std::path::Path::new("rules.yml"), &text);
        assert!(set.rejected.is_empty(), "{:?}", set.rejected);
        Rules {
            detectors: SourceDetectors::compile(&set, &Pipelines::none()),
            correlations: Arc::new(CompiledCorrelations::compile(&set)),
        }
    };
    let rules = RulesHandle::new(compile(rule("r-7", "7")));
    for workers in [1, 2] {
        rules.replace(compile(rule("r-7", "7")));
        let records: Vec<_> =
            (0..40).map(|index| (1 + index as Epoch, syslog(index, BASE_MS + index as u64 * 1000, "h", 6))).collect();
        let config = EngineConfig { workers, detection: Some(rules.clone()), ..EngineConfig::default() };
        let steps = records.into_iter().map(|(epoch, record)| (epoch, Step::Record(record))).collect();
        let drained = run_steps(config, steps, 100);
        let mut matched: Vec<_> = drained.alerts.iter().map(|(alert, _, _)| alert.first_seen_ms).collect();
        matched.sort();
        let expected: Vec<u64> = [7, 17, 27, 37].iter().map(|index| BASE_MS + index * 1000).collect();
        assert_eq!(matched, expected, "workers {workers}");
        for (alert, _, diff) in &drained.alerts {
            assert_eq!((alert.rule_id.as_str(), alert.level, alert.kind.as_str(), *diff), ("r-7", Some(AlertLevel::High), "rule", 1));
            assert_eq!(alert.tags, ["attack.t1000"]);
            assert_eq!(alert.id, Alert::rule_id_for_event("r-7", alert.event_ids[0]));
        }
    }
    // After a swap, the new rules apply.
    rules.replace(compile(rule("r-3", "3")));
    let steps = (0..10).map(|index| (1 + index as Epoch, Step::Record(syslog(index, BASE_MS + index as u64, "h", 6)))).collect();
    let drained = run_steps(EngineConfig { detection: Some(rules.clone()), ..EngineConfig::default() }, steps, 100);
    let ids: Vec<_> = drained.alerts.iter().map(|(alert, _, _)| alert.rule_id.as_str()).collect();
    assert_eq!(ids, ["r-3"]);
}

#[test]
fn a_correlation_fires_once_per_group_through_the_engine_and_hides_its_base_rule() {
    let set = RuleSet::from_text(std::path::Path::new("rules.yml"), BURST_RULES);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let compiled = CompiledCorrelations::compile(&set);
    assert!(compiled.rejected.is_empty(), "{:?}", compiled.rejected);
    let rules = RulesHandle::new(Rules {
        detectors: SourceDetectors::compile(&set, &Pipelines::none()),
        correlations: Arc::new(compiled),
    });
    for workers in [1, 2] {
        // host a: 4 events within 10 s (one alert); host b: 2 events (none). Epochs = event times.
        let mut records = Vec::new();
        for (index, (host, offset_ms)) in [("a", 0), ("b", 1_000), ("a", 2_000), ("a", 4_000), ("b", 5_000), ("a", 9_000)].iter().enumerate() {
            let time = BASE_MS + offset_ms;
            records.push((time, Step::Record(syslog(index, time, host, 6))));
        }
        let config = EngineConfig { workers, detection: Some(rules.clone()), ..EngineConfig::default() };
        let drained = run_steps(config, records, BASE_MS + 3_600_000);
        let mut net: BTreeMap<_, isize> = BTreeMap::new();
        for (alert, _, diff) in &drained.alerts {
            *net.entry(alert.clone()).or_default() += diff;
        }
        net.retain(|_, diff| *diff != 0);
        assert_eq!(net.len(), 1, "workers {workers}: {net:?}");
        let (alert, diff) = net.into_iter().next().unwrap();
        assert_eq!(diff, 1);
        assert_eq!((alert.rule_id.as_str(), alert.kind.as_str()), ("burst", "event_count"));
        assert_eq!(alert.group_key.get("host").map(String::as_str), Some("a"));
        assert!(alert.event_ids.len() >= 3, "{alert:?}");
        assert!(drained.alerts.iter().all(|(alert, _, _)| alert.rule_id != "base"), "the base rule raises no alert of its own");
    }
}

/// The rules of a text, all accepted.
fn compile_rules(text: &str) -> Rules {
    let set = RuleSet::from_text(std::path::Path::new("rules.yml"), text);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let correlations = CompiledCorrelations::compile(&set);
    assert!(correlations.rejected.is_empty(), "{:?}", correlations.rejected);
    Rules { detectors: SourceDetectors::compile(&set, &Pipelines::none()), correlations: Arc::new(correlations) }
}

/// Alerts netted over their diffs, and the retractions not replaced by a new version of the
/// same alert (same id) at the same epoch: alerts that were withdrawn.
fn net_alerts(drained: &Drained) -> (BTreeMap<Alert, isize>, usize) {
    let mut net: BTreeMap<Alert, isize> = BTreeMap::new();
    for (alert, _, diff) in &drained.alerts {
        *net.entry(alert.clone()).or_default() += diff;
    }
    net.retain(|_, diff| *diff != 0);
    let withdrawn = drained
        .alerts
        .iter()
        .filter(|(alert, epoch, diff)| {
            *diff < 0 && !drained.alerts.iter().any(|(other, at, diff)| *diff > 0 && at == epoch && other.id == alert.id)
        })
        .count();
    (net, withdrawn)
}

#[test]
fn a_reload_keeps_unchanged_correlation_windows_and_a_new_correlation_sees_the_backfilled_window() {
    let base = BURST_RULES;
    let pair = "---\ntitle: two per host\nid: pair\ncorrelation:\n  type: event_count\n  rules: [base_rule]\n  group-by: [host]\n  timespan: 1m\n  condition:\n    gte: 2\n";
    let before = compile_rules(base);
    let after = compile_rules(&format!("{base}{pair}"));
    let burst_key = |rules: &Rules| rules.correlations.correlations.iter().find(|c| c.rule_id == "burst").unwrap().key;
    assert_eq!(burst_key(&before), burst_key(&after), "an unchanged correlation keeps its key");
    let pair_key = after.correlations.correlations.iter().find(|c| c.rule_id == "pair").unwrap().key;

    for workers in [1, 2] {
        let handle = RulesHandle::new(compile_rules(base));
        let records: Vec<RawRecord> = (0..3).map(|index| syslog(index, BASE_MS + index as u64 * 1_000, "a", 6)).collect();
        // What a reload recomputes from the stored events: the matches of the two events
        // ingested before it, for the new correlation only.
        let after = compile_rules(&format!("{base}{pair}"));
        let backfill: Vec<(Match, Vec<u64>)> = records[..2]
            .iter()
            .flat_map(|record| {
                let event = normalise(record).unwrap();
                after.detectors.matches(&event).map(|found| match_of(&found, &event, &after.correlations)).collect::<Vec<_>>()
            })
            .map(|found| (found, vec![pair_key]))
            .collect();
        assert_eq!(backfill.len(), 2);
        let [first, second, third] = records.try_into().unwrap();
        let steps = vec![
            (BASE_MS, Step::Record(first)),
            (BASE_MS + 1_000, Step::Record(second)),
            (BASE_MS + 1_500, Step::Swap(handle.clone(), Box::new(after))),
            (BASE_MS + 1_500, Step::Backfill(backfill)),
            (BASE_MS + 2_000, Step::Record(third)),
        ];
        let config = EngineConfig { workers, detection: Some(handle.clone()), ..EngineConfig::default() };
        let drained = run_steps(config, steps, BASE_MS + 3_600_000);
        let (net, withdrawn) = net_alerts(&drained);
        assert_eq!(withdrawn, 0, "workers {workers}: a reload withdraws nothing: {:?}", drained.alerts);
        let fired: BTreeMap<&str, &Alert> = net.keys().map(|alert| (alert.rule_id.as_str(), alert)).collect();
        assert_eq!(net.len(), 2, "workers {workers}: {net:?}");
        // The unchanged correlation counted the events from before and after the reload.
        assert_eq!(fired["burst"].event_ids.len(), 3, "workers {workers}");
        // The new one fired on the window from before the reload (the condition held at the
        // second event); it lists the two events that made it hold, and the event after it,
        // in the same window, leaves that alert as it was.
        assert_eq!(fired["pair"].window_start_ms, BASE_MS, "workers {workers}");
        assert_eq!(fired["pair"].fired_at_ms, BASE_MS + 1_000, "workers {workers}");
        assert_eq!(fired["pair"].event_ids.len(), 2, "workers {workers}");
    }
}
