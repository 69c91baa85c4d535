//! Tenants in the correlation dataflow: groups never span tenants, alerts carry their tenant.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::input::Input;
use securewatch_detection::{CompiledCorrelations, Match, RuleSet};
use securewatch_dataflow::{build_correlations, rule_alerts, CorrelationConfig, Epoch};
use securewatch_schemas::{Alert, EventId, Tenant};
use timely::dataflow::operators::capture::{Capture, Event};

type Update<D> = (D, Epoch, isize);

const RULES: &str = "\
title: Failed login
name: fail
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Brute force
name: brute
generate: true
correlation: {type: event_count, rules: [fail], group-by: [User], timespan: 1m, condition: {gte: 3}}
";

const BASE: u64 = 1_700_000_000_000;

fn failure(tenant: &Tenant, id: u128, time_ms: u64) -> Match {
    Match {
        rule_id: "fail".into(),
        tenant: tenant.clone(),
        event_id: EventId(id),
        event_time_ms: time_ms,
        fields: BTreeMap::from([("User".to_string(), "alice".to_string())]),
    }
}

fn drain<D>(rx: Receiver<Event<Epoch, Vec<Update<D>>>>) -> Vec<Update<D>> {
    rx.try_iter()
        .flat_map(|event| match event {
            Event::Messages(_, data) => data,
            Event::Progress(_) => Vec::new(),
        })
        .collect()
}

/// The correlation alerts and the single-rule alerts of `feed`, all at one epoch, after the
/// input has ended.
fn run(feed: Vec<Match>) -> (Vec<Alert>, Vec<Alert>) {
    let set = RuleSet::from_text(Path::new("tenants.yml"), RULES);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    let correlations = Arc::new(CompiledCorrelations::compile(&set));
    let config = CorrelationConfig::new(Duration::from_secs(60), Duration::from_secs(90)).unwrap();
    let (alerts_tx, alerts_rx) = channel();
    let (rule_tx, rule_rx) = channel();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow::<Epoch, _, _>(|scope| {
            let (input, matches) = scope.new_collection::<Match, isize>();
            let out = build_correlations(matches.clone(), Arc::clone(&correlations), config);
            out.alerts.inner.capture_into(alerts_tx);
            rule_alerts(matches, correlations).inner.capture_into(rule_tx);
            input
        });
        input.advance_to(BASE + 1_000);
        for m in feed {
            input.insert(m);
        }
        input.advance_to(BASE + 3_600_000);
        input.flush();
    });
    let net = |updates: Vec<Update<Alert>>| {
        let mut counts: BTreeMap<Alert, isize> = BTreeMap::new();
        for (alert, _, diff) in updates {
            *counts.entry(alert).or_default() += diff;
        }
        counts.into_iter().filter(|(_, n)| *n != 0).map(|(alert, n)| {
            assert_eq!(n, 1, "{alert:?}");
            alert
        }).collect::<Vec<_>>()
    };
    (net(drain(alerts_rx)), net(drain(rule_rx)))
}

#[test]
fn two_tenants_alice_are_two_groups() {
    let default = Tenant::default();
    let acme = Tenant::parse("acme").unwrap();
    // Two failures each: four together would reach the threshold of three.
    let feed = vec![
        failure(&default, 1, BASE),
        failure(&default, 2, BASE + 1_000),
        failure(&acme, 3, BASE + 2_000),
        failure(&acme, 4, BASE + 3_000),
    ];
    let (correlated, single) = run(feed.clone());
    assert!(correlated.is_empty(), "two tenants' alice were joined: {correlated:?}");
    assert_eq!(single.len(), 4);
    for alert in &single {
        let expected = if alert.event_ids[0].0 <= 2 { &default } else { &acme };
        assert_eq!(&alert.tenant, expected, "{alert:?}");
    }

    // A third failure of acme's alice fires for acme only, listing acme's events only.
    let mut more = feed;
    more.push(failure(&acme, 5, BASE + 4_000));
    let (correlated, _) = run(more);
    assert_eq!(correlated.len(), 1, "{correlated:?}");
    let alert = &correlated[0];
    assert_eq!(alert.tenant, acme);
    assert_eq!(alert.event_ids, vec![EventId(3), EventId(4), EventId(5)]);
    assert_eq!(alert.group_key["User"], "alice");
    assert_eq!(alert.id, Alert::correlation_id("acme", "brute", &alert.group_key, alert.window_start_ms));
    assert_ne!(alert.id, Alert::correlation_id("default", "brute", &alert.group_key, alert.window_start_ms));
}
