//! Correlation dataflow tests: shuffled and late streams against a brute-force evaluator, on one
//! and two workers; late completion and invalidation; chains; skipped groups; replays; memory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::input::Input;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use securewatch_detection::correlation::{CompiledCorrelation, Condition, CorrelationKind, InputSource, RuleExpr};
use securewatch_detection::rsigma_parser::ConditionOperator;
use securewatch_detection::{CompiledCorrelations, Match, RuleSet};
use securewatch_dataflow::{build_correlations, rule_alerts, CorrelationConfig, Epoch};
use securewatch_schemas::{Alert, EventId, Tenant, DEFAULT_TENANT};
use timely::dataflow::operators::capture::{Capture, Event};

type Update<D> = (D, Epoch, isize);

const RULES: &str = "\
title: Failed login
name: fail
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Successful login
name: ok
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4624}, condition: selection}
---
title: Transfer
name: xfer
logsource: {product: linux}
detection: {selection: {action: upload}, condition: selection}
---
title: Recon A
name: recon_a
tags: [attack.discovery]
logsource: {product: windows}
detection: {selection: {Image|endswith: whoami.exe}, condition: selection}
---
title: Recon B
name: recon_b
logsource: {product: windows}
detection: {selection: {Image|endswith: net.exe}, condition: selection}
---
title: Unreferenced
name: loner
logsource: {product: windows}
detection: {selection: {Image|endswith: calc.exe}, condition: selection}
---
title: Many failed logins
name: many_fails
correlation: {type: event_count, rules: [fail], group-by: [User], timespan: 30s, condition: {gte: 3}}
---
title: Brute force followed by success
name: brute_then_ok
level: high
tags: [attack.t1110]
correlation:
    type: temporal_ordered
    rules: [many_fails, ok]
    group-by: [Account]
    timespan: 1m
    aliases:
        Account: {many_fails: User, ok: TargetUser}
---
title: Single success
name: lonely_ok
correlation: {type: event_count, rules: [ok], group-by: [TargetUser], timespan: 20s, condition: {lt: 2}}
---
title: Password spraying
name: spray
correlation: {type: value_count, rules: [fail], group-by: [Host], timespan: 1m, condition: {field: User, gte: 3}}
---
title: Recon burst
name: recon
generate: true
correlation: {type: temporal, rules: [recon_a, recon_b], group-by: [Host], timespan: 30s}
---
title: Recon in order
name: recon_ordered
correlation: {type: temporal_ordered, rules: [recon_a, recon_b], group-by: [Host], timespan: 30s}
---
title: Recon A but not B
name: recon_only_a
correlation: {type: temporal, rules: [recon_a, recon_b], group-by: [Host], timespan: 30s, condition: recon_a and not recon_b}
---
title: Exfiltration volume
name: exfil
correlation: {type: value_sum, rules: [xfer], group-by: [User], timespan: 30s, condition: {field: Bytes, gt: 1000}}
---
title: Large average transfer
name: big_avg
correlation: {type: value_avg, rules: [xfer], group-by: [User], timespan: 30s, condition: {field: Bytes, gte: 500}}
---
title: Some failures per host
name: fail_range
correlation: {type: event_count, rules: [fail], group-by: [Host], timespan: 30s, condition: {gt: 2, lte: 4}}
";

fn compiled() -> Arc<CompiledCorrelations> {
    let set = RuleSet::from_text(Path::new("fixtures.yml"), RULES);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let compiled = CompiledCorrelations::compile(&set);
    assert!(compiled.rejected.is_empty(), "{:?}", compiled.rejected);
    assert_eq!(compiled.correlations.len(), 10);
    Arc::new(compiled)
}

fn config() -> CorrelationConfig {
    CorrelationConfig::new(Duration::from_secs(60), Duration::from_secs(90)).unwrap()
}

#[derive(Default)]
struct Output {
    alerts: Vec<Update<Alert>>,
    late: Vec<Update<Match>>,
    skipped: Vec<Update<(String, Match)>>,
    resident: Vec<Update<Alert>>,
    rule_alerts: Vec<Update<Alert>>,
}

fn drain<D>(rx: Receiver<Event<Epoch, Vec<Update<D>>>>) -> Vec<Update<D>> {
    rx.try_iter()
        .flat_map(|event| match event {
            Event::Messages(_, data) => data,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

/// Runs the dataflow on `workers` workers, worker `i % workers` feeding update `i`, sealing
/// every epoch in order and finally `end`.
fn run(workers: usize, feed: &[Update<Match>], end: Epoch, config: CorrelationConfig) -> Output {
    let mut feed = feed.to_vec();
    feed.sort_by_key(|(_, epoch, _)| *epoch);
    let feed = Arc::new(feed);
    let correlations = compiled();
    let (alerts_tx, alerts_rx) = channel();
    let (late_tx, late_rx) = channel();
    let (skipped_tx, skipped_rx) = channel();
    let (resident_tx, resident_rx) = channel();
    let (rule_tx, rule_rx) = channel();
    let body = move |worker: &mut timely::worker::Worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (alerts_tx, late_tx, skipped_tx, resident_tx, rule_tx) =
            (alerts_tx.clone(), late_tx.clone(), skipped_tx.clone(), resident_tx.clone(), rule_tx.clone());
        let correlations = Arc::clone(&correlations);
        let mut input = worker.dataflow::<Epoch, _, _>(move |scope| {
            let (input, matches) = scope.new_collection::<Match, isize>();
            let out = build_correlations(matches.clone(), Arc::clone(&correlations), config);
            out.alerts.inner.capture_into(alerts_tx);
            out.late.inner.capture_into(late_tx);
            out.skipped.inner.capture_into(skipped_tx);
            out.resident.inner.capture_into(resident_tx);
            rule_alerts(matches, correlations).inner.capture_into(rule_tx);
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
    };
    if workers == 1 {
        timely::execute_directly(body);
    } else {
        let guards = timely::execute(timely::Config::process(workers), body).expect("start workers");
        guards.join().into_iter().for_each(|result| result.expect("worker"));
    }
    Output {
        alerts: drain(alerts_rx),
        late: drain(late_rx),
        skipped: drain(skipped_rx),
        resident: drain(resident_rx),
        rule_alerts: drain(rule_rx),
    }
}

/// The collection accumulated over all updates at epochs `<= upto`, asserting that no element
/// is ever present more than once or less than zero times (checked epoch by epoch).
fn accumulate<D: Ord + Clone + std::fmt::Debug>(updates: &[Update<D>], upto: Epoch) -> BTreeSet<D> {
    let mut by_epoch: BTreeMap<Epoch, Vec<(D, isize)>> = BTreeMap::new();
    for (data, epoch, diff) in updates.iter().filter(|(_, epoch, _)| *epoch <= upto) {
        by_epoch.entry(*epoch).or_default().push((data.clone(), *diff));
    }
    let mut counts: BTreeMap<D, isize> = BTreeMap::new();
    for (epoch, changes) in by_epoch {
        for (data, diff) in changes {
            *counts.entry(data).or_insert(0) += diff;
        }
        counts.retain(|_, count| *count != 0);
        for (data, count) in &counts {
            assert_eq!(*count, 1, "at epoch {epoch}: {data:?} present {count} times");
        }
    }
    counts.into_keys().collect()
}

// ===== Brute force =====

/// (group values, input index, event time, event id, value).
type Row = (Vec<String>, usize, u64, EventId, Option<String>);

/// The alerts of every emitting correlation over `matches` (the accepted ones), by a naive
/// reading of the documented semantics: every anchor's window re-scanned from scratch.
fn brute_force(correlations: &CompiledCorrelations, matches: &[Match]) -> BTreeSet<Alert> {
    let mut all: Vec<Vec<Alert>> = Vec::new();
    let mut emitted = BTreeSet::new();
    for correlation in &correlations.correlations {
        // (input, match) pairs with their group values; skipped when a group field is missing.
        let mut rows: Vec<Row> = Vec::new();
        for (number, input) in correlation.inputs.iter().enumerate() {
            let source: Vec<Match> = match &input.source {
                InputSource::Rule(rule) => matches.iter().filter(|m| &m.rule_id == rule).cloned().collect(),
                InputSource::Correlation(inner) => all[*inner]
                    .iter()
                    .map(|a| Match {
                        rule_id: a.rule_id.clone(),
                        tenant: a.tenant.clone(),
                        event_id: a.id,
                        event_time_ms: a.fired_at_ms,
                        fields: a.group_key.clone(),
                    })
                    .collect(),
            };
            for m in source {
                let group: Option<Vec<String>> = input.group_fields.iter().map(|f| m.fields.get(f).cloned()).collect();
                let Some(group) = group else { continue };
                let value = if input.value_fields.is_empty() {
                    None
                } else {
                    let parts: Option<Vec<String>> = input.value_fields.iter().map(|f| m.fields.get(f).cloned()).collect();
                    let Some(parts) = parts else { continue };
                    let text = parts.join("\u{1f}");
                    let numeric_kind = matches!(correlation.kind, CorrelationKind::ValueSum | CorrelationKind::ValueAvg);
                    if numeric_kind && text.parse::<f64>().is_err() {
                        continue;
                    }
                    Some(text)
                };
                rows.push((group, number, m.event_time_ms, m.event_id, value));
            }
        }
        let groups: BTreeSet<Vec<String>> = rows.iter().map(|row| row.0.clone()).collect();
        let mut alerts = Vec::new();
        for group in groups {
            let mine: Vec<_> = rows.iter().filter(|row| row.0 == group).collect();
            let span = correlation.timespan_ms;
            // Does the condition hold over the rows with time in [from, to]?
            let holds = |from: u64, to: u64| -> bool {
                let inside: Vec<_> = mine.iter().filter(|r| r.2 >= from && r.2 <= to).collect();
                let ids: BTreeSet<EventId> = inside.iter().map(|r| r.3).collect();
                let seen: Vec<bool> = (0..correlation.inputs.len()).map(|i| inside.iter().any(|r| r.1 == i)).collect();
                let value = match correlation.kind {
                    CorrelationKind::EventCount => ids.len() as f64,
                    CorrelationKind::ValueCount => {
                        inside.iter().filter_map(|r| r.4.clone()).collect::<BTreeSet<_>>().len() as f64
                    }
                    CorrelationKind::ValueSum | CorrelationKind::ValueAvg => {
                        let numbers: Vec<f64> = inside.iter().filter_map(|r| r.4.as_ref()?.parse().ok()).collect();
                        let sum: f64 = numbers.iter().sum();
                        if correlation.kind == CorrelationKind::ValueSum {
                            sum
                        } else if numbers.is_empty() {
                            return false;
                        } else {
                            sum / numbers.len() as f64
                        }
                    }
                    CorrelationKind::Temporal => seen.iter().filter(|s| **s).count() as f64,
                    CorrelationKind::TemporalOrdered => {
                        // Try every sequence of rows, one per input, with non-decreasing times.
                        fn sequence(inside: &[&&Row], next: usize, n: usize, after: u64) -> bool {
                            next == n || inside.iter().any(|r| r.1 == next && r.2 >= after && sequence(inside, next + 1, n, r.2))
                        }
                        return sequence(&inside, 0, correlation.inputs.len(), 0);
                    }
                };
                match &correlation.condition {
                    Condition::AllRules => seen.iter().all(|s| *s),
                    Condition::Expr(expr) => {
                        fn eval(expr: &RuleExpr, seen: &[bool]) -> bool {
                            match expr {
                                RuleExpr::Seen(i) => seen[*i],
                                RuleExpr::And(items) => items.iter().all(|e| eval(e, seen)),
                                RuleExpr::Or(items) => items.iter().any(|e| eval(e, seen)),
                                RuleExpr::Not(inner) => !eval(inner, seen),
                            }
                        }
                        eval(expr, &seen)
                    }
                    Condition::Threshold(predicates) => predicates.iter().all(|(op, bound)| {
                        let bound = *bound as f64;
                        match op {
                            ConditionOperator::Lt => value < bound,
                            ConditionOperator::Lte => value <= bound,
                            ConditionOperator::Gt => value > bound,
                            ConditionOperator::Gte => value >= bound,
                            ConditionOperator::Eq => value == bound,
                            ConditionOperator::Neq => value != bound,
                        }
                    }),
                }
            };
            let anchors: BTreeSet<u64> = mine
                .iter()
                .filter(|r| correlation.kind != CorrelationKind::TemporalOrdered || r.1 == 0)
                .map(|r| r.2)
                .collect();
            let window_holds = |s: u64| holds(s, s + span - 1);
            for &s in &anchors {
                if !window_holds(s) {
                    continue;
                }
                if anchors.iter().any(|&p| p < s && s - p < span && window_holds(p)) {
                    continue;
                }
                let times: BTreeSet<u64> = mine.iter().map(|r| r.2).filter(|t| *t >= s && *t < s + span).collect();
                let fired_at = times.iter().copied().find(|&t| holds(s, t)).unwrap();
                let group_key: BTreeMap<String, String> = correlation.group_by.iter().cloned().zip(group.clone()).collect();
                // Conditions that more matches can only make true list the matches up to
                // `fired_at`; the others list the whole window.
                let listed_end = if lists_prefix(correlation) { fired_at + 1 } else { s + span };
                let inside: Vec<_> = mine.iter().filter(|r| r.2 >= s && r.2 < listed_end).collect();
                alerts.push(Alert {
                    id: Alert::correlation_id(DEFAULT_TENANT, &correlation.rule_id, &group_key, s),
                    tenant: Tenant::default(),
                    rule_id: correlation.rule_id.clone(),
                    rule_title: correlation.title.clone(),
                    kind: correlation.kind.as_str().into(),
                    level: correlation.level,
                    tags: correlation.tags.clone(),
                    group_key,
                    window_start_ms: s,
                    window_end_ms: s + span,
                    fired_at_ms: fired_at,
                    first_seen_ms: inside.iter().map(|r| r.2).min().unwrap(),
                    last_seen_ms: inside.iter().map(|r| r.2).max().unwrap(),
                    event_ids: inside.iter().map(|r| r.3).collect::<BTreeSet<_>>().into_iter().collect(),
                });
            }
        }
        if correlations.emits_correlation(correlation.index) {
            emitted.extend(alerts.iter().cloned());
        }
        all.push(alerts);
    }
    emitted
}

/// Whether adding matches can only make `correlation`'s condition true (`gt`/`gte` counts,
/// rule-presence conditions without `not`, `temporal_ordered` over all rules).
fn lists_prefix(correlation: &CompiledCorrelation) -> bool {
    fn negates(expr: &RuleExpr) -> bool {
        match expr {
            RuleExpr::Seen(_) => false,
            RuleExpr::And(items) | RuleExpr::Or(items) => items.iter().any(negates),
            RuleExpr::Not(_) => true,
        }
    }
    match (&correlation.condition, correlation.kind) {
        (Condition::AllRules, _) => true,
        (_, CorrelationKind::TemporalOrdered) => false,
        (Condition::Expr(expr), _) => !negates(expr),
        (Condition::Threshold(predicates), CorrelationKind::EventCount | CorrelationKind::ValueCount | CorrelationKind::Temporal) => {
            predicates.iter().all(|(op, _)| matches!(op, ConditionOperator::Gt | ConditionOperator::Gte))
        }
        (Condition::Threshold(_), _) => false,
    }
}

/// The matches the brute force sees at epoch `upto`: those ingested by then within lateness.
fn accepted_by(feed: &[Update<Match>], upto: Epoch, lateness_ms: u64) -> Vec<Match> {
    feed.iter()
        .filter(|(m, epoch, _)| *epoch <= upto && *epoch < m.event_time_ms + lateness_ms)
        .map(|(m, _, _)| m.clone())
        .collect()
}

// ===== Fixtures =====

const BASE: u64 = 1_700_000_000_000;

fn m(rule: &str, id: u128, time_ms: u64, fields: &[(&str, &str)]) -> Match {
    Match {
        rule_id: rule.into(),
        tenant: Tenant::default(),
        event_id: EventId(id),
        event_time_ms: time_ms,
        fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// Random matches over ten minutes: few users and hosts so that groups fill up; arrivals
/// mostly within the lateness of 60 s, some beyond, some from the "future"; some matches
/// lack a group-by field.
fn random_feed(seed: u64, count: usize) -> Vec<Update<Match>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = ["alice", "bob", "carol", "dave"];
    let hosts = ["h1", "h2", "h3"];
    let mut feed = Vec::new();
    for n in 0..count {
        // Whole seconds, so that window edges, lateness edges and equal times all occur.
        let time = BASE + rng.random_range(0..600u64) * 1_000;
        let user = users[rng.random_range(0..users.len())];
        let host = hosts[rng.random_range(0..hosts.len())];
        let drop_field = rng.random_range(0..20) == 0;
        let record = match rng.random_range(0..10) {
            0..=3 if drop_field => m("fail", n as u128, time, &[("Host", host)]),
            0..=3 => m("fail", n as u128, time, &[("User", user), ("Host", host)]),
            4 | 5 => m("ok", n as u128, time, &[("TargetUser", user)]),
            6 => {
                let bytes = rng.random_range(0..900u32).to_string();
                let fields: Vec<(&str, &str)> = if drop_field { vec![("User", user), ("Bytes", "n/a")] } else { vec![("User", user), ("Bytes", bytes.as_str())] };
                m("xfer", n as u128, time, &fields)
            }
            7 => m("recon_a", n as u128, time, &[("Host", host)]),
            8 => m("recon_b", n as u128, time, &[("Host", host)]),
            _ => m("loner", n as u128, time, &[]),
        };
        let delay: i64 = match rng.random_range(0..100) {
            0..=79 => rng.random_range(0..55_000),
            80..=91 => rng.random_range(60_000..200_000),
            _ => -rng.random_range(0..20_000),
        };
        let epoch = ((time as i64 + delay) as u64).div_ceil(1_000) * 1_000;
        feed.push((record, epoch, 1));
    }
    feed
}

fn end_of(feed: &[Update<Match>]) -> Epoch {
    feed.iter().map(|(_, epoch, _)| *epoch).max().unwrap_or(0) + 3_600_000
}

// ===== Tests =====

#[test]
fn shuffled_stream_matches_the_brute_force_at_every_epoch_on_one_and_two_workers() {
    let correlations = compiled();
    for seed in [1, 2, 3] {
        let feed = random_feed(seed, 500);
        let end = end_of(&feed);
        let expected_final = brute_force(&correlations, &accepted_by(&feed, end, 60_000));
        assert!(expected_final.len() > 20, "fixture produces alerts: {}", expected_final.len());
        let kinds: BTreeSet<&str> = expected_final.iter().map(|a| a.kind.as_str()).collect();
        assert!(kinds.len() >= 6, "every kind fires somewhere: {kinds:?}");
        // Between epochs: the store view equals the brute force over what has arrived.
        let epochs: BTreeSet<Epoch> = feed.iter().map(|(_, epoch, _)| *epoch).collect();
        let checkpoints: Vec<(Epoch, BTreeSet<Alert>)> = epochs
            .iter()
            .step_by(10)
            .map(|&epoch| (epoch, brute_force(&correlations, &accepted_by(&feed, epoch, 60_000))))
            .collect();
        let outputs: Vec<Output> = [1, 2].into_iter().map(|workers| run(workers, &feed, end, config())).collect();
        for (workers, out) in [1, 2].into_iter().zip(&outputs) {
            assert_eq!(accumulate(&out.alerts, end), expected_final, "seed {seed}, {workers} worker(s)");
            for (epoch, expected) in &checkpoints {
                assert_eq!(&accumulate(&out.alerts, *epoch), expected, "seed {seed}, {workers} worker(s), epoch {epoch}");
            }
            let late: usize = feed.iter().filter(|(m, epoch, _)| *epoch >= m.event_time_ms + 60_000).count();
            assert_eq!(out.late.len(), late);
            assert!(!out.skipped.is_empty());
        }
        // Replaying the same input gives the same alert ids (and the same alerts).
        let replay = run(1, &feed, end, config());
        assert_eq!(accumulate(&replay.alerts, end), accumulate(&outputs[0].alerts, end));
    }
}

fn alerts_of(out: &Output, rule: &str) -> Vec<(Epoch, u64, isize)> {
    let mut updates: Vec<(Epoch, u64, isize)> = out
        .alerts
        .iter()
        .filter(|(alert, _, _)| alert.rule_id == rule)
        .map(|(alert, epoch, diff)| (*epoch, alert.window_start_ms, *diff))
        .collect();
    updates.sort();
    updates
}

#[test]
fn a_late_match_that_completes_a_correlation_fires_it_when_it_arrives() {
    let u = [("User", "alice"), ("Host", "h1")];
    let feed = vec![
        (m("fail", 1, BASE, &u), BASE + 1_000, 1),
        (m("fail", 2, BASE + 5_000, &u), BASE + 6_000, 1),
        // The third failure happened at +10 s but arrives 40 s later (lateness is 60 s).
        (m("fail", 3, BASE + 10_000, &u), BASE + 50_000, 1),
    ];
    let out = run(1, &feed, BASE + 3_600_000, config());
    assert_eq!(alerts_of(&out, "many_fails"), [] as [(u64, u64, isize); 0], "not emitted: referenced, generate false");
    let resident: Vec<(Epoch, u64, isize)> = out
        .resident
        .iter()
        .filter(|(a, _, _)| a.rule_id == "many_fails")
        .map(|(a, epoch, diff)| (*epoch, a.window_start_ms, *diff))
        .collect();
    assert_eq!(resident[0], (BASE + 50_000, BASE, 1), "{resident:?}");
    // The same failure beyond the lateness changes nothing and is reported late.
    let mut too_late = feed.clone();
    too_late[2].1 = BASE + 70_000;
    let out = run(1, &too_late, BASE + 3_600_000, config());
    assert!(out.resident.iter().all(|(a, _, _)| a.rule_id != "many_fails"));
    assert_eq!(out.late.len(), 1);
    assert_eq!(out.late[0].0.event_id, EventId(3));
}

#[test]
fn a_late_match_that_invalidates_an_lt_condition_retracts_the_alert() {
    let t = [("TargetUser", "bob")];
    let feed = vec![
        (m("ok", 1, BASE, &t), BASE + 1_000, 1),
        // A second success 5 s later arrives 30 s late: [BASE, BASE + 20 s) now holds two.
        (m("ok", 2, BASE + 5_000, &t), BASE + 35_000, 1),
    ];
    let out = run(1, &feed, BASE + 3_600_000, config());
    assert_eq!(
        alerts_of(&out, "lonely_ok"),
        [
            (BASE + 1_000, BASE, 1),
            // Retracted; the window anchored at the late match (one success in it) now fires.
            (BASE + 35_000, BASE, -1),
            (BASE + 35_000, BASE + 5_000, 1),
        ]
    );
}

#[test]
fn a_late_earlier_first_step_moves_a_temporal_ordered_window() {
    let h = [("Host", "h1")];
    let feed = vec![
        (m("recon_a", 1, BASE + 10_000, &h), BASE + 11_000, 1),
        (m("recon_b", 2, BASE + 20_000, &h), BASE + 21_000, 1),
        // B-then-A out of order does not fire; a late A before B re-anchors the sequence.
        (m("recon_a", 3, BASE, &h), BASE + 40_000, 1),
    ];
    let out = run(1, &feed, BASE + 3_600_000, config());
    assert_eq!(
        alerts_of(&out, "recon_ordered"),
        [(BASE + 21_000, BASE + 10_000, 1), (BASE + 40_000, BASE, 1), (BASE + 40_000, BASE + 10_000, -1)]
    );
    // Order matters: B before A within the window is no sequence.
    let reversed = vec![
        (m("recon_b", 1, BASE, &h), BASE + 1_000, 1),
        (m("recon_a", 2, BASE + 5_000, &h), BASE + 6_000, 1),
    ];
    assert!(alerts_of(&run(1, &reversed, BASE + 3_600_000, config()), "recon_ordered").is_empty());
}

#[test]
fn correlation_of_correlation_and_generate() {
    let fails = |id: u128, at: u64| (m("fail", id, BASE + at, &[("User", "carol"), ("Host", "h2")]), BASE + at + 500, 1);
    let feed = vec![
        fails(1, 0),
        fails(2, 1_000),
        fails(3, 2_000),
        (m("ok", 4, BASE + 30_000, &[("TargetUser", "carol")]), BASE + 31_000, 1),
        (m("loner", 5, BASE + 1_000, &[]), BASE + 2_000, 1),
        (m("recon_a", 6, BASE + 1_000, &[("Host", "h2")]), BASE + 2_000, 1),
    ];
    let out = run(1, &feed, BASE + 3_600_000, config());
    let alerts = accumulate(&out.alerts, BASE + 3_600_000);
    let chain: Vec<&Alert> = alerts.iter().filter(|a| a.rule_id == "brute_then_ok").collect();
    assert_eq!(chain.len(), 1, "{alerts:?}");
    let chain = chain[0];
    assert_eq!(chain.group_key.get("Account").map(String::as_str), Some("carol"));
    // The inner alert fired at the third failure (+2 s), which anchors the outer window.
    assert_eq!(chain.window_start_ms, BASE + 2_000);
    assert_eq!(chain.fired_at_ms, BASE + 30_000);
    assert_eq!(chain.event_ids.len(), 2, "the inner alert's id and the success");
    assert!(chain.event_ids.contains(&EventId(4)));
    assert_eq!(chain.tags, ["attack.t1110"]);
    // generate: the inner correlation and the rules it references emit nothing of their own;
    // recon (generate: true) lets recon_a emit; unreferenced rules always emit.
    assert!(alerts.iter().all(|a| a.rule_id != "many_fails"));
    let rule_alerts = accumulate(&out.rule_alerts, BASE + 3_600_000);
    let emitting: BTreeSet<&str> = rule_alerts.iter().map(|a| a.rule_id.as_str()).collect();
    assert_eq!(emitting, BTreeSet::from(["loner", "recon_a"]));
    let loner = rule_alerts.iter().find(|a| a.rule_id == "loner").unwrap();
    assert_eq!(loner.id, Alert::rule_id_for_event("loner", EventId(5)));
    assert_eq!(loner.event_ids, [EventId(5)]);
}

#[test]
fn matches_without_a_group_by_field_are_skipped_not_grouped_under_null() {
    let no_user = [("Host", "h3")];
    let feed: Vec<Update<Match>> =
        (0..5).map(|n| (m("fail", n, BASE + n as u64 * 1_000, &no_user), BASE + n as u64 * 1_000 + 100, 1)).collect();
    let out = run(1, &feed, BASE + 3_600_000, config());
    let alerts = accumulate(&out.alerts, BASE + 3_600_000);
    assert!(alerts.iter().all(|a| a.rule_id != "many_fails"), "no null-user group");
    // Grouped by Host, which they have: spray needs distinct users, none here; fail_range
    // (3..=4 events) fires on the host.
    assert!(alerts.iter().any(|a| a.rule_id == "fail_range"));
    let skipped: BTreeSet<(String, u128)> = out.skipped.iter().map(|((rule, m), _, _)| (rule.clone(), m.event_id.0)).collect();
    assert!(skipped.contains(&("many_fails".to_string(), 0)));
    assert!(skipped.contains(&("spray".to_string(), 4)));
}

#[test]
fn resident_state_leaves_with_retention() {
    let feed = random_feed(9, 300);
    let last_event = feed.iter().map(|(m, _, _)| m.event_time_ms).max().unwrap();
    let end = end_of(&feed);
    let out = run(1, &feed, end, config());
    // Long after the last event plus the longest timespan chain and retention: nothing resident.
    assert!(accumulate(&out.resident, end).is_empty());
    // While the events are fresh, alerts are resident.
    assert!(!accumulate(&out.resident, last_event).is_empty());
    // The store view keeps every alert: expiry is not a retraction.
    assert_eq!(accumulate(&out.alerts, end), brute_force(&compiled(), &accepted_by(&feed, end, 60_000)));
}
