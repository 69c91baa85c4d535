//! Unit tests of correlation compilation and the per-group window evaluation.

use std::path::Path;

use super::*;
use crate::load::RuleSet;

const RULES: &str = "\
title: Failed login
name: failed_login
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: Successful login
id: 00000000-0000-0000-0000-000000000002
name: successful_login
level: low
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624}
    condition: selection
---
title: Unrelated
id: 00000000-0000-0000-0000-000000000003
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 1}
    condition: selection
---
title: Many failed logins
name: many_failed
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 10s
    condition: {gte: 3}
---
title: Brute force then success
id: c0000000-0000-0000-0000-000000000001
level: high
tags: [attack.t1110]
correlation:
    type: temporal_ordered
    rules: [many_failed, successful_login]
    group-by: [Account]
    timespan: 1m
    aliases:
        Account:
            many_failed: User
            successful_login: TargetUserName
---
title: Percentile
correlation:
    type: value_percentile
    rules: [failed_login]
    group-by: [User]
    timespan: 1m
    condition: {field: x, gte: 3}
";

fn compiled() -> CompiledCorrelations {
    let set = RuleSet::from_text(Path::new("c.yml"), RULES);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    CompiledCorrelations::compile(&set)
}

fn entry(time_ms: u64, id: u128, input: usize) -> Entry {
    Entry { time_ms, event_id: EventId(id), input, value: None }
}

#[test]
fn compiles_chains_aliases_and_generate_and_rejects_unsupported_types() {
    let c = compiled();
    assert_eq!(c.correlations.len(), 2);
    assert_eq!(c.rejected.len(), 1);
    assert!(c.rejected[0].reason.contains("value_percentile"), "{:?}", c.rejected);
    let chain = &c.correlations[1];
    assert_eq!(chain.depth, 1);
    assert_eq!(chain.settle_ms, 10_000);
    assert_eq!(chain.condition, Condition::AllRules);
    assert_eq!(chain.inputs[0].source, InputSource::Correlation(0));
    assert_eq!(chain.inputs[0].group_fields, ["User"]);
    assert_eq!(chain.inputs[1].rule_id, "00000000-0000-0000-0000-000000000002");
    assert_eq!(chain.inputs[1].group_fields, ["TargetUserName"]);
    assert_eq!(c.routes("failed_login"), [(0, 0)]);
    assert_eq!(c.routes("many_failed"), [(1, 0)]);
    // Referenced without `generate: true`: no own alerts; the unreferenced rule emits.
    assert!(!c.emits_rule("failed_login"));
    assert!(!c.emits_rule("00000000-0000-0000-0000-000000000002"));
    assert!(c.emits_rule("00000000-0000-0000-0000-000000000003"));
    assert!(!c.emits_correlation(0));
    assert!(c.emits_correlation(1));
    let needed: Vec<&str> = c.needed_fields("00000000-0000-0000-0000-000000000002").collect();
    assert_eq!(needed, ["TargetUserName"]);
}

#[test]
fn window_edges_are_start_inclusive_end_exclusive() {
    let c = compiled();
    let count = &c.correlations[0];
    // Three failures spanning exactly 10 s: the third is outside [0, 10 s).
    assert!(count.evaluate(&["u".into()], &[entry(0, 1, 0), entry(5_000, 2, 0), entry(10_000, 3, 0)]).is_empty());
    let alerts = count.evaluate(&["u".into()], &[entry(0, 1, 0), entry(5_000, 2, 0), entry(9_999, 3, 0)]);
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!((alert.window_start_ms, alert.window_end_ms, alert.fired_at_ms), (0, 10_000, 9_999));
    assert_eq!((alert.first_seen_ms, alert.last_seen_ms), (0, 9_999));
    assert_eq!(alert.event_ids, [EventId(1), EventId(2), EventId(3)]);
    assert_eq!(alert.group_key.get("User").map(String::as_str), Some("u"));
}

#[test]
fn suppression_one_alert_while_the_condition_keeps_holding() {
    let c = compiled();
    let count = &c.correlations[0];
    // A failure every second for a minute: the condition holds at every anchor up to 48 s,
    // and each holding anchor has a holding one less than 10 s before it, so one alert.
    let burst: Vec<Entry> = (0..60).map(|n| entry(n * 1_000, u128::from(n), 0)).collect();
    assert_eq!(count.evaluate(&["u".into()], &burst).len(), 1);
    // A second burst 30 s after the first ends fires again.
    let mut two = burst.clone();
    two.extend((0..5).map(|n| entry(90_000 + n * 1_000, 1_000 + u128::from(n), 0)));
    let alerts = count.evaluate(&["u".into()], &two);
    assert_eq!(alerts.iter().map(|a| a.window_start_ms).collect::<Vec<_>>(), [0, 90_000]);
}

#[test]
fn temporal_ordered_allows_equal_times_and_needs_the_order() {
    let c = compiled();
    let ordered = &c.correlations[1];
    assert_eq!(ordered.evaluate(&["u".into()], &[entry(5, 1, 0), entry(5, 2, 1)]).len(), 1);
    assert!(ordered.evaluate(&["u".into()], &[entry(4, 2, 1), entry(5, 1, 0)]).is_empty());
}

#[test]
fn missing_group_field_is_skipped() {
    let c = compiled();
    let m = Match { rule_id: "failed_login".into(), tenant: Default::default(), event_id: EventId(1), event_time_ms: 0, fields: BTreeMap::new() };
    assert_eq!(c.correlations[0].entry(0, &m), Err(Skip::MissingGroupField));
}

#[test]
fn definition_keys_survive_reordering_and_change_with_the_definition() {
    let keys = |text: &str| -> BTreeMap<String, u64> {
        let set = RuleSet::from_text(Path::new("rules.yml"), text);
        CompiledCorrelations::compile(&set).correlations.iter().map(|c| (c.rule_id.clone(), c.key)).collect()
    };
    let original = keys(RULES);
    assert!(original.len() >= 2, "{original:?}");
    // Another correlation ahead of them (they compile at other indexes): the same keys.
    let other = "title: Other\nname: other\ncorrelation:\n    type: event_count\n    rules: [failed_login]\n    timespan: 5s\n    condition: {gte: 9}\n---\n";
    let shifted = keys(&RULES.replacen("title: Many failed logins", &format!("{other}title: Many failed logins"), 1));
    assert_eq!(shifted.len(), original.len() + 1);
    for (rule, key) in &original {
        assert_eq!(shifted.get(rule), Some(key), "{rule}");
    }
    // A changed timespan is a new definition; the others keep their keys.
    let changed = keys(&RULES.replace("timespan: 10s", "timespan: 20s"));
    assert_ne!(changed.get("many_failed"), original.get("many_failed"));
    // ... and so is every chain over it, whose input changed.
    let chain = "c0000000-0000-0000-0000-000000000001";
    assert_ne!(changed.get(chain), original.get(chain));
}

#[test]
fn chains_deeper_than_the_limit_are_rejected_with_the_reason() {
    let mut text = String::from(
        "title: base\nname: level_base\nlogsource: {product: linux}\ndetection:\n    selection: {a: 1}\n    condition: selection\n",
    );
    let mut previous = "level_base".to_string();
    for depth in 0..=MAX_CHAIN_DEPTH + 1 {
        let name = format!("level_{depth}");
        text.push_str(&format!(
            "---\ntitle: {name}\nname: {name}\ncorrelation:\n    type: event_count\n    rules: [{previous}]\n    timespan: 1m\n    condition: {{gte: 1}}\n"
        ));
        previous = name;
    }
    let compiled = CompiledCorrelations::compile(&RuleSet::from_text(Path::new("rules.yml"), &text));
    assert_eq!(compiled.correlations.len(), MAX_CHAIN_DEPTH + 1);
    assert_eq!(compiled.rejected.len(), 1, "{:?}", compiled.rejected);
    assert!(compiled.rejected[0].reason.contains("deeper than"), "{:?}", compiled.rejected);
}
