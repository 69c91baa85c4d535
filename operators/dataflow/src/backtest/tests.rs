//! The backtest worker: the same alerts whatever the chunk sizes, windows across chunks.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use securewatch_detection::{CompiledCorrelations, Pipelines, RuleSet, SourceDetectors};
use securewatch_parse::normalise;
use securewatch_schemas::{Alert, Event, RawRecord, RecordMeta, SourceKind};

use super::Backtest;
use crate::correlate::CorrelationConfig;
use crate::engine::Rules;

const RULES: &str = r#"title: any message
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
title: seven
id: seven
level: high
logsource:
  product: linux
  service: syslog
detection:
  selection:
    message|endswith: '7'
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

const BASE_MS: u64 = 1_795_255_200_000;

fn event(index: usize, time_ms: u64, host: &str) -> Event {
    let time = Utc.timestamp_millis_opt(time_ms as i64).unwrap();
    let body = format!("<14>1 {} {host} app - - - message {index}", time.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
    let record = RawRecord {
        tenant: Default::default(),
        kind: SourceKind::Syslog,
        source_name: Arc::from("syslog"),
        peer: None,
        received: time,
        body: body.into_bytes(),
        meta: RecordMeta::None,
    };
    normalise(&record).unwrap()
}

fn rules() -> Arc<Rules> {
    let set = RuleSet::from_text(std::path::Path::new("rules.yml"), RULES);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    Arc::new(Rules { detectors: SourceDetectors::compile(&set, &Pipelines::none()), correlations: Arc::new(CompiledCorrelations::compile(&set)) })
}

/// Runs the events in chunks of `size`; answers the net alerts, the matches and the events.
fn backtest(events: &[Event], size: usize) -> (BTreeMap<Alert, isize>, BTreeMap<String, u64>, u64, usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut run = Backtest::start(rules(), CorrelationConfig::default(), || {}).unwrap();
        let mut steps = Vec::new();
        for chunk in events.chunks(size) {
            run.feed(chunk.to_vec()).await.unwrap();
            steps.extend(run.steps());
        }
        steps.extend(run.finish().await.unwrap());
        let (mut alerts, mut matches, mut read, mut evidence) = (BTreeMap::new(), BTreeMap::new(), 0, 0);
        for step in steps {
            read += step.events;
            evidence += step.evidence.len();
            for (rule, count) in step.matches {
                *matches.entry(rule).or_insert(0) += count;
            }
            for (alert, diff) in step.alerts {
                *alerts.entry(alert).or_insert(0) += diff;
            }
        }
        alerts.retain(|_, diff| *diff != 0);
        (alerts, matches, read, evidence)
    })
}

#[test]
fn chunk_sizes_change_nothing_and_windows_span_chunks() {
    // host a: bursts every 20 s for 3 minutes; host b: one event a minute. Sorted by time.
    let mut events = Vec::new();
    for index in 0..10 {
        events.push(event(index, BASE_MS + index as u64 * 20_000, "a"));
    }
    for index in 10..14 {
        events.push(event(index, BASE_MS + (index as u64 - 10) * 60_000 + 5_000, "b"));
    }
    events.sort_by_key(|event| event.time);
    let (whole, matches, read, evidence) = backtest(&events, events.len());
    assert_eq!(read, 14);
    assert_eq!(evidence, 14, "every event matches the base rule");
    assert_eq!(matches.get("base"), Some(&14));
    assert_eq!(matches.get("seven"), Some(&1), "message 7 only");
    let burst: Vec<&Alert> = whole.keys().filter(|alert| alert.rule_id == "burst").collect();
    assert!(!burst.is_empty() && burst.iter().all(|alert| alert.group_key["host"] == "a"), "{burst:?}");
    assert!(whole.values().all(|diff| *diff == 1));
    assert_eq!(whole.keys().filter(|alert| alert.kind == "rule").count(), 1, "only `seven` emits its own alerts");
    for size in [1, 2, 3, 5] {
        let (chunked, _, _, _) = backtest(&events, size);
        assert_eq!(chunked, whole, "chunks of {size}");
    }
}
