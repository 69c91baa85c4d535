//! Tests of the detector: modifiers and conditions through rsigma, routing, pipelines, filters.

use std::path::Path;

use chrono::Utc;
use securewatch_schemas::{flatten_json, EventId, Fields, Severity, Source};
use serde_json::json;

use super::*;

fn json_event(kind: SourceKind, value: serde_json::Value) -> Event {
    let mut fields = Fields::new();
    let message = value.get("msg").and_then(|m| m.as_str()).unwrap_or_default().to_string();
    flatten_json(String::new(), value, &mut fields);
    Event {
        tenant: Default::default(),
        id: EventId(7),
        time: Utc::now(),
        received: Utc::now(),
        source: Source { kind, name: "test".into(), peer: None },
        host: Some("host-1".into()),
        severity: Severity::Informational,
        category: None,
        message,
        fields,
        raw: None,
    }
}

fn detector(rules: &str, pipelines: &Pipelines) -> Detector {
    let set = RuleSet::from_text(Path::new("test.yml"), rules);
    assert!(set.rejected.is_empty(), "{:?}", set.rejected);
    Detector::compile(&set, pipelines)
}

fn titles(detector: &Detector, event: &Event, routing: Routing<'_>) -> Vec<String> {
    detector.matches_with(event, routing).map(|m| m.rule.title.clone()).collect()
}

/// One rule per modifier family; `title` names what it checks.
const MODIFIER_RULES: &str = r#"
title: contains
detection: {s: {CommandLine|contains: 'WHOAMI'}, condition: s}
logsource: {product: test}
---
title: startswith endswith
detection: {s: {Image|startswith: 'c:\windows\', Image|endswith: '\cmd.exe'}, condition: s}
logsource: {product: test}
---
title: contains all
detection: {s: {CommandLine|contains|all: ['/c', 'whoami']}, condition: s}
logsource: {product: test}
---
title: regex
detection: {s: {CommandLine|re: 'who[a-z]+i$'}, condition: s}
logsource: {product: test}
---
title: cidr
detection: {s: {SourceIp|cidr: '10.0.0.0/8'}, condition: s}
logsource: {product: test}
---
title: windash
detection: {s: {CommandLine|windash|contains: ' -c '}, condition: s}
logsource: {product: test}
---
title: base64offset
detection: {s: {Encoded|base64offset|contains: 'whoami'}, condition: s}
logsource: {product: test}
---
title: exists
detection: {s: {ParentImage|exists: false}, condition: s}
logsource: {product: test}
---
title: cased
detection: {s: {User|cased: 'Admin'}, condition: s}
logsource: {product: test}
---
title: numeric
detection: {s: {Count|gte: 5, Count|lt: 10}, condition: s}
logsource: {product: test}
---
title: neq
detection: {s: {User|neq: 'system'}, condition: s}
logsource: {product: test}
---
title: fieldref
detection: {s: {TargetUser|fieldref: User}, condition: s}
logsource: {product: test}
---
title: wildcard
# `\*` would be a literal star: a backslash before a wildcard is written `\\*`.
detection: {s: {Image: 'C:\Windows\\*\cmd.?xe'}, condition: s}
logsource: {product: test}
---
title: 'null'
detection: {s: {Missing: null}, condition: s}
logsource: {product: test}
---
title: keywords
detection: {k: ['*definitely evil*'], condition: k}
logsource: {product: test}
"#;

#[test]
fn every_modifier_family_matches_and_fails_as_sigma_says() {
    let detector = detector(MODIFIER_RULES, &Pipelines::none());
    assert!(detector.rejected().is_empty(), "{:?}", detector.rejected());
    let hit = json_event(
        SourceKind::File,
        json!({
            "CommandLine": "cmd.exe /c whoami",
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "SourceIp": "10.1.2.3",
            "Encoded": "ZWNobyB3aG9hbWkgbm93",
            "User": "Admin",
            "TargetUser": "Admin",
            "Count": 7,
            "msg": "a definitely evil line"
        }),
    );
    let source = EventLogSource::product("test");
    let mut hits = titles(&detector, &hit, Routing::Given(&source));
    hits.sort();
    let mut expected = vec![
        "contains", "startswith endswith", "contains all", "regex", "cidr", "base64offset", "exists",
        "cased", "numeric", "neq", "fieldref", "wildcard", "null", "keywords", "windash",
    ];
    expected.sort();
    assert_eq!(hits, expected);

    let miss = json_event(
        SourceKind::File,
        json!({
            "CommandLine": "powershell -c Get-Process",
            "Image": "D:\\tools\\cmd.exe",
            "ParentImage": "explorer.exe",
            "SourceIp": "192.168.1.1",
            "Encoded": "aGVsbG8=",
            "User": "admin",
            "TargetUser": "root",
            "Count": 10,
            "Missing": "present"
        }),
    );
    // windash: ' -c ' also matches ' /c ' (above), ' –c ', ...; here the plain dash form.
    assert_eq!(titles(&detector, &miss, Routing::Given(&source)), ["windash", "neq"]);
    let windash = json_event(SourceKind::File, json!({"CommandLine": "powershell /c x", "User": "system"}));
    assert!(titles(&detector, &windash, Routing::Given(&source)).contains(&"windash".to_string()));
}

#[test]
fn condition_grammar() {
    let rules = r#"
title: grammar
logsource: {product: test}
detection:
    sel_a: {A: 1}
    sel_b: {B: 2}
    filter_x: {X: bad}
    condition: (1 of sel_* and not filter_x) or all of them
"#;
    let detector = detector(rules, &Pipelines::none());
    let source = EventLogSource::product("test");
    let matches = |value| {
        let event = json_event(SourceKind::File, value);
        detector.matches_with(&event, Routing::Given(&source)).count()
    };
    assert_eq!(matches(json!({"A": 1})), 1);
    assert_eq!(matches(json!({"B": 2, "X": "good"})), 1);
    assert_eq!(matches(json!({"A": 1, "X": "bad"})), 0);
    assert_eq!(matches(json!({"A": 1, "B": 2, "X": "bad"})), 1, "all of them");
    assert_eq!(matches(json!({"C": 3})), 0);
}

#[test]
fn routing_keeps_rules_to_their_log_source() {
    let rules = r#"
title: windows proc
logsource: {product: windows, category: process_creation}
detection: {k: ['*marker*'], condition: k}
---
title: linux sshd
logsource: {product: linux, service: sshd}
detection: {k: ['*marker*'], condition: k}
---
title: everywhere
logsource: {}
detection: {k: ['*marker*'], condition: k}
"#;
    let detector = detector(rules, &Pipelines::none());
    let mut sshd = json_event(SourceKind::Syslog, json!({"appname": "sshd", "msg": "marker"}));
    sshd.message = "marker".into();
    assert_eq!(titles(&detector, &sshd, Routing::Derived), ["linux sshd", "everywhere"]);
    let sysmon = json_event(
        SourceKind::File,
        json!({"Event": {"System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1}}, "msg": "marker"}),
    );
    assert_eq!(titles(&detector, &sysmon, Routing::Derived), ["windows proc", "everywhere"]);
    assert_eq!(titles(&detector, &sysmon, Routing::All), ["windows proc", "linux sshd", "everywhere"]);
}

const PROCESS_RULE: &str = r#"
title: Whoami via cmd
id: 00000000-aaaa-4000-8000-000000000001
logsource: {product: windows, category: process_creation}
detection:
    selection:
        Image|endswith: '\whoami.exe'
        ParentImage|endswith: '\cmd.exe'
        EventID: 1
    condition: selection
level: medium
tags: [attack.discovery, attack.t1033]
"#;

#[test]
fn wazuh_builtin_pipeline_maps_windows_fields_to_wazuh_names() {
    let alert = json!({
        "rule": {"id": "92000", "level": 4, "groups": ["windows", "sysmon"]},
        "decoder": {"name": "windows_eventchannel"},
        "data": {"win": {
            "system": {"channel": "Microsoft-Windows-Sysmon/Operational", "eventID": "1"},
            "eventdata": {"image": "C:\\\\Windows\\\\System32\\\\whoami.exe", "parentImage": "C:\\\\Windows\\\\System32\\\\cmd.exe"}
        }}
    });
    let event = json_event(SourceKind::Wazuh, alert);
    let plain = detector(PROCESS_RULE, &Pipelines::none());
    assert_eq!(plain.matches(&event).count(), 0, "without the pipeline the names differ");
    let wazuh = detector(PROCESS_RULE, &Pipelines::for_source(SourceKind::Wazuh));
    let matched: Vec<RuleMatch<'_>> = wazuh.matches(&event).collect();
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].rule.id.as_deref(), Some("00000000-aaaa-4000-8000-000000000001"));
    assert_eq!(matched[0].rule.tags, ["attack.discovery", "attack.t1033"]);
    assert_eq!(matched[0].selections, ["selection"]);
}

#[test]
fn evtx_json_pipeline_maps_to_event_eventdata() {
    let record = json!({"Event": {
        "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "ParentImage": "C:\\Windows\\System32\\cmd.exe"}
    }});
    let event = json_event(SourceKind::File, record);
    let detector = detector(PROCESS_RULE, &Pipelines::builtin("evtx_json").unwrap());
    assert_eq!(detector.matches(&event).count(), 1);
}

#[test]
fn hec_pipeline_accepts_event_code() {
    let mut event = json_event(
        SourceKind::Hec,
        json!({"EventCode": 1, "Image": "C:\\Windows\\System32\\whoami.exe", "ParentImage": "C:\\Windows\\System32\\cmd.exe"}),
    );
    event.category = Some("XmlWinEventLog:Microsoft-Windows-Sysmon/Operational".into());
    let detector = detector(PROCESS_RULE, &Pipelines::for_source(SourceKind::Hec));
    assert_eq!(detector.matches(&event).count(), 1);
}

#[test]
fn user_pipeline_with_field_mapping_and_logsource_condition() {
    let mut pipelines = Pipelines::none();
    pipelines
        .add_yaml(
            "ecs.yml",
            r#"
name: ecs-ish
transformations:
  - type: field_name_mapping
    mapping: {Image: process.executable, ParentImage: process.parent.executable}
    rule_conditions: [{type: logsource, product: windows}]
"#,
        )
        .unwrap();
    let event = json_event(
        SourceKind::File,
        json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
               "process": {"executable": "C:\\x\\whoami.exe", "parent": {"executable": "C:\\x\\cmd.exe"}}}),
    );
    let detector = detector(PROCESS_RULE, &pipelines);
    assert_eq!(detector.matches(&event).count(), 1);
}

#[test]
fn filters_suppress_matches_of_the_rules_they_name() {
    let text = format!(
        "{PROCESS_RULE}---\n{}",
        r#"
title: Ignore the build server
filter:
    rules: [00000000-aaaa-4000-8000-000000000001]
    selection:
        Computer: build-01
    condition: not selection
logsource: {product: windows, category: process_creation}
"#
    );
    let detector = detector(&text, &Pipelines::none());
    assert_eq!(detector.rules()[0].filters, ["Ignore the build server"]);
    let event = |computer: &str| {
        json_event(
            SourceKind::File,
            json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": computer,
                   "Image": "C:\\x\\whoami.exe", "ParentImage": "C:\\x\\cmd.exe"}),
        )
    };
    assert_eq!(detector.matches(&event("build-01")).count(), 0);
    assert_eq!(detector.matches(&event("desk-07")).count(), 1);
}

#[test]
fn unresolved_expand_placeholder_is_a_rejection_and_a_pipeline_can_resolve_it() {
    let rule = r#"
title: Admin logon
id: expand-1
logsource: {product: windows, service: security}
detection:
    selection: {TargetUserName|expand: '%Admins%'}
    condition: selection
"#;
    let detector = detector(rule, &Pipelines::none());
    assert!(detector.rules().is_empty());
    assert_eq!(detector.rejected().len(), 1);
    assert_eq!(detector.rejected()[0].rule_id.as_deref(), Some("expand-1"));
    assert!(detector.rejected()[0].reason.contains("expand"), "{:?}", detector.rejected());

    let mut pipelines = Pipelines::none();
    pipelines
        .add_yaml(
            "vars.yml",
            "name: vars\nvars:\n  Admins: [alice, bob]\ntransformations:\n  - type: value_placeholders\n",
        )
        .unwrap();
    let set = RuleSet::from_text(Path::new("t.yml"), rule);
    let resolved = Detector::compile(&set, &pipelines);
    assert!(resolved.rejected().is_empty(), "{:?}", resolved.rejected());
    let source = EventLogSource::parse("product=windows,service=security").unwrap();
    let event = json_event(SourceKind::File, json!({"TargetUserName": "Bob"}));
    assert_eq!(resolved.matches_with(&event, Routing::Given(&source)).count(), 1);
    let other = json_event(SourceKind::File, json!({"TargetUserName": "%Admins%"}));
    assert_eq!(resolved.matches_with(&other, Routing::Given(&source)).count(), 0);
}

#[test]
fn invalid_regex_is_a_rejection_not_a_runtime_surprise() {
    let rule = "title: bad re\nid: re-1\nlogsource: {product: test}\ndetection: {s: {A|re: '(unclosed'}, condition: s}\n";
    let detector = detector(rule, &Pipelines::none());
    assert!(detector.rules().is_empty());
    assert_eq!(detector.rejected()[0].rule_id.as_deref(), Some("re-1"));
}

#[test]
fn detectors_are_send_sync_and_source_detectors_dispatch_by_kind() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Detector>();
    assert_send_sync::<SourceDetectors>();

    let set = RuleSet::from_text(Path::new("t.yml"), PROCESS_RULE);
    let detectors = SourceDetectors::compile(&set, &Pipelines::none());
    let wazuh = json_event(
        SourceKind::Wazuh,
        json!({"data": {"win": {
            "system": {"channel": "Microsoft-Windows-Sysmon/Operational", "eventID": "1"},
            "eventdata": {"image": "C:\\\\w\\\\whoami.exe", "parentImage": "C:\\\\w\\\\cmd.exe"}}}}),
    );
    assert_eq!(detectors.matches(&wazuh).count(), 1);
    assert!(detectors.rejected().is_empty());
}

/// Rules whose candidate-index witnesses exercise each way the event view resolves a field:
/// exact values, substrings, presence, keywords, the event's own attributes, Wazuh's names for
/// Windows fields (through the built-in pipeline) and evtx `UserData`.
const INDEXED_RULES: &str = r#"
title: exact event id
logsource: {product: windows}
detection: {s: {EventID: 4625}, condition: s}
---
title: host attribute
logsource: {product: windows}
detection: {s: {host: 'DC-01'}, condition: s}
---
title: message attribute
detection: {s: {message|contains: 'failed password'}, condition: s}
---
title: negated
logsource: {product: windows}
detection: {s: {EventID: 4625}, f: {TargetUserName: 'svc'}, condition: s and not f}
---
title: user data
logsource: {product: windows}
detection: {s: {Event.EventData.Param1|contains: 'wmi'}, condition: s}
---
title: keyword
detection: {k: ['mimikatz'], condition: k}
"#;

#[test]
fn the_candidate_index_finds_exactly_what_evaluating_every_routed_rule_finds() {
    let rules = format!("{MODIFIER_RULES}---{PROCESS_RULE}---{INDEXED_RULES}");
    let events = [
        json_event(SourceKind::File, json!({"CommandLine": "cmd.exe /c whoami", "Image": "C:\\Windows\\System32\\cmd.exe", "SourceIp": "10.1.2.3", "User": "Admin", "TargetUser": "Admin", "Count": 7, "msg": "a definitely evil line"})),
        json_event(SourceKind::File, json!({"CommandLine": "powershell -c Get-Process", "ParentImage": "explorer.exe", "Count": "12", "Missing": null})),
        json_event(SourceKind::File, json!({"Channel": "Security", "EventID": 4625, "TargetUserName": "svc", "msg": "Failed password for root"})),
        json_event(SourceKind::File, json!({"Channel": "Security", "EventID": "4625", "TargetUserName": "bob", "Tool": "MIMIKATZ.exe"})),
        json_event(SourceKind::File, json!({"Event": {"System": {"Channel": "Microsoft-Windows-WMI-Activity/Operational", "EventID": 5858}, "UserData": {"Operation_ClientFailure": {"Param1": "WMI query"}}}})),
        json_event(SourceKind::File, json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe", "ParentImage": "C:\\Windows\\System32\\cmd.exe"})),
        json_event(SourceKind::Wazuh, json!({"data": {"win": {
            "system": {"channel": "Microsoft-Windows-Sysmon/Operational", "eventID": "1"},
            "eventdata": {"image": "C:\\\\Windows\\\\System32\\\\whoami.exe", "parentImage": "C:\\\\Windows\\\\System32\\\\cmd.exe"}
        }}})),
    ];
    let mut dc = json_event(SourceKind::File, json!({"Channel": "Security", "EventID": 4624}));
    dc.host = Some("DC-01".into());
    let test_source = EventLogSource::product("test");
    let windows = EventLogSource::product("windows");
    let mut compared = 0;
    let mut fired = std::collections::BTreeSet::new();
    for pipelines in [Pipelines::none(), Pipelines::for_source(SourceKind::Wazuh)] {
        let detector = detector(&rules, &pipelines);
        for event in events.iter().chain([&dc]) {
            for routing in [Routing::Derived, Routing::All, Routing::Given(&test_source), Routing::Given(&windows)] {
                let indexed: Vec<(usize, Vec<String>)> =
                    detector.matches_with(event, routing).map(|found| (found.index, found.selections)).collect();
                let full: Vec<(usize, Vec<String>)> =
                    detector.matches_full_scan(event, routing).into_iter().map(|found| (found.index, found.selections)).collect();
                assert_eq!(indexed, full, "{routing:?} {event:?}");
                compared += 1;
                fired.extend(detector.matches_with(event, routing).map(|found| found.rule.title.clone()));
            }
        }
    }
    assert_eq!(compared, 64);
    // Each way of resolving a field fired somewhere, so no comparison was between empty lists.
    for title in ["exact event id", "host attribute", "message attribute", "negated", "user data", "keyword", "Whoami via cmd", "contains", "cidr"] {
        assert!(fired.contains(title), "{title} never fired: {fired:?}");
    }
}
