//! Expectations of a backtest (rsigma's `rule backtest` format) and their JUnit report: per
//! rule `at_least` / `at_most` / `exactly` alerts, and what to do with rules that raised alerts
//! without an expectation (`defaults.unexpected_detections`: `warn`, `fail` or `ignore`).
//!
//! ```yaml
//! defaults:
//!   unexpected_detections: warn
//! expectations:
//!   - rule: 5d1c8a4e-0000-4000-8000-000000000012   # id, name or title
//!     at_least: 1
//!   - rule: Root session opened
//!     exactly: 0
//! ```
//!
//! A rule's count is its alerts; for a detection rule that raises none of its own (a
//! correlation consumes it), its matches.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;

/// The expectations file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Defaults for every expectation.
    #[serde(default)]
    pub defaults: Defaults,
    /// Per rule.
    #[serde(default)]
    pub expectations: Vec<Expectation>,
}

/// `defaults:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Rules with alerts but no expectation.
    #[serde(default)]
    pub unexpected_detections: Unexpected,
}

/// What a rule that raised alerts without an expectation does to the verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unexpected {
    /// Fails the verdict (and is a JUnit failure).
    Fail,
    /// Is reported; the verdict stands.
    #[default]
    Warn,
    /// Is not reported.
    Ignore,
}

/// One rule's expected count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The rule's id, name or title.
    pub rule: String,
    /// At least this many.
    pub at_least: Option<u64>,
    /// At most this many.
    pub at_most: Option<u64>,
    /// Exactly this many.
    pub exactly: Option<u64>,
}

/// One checked expectation (or unexpected rule).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The rule as the expectation names it (or its id, for an unexpected one).
    pub rule: String,
    /// Its count.
    pub count: u64,
    /// Why it failed; `None`: passed.
    pub failure: Option<String>,
    /// `expectations` or `unexpected`.
    pub class: &'static str,
}

impl Expectations {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Expectations, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let expectations: Expectations = yaml_serde::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        for expectation in &expectations.expectations {
            let bounds = [expectation.at_least, expectation.at_most, expectation.exactly];
            if bounds.iter().all(Option::is_none) {
                return Err(format!("{}: rule {:?}: give at_least, at_most or exactly", path.display(), expectation.rule));
            }
            if expectation.exactly.is_some() && (expectation.at_least.is_some() || expectation.at_most.is_some()) {
                return Err(format!("{}: rule {:?}: exactly excludes at_least and at_most", path.display(), expectation.rule));
            }
            if let (Some(low), Some(high)) = (expectation.at_least, expectation.at_most) {
                if low > high {
                    return Err(format!("{}: rule {:?}: at_least {low} is above at_most {high}", path.display(), expectation.rule));
                }
            }
        }
        Ok(expectations)
    }

    /// Checks the per-rule rows of a backtest (`detail` of its `rule` rows); an expectation
    /// naming no rule of the set is an error.
    pub fn check(&self, rules: &[Json]) -> Result<Vec<Outcome>, String> {
        let mut outcomes = Vec::new();
        let mut covered = std::collections::BTreeSet::new();
        for expectation in &self.expectations {
            let named: Vec<&Json> = rules
                .iter()
                .filter(|rule| rule["rule_id"] == expectation.rule.as_str() || rule["title"] == expectation.rule.as_str())
                .collect();
            let rule = match named.as_slice() {
                [rule] => *rule,
                [] => return Err(format!("expectation for {:?}: no such rule id or title in the rules", expectation.rule)),
                _ => return Err(format!("expectation for {:?}: several rules have this title; name it by id", expectation.rule)),
            };
            covered.insert(rule["rule_id"].as_str().unwrap_or_default().to_owned());
            let count = count_of(rule);
            let failure = if let Some(exactly) = expectation.exactly.filter(|exactly| count != *exactly) {
                Some(format!("expected exactly {exactly}, got {count}"))
            } else if let Some(low) = expectation.at_least.filter(|low| count < *low) {
                Some(format!("expected at least {low}, got {count}"))
            } else {
                expectation.at_most.filter(|high| count > *high).map(|high| format!("expected at most {high}, got {count}"))
            };
            outcomes.push(Outcome { rule: expectation.rule.clone(), count, failure, class: "expectations" });
        }
        if self.defaults.unexpected_detections != Unexpected::Ignore {
            for rule in rules {
                let id = rule["rule_id"].as_str().unwrap_or_default();
                let alerts = rule["alerts"].as_u64().unwrap_or(0);
                if alerts == 0 || covered.contains(id) {
                    continue;
                }
                let message = format!("unexpected: {alerts} alerts with no covering expectation");
                let failure = (self.defaults.unexpected_detections == Unexpected::Fail).then_some(message.clone());
                if failure.is_none() {
                    eprintln!("warning: rule {id}: {message}");
                }
                outcomes.push(Outcome { rule: id.to_owned(), count: alerts, failure, class: "unexpected" });
            }
        }
        Ok(outcomes)
    }
}

/// A rule's count: its alerts, or its matches when it raises no alerts of its own.
fn count_of(rule: &Json) -> u64 {
    if rule["emits"] == false && rule["kind"] == "rule" {
        rule["matches"].as_u64().unwrap_or(0)
    } else {
        rule["alerts"].as_u64().unwrap_or(0)
    }
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// The outcomes as a JUnit XML report (one test case per expectation and unexpected rule).
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|outcome| outcome.failure.is_some()).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!("<testsuites tests=\"{}\" failures=\"{failures}\">\n", outcomes.len()));
    xml.push_str(&format!("  <testsuite name=\"securewatch backtest\" tests=\"{}\" failures=\"{failures}\">\n", outcomes.len()));
    for outcome in outcomes {
        let name = xml_escape(&outcome.rule);
        let class = format!("securewatch.backtest.{}", outcome.class);
        match &outcome.failure {
            None => xml.push_str(&format!("    <testcase name=\"{name}\" classname=\"{class}\"/>\n")),
            Some(failure) => {
                let message = xml_escape(failure);
                xml.push_str(&format!("    <testcase name=\"{name}\" classname=\"{class}\">\n"));
                xml.push_str(&format!("      <failure message=\"{message}\">{message}</failure>\n"));
                xml.push_str("    </testcase>\n");
            }
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Vec<Json> {
        vec![
            json!({"rule_id": "base", "title": "Base <rule>", "kind": "rule", "emits": false, "matches": 7, "alerts": 0}),
            json!({"rule_id": "burst", "title": "Burst", "kind": "event_count", "emits": true, "matches": null, "alerts": 2}),
            json!({"rule_id": "noisy", "title": "Noisy", "kind": "rule", "emits": true, "matches": 4, "alerts": 4}),
        ]
    }

    fn parse(text: &str) -> Expectations {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expect.yml");
        std::fs::write(&path, text).unwrap();
        Expectations::load(&path).unwrap()
    }

    #[test]
    fn bounds_pass_and_fail_and_unexpected_rules_follow_the_default() {
        let expectations = parse("defaults:\n  unexpected_detections: fail\nexpectations:\n  - rule: Base <rule>\n    exactly: 7\n  - rule: burst\n    at_least: 3\n");
        let outcomes = expectations.check(&rules()).unwrap();
        let failures: Vec<(&str, Option<&str>)> = outcomes.iter().map(|o| (o.rule.as_str(), o.failure.as_deref())).collect();
        assert_eq!(
            failures,
            [
                ("Base <rule>", None),
                ("burst", Some("expected at least 3, got 2")),
                ("noisy", Some("unexpected: 4 alerts with no covering expectation")),
            ]
        );
        let xml = junit(&outcomes);
        assert!(xml.contains("<testsuites tests=\"3\" failures=\"2\">"), "{xml}");
        assert!(xml.contains("<testcase name=\"Base &lt;rule&gt;\" classname=\"securewatch.backtest.expectations\"/>"), "{xml}");
        assert!(xml.contains("<failure message=\"expected at least 3, got 2\">"), "{xml}");
        let warned = parse("expectations:\n  - rule: noisy\n    at_most: 4\n").check(&rules()).unwrap();
        assert!(warned.iter().all(|outcome| outcome.failure.is_none()), "{warned:?}");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expect.yml");
        for (text, reason) in [
            ("expectations:\n  - rule: a\n", "give at_least, at_most or exactly"),
            ("expectations:\n  - rule: a\n    exactly: 1\n    at_most: 2\n", "exactly excludes"),
            ("expectations:\n  - rule: a\n    at_least: 3\n    at_most: 2\n", "above at_most"),
            ("expectations:\n  - rule: a\n    atleast: 3\n", "unknown field"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = Expectations::load(&path).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
        let unknown = parse("expectations:\n  - rule: nothing\n    at_least: 1\n").check(&rules()).unwrap_err();
        assert!(unknown.contains("no such rule"), "{unknown}");
    }
}
