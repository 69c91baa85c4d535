//! Sigma conformance (c): each correlation example of `corpus/sigma/correlation/` run by the engine's correlation operators over streams built from its base rules.
//!
//! For every correlation whose referenced rules resolve in its own file, two streams are
//! built and run through `correlate_batch` (the engine's `build_correlations`):
//!
//! * **firing**: the smallest stream that satisfies the condition in one group inside the
//!   timespan (N events for `event_count`, N distinct values for `value_count`, one value over
//!   the threshold for `value_sum` / `value_avg`, one event per rule for `temporal`, in order
//!   for `temporal_ordered`; inner correlations of a chain are satisfied first). Expected: one
//!   alert of that correlation.
//! * **near miss**: one event (or distinct value) short for the count types, the value at the
//!   threshold's wrong side for the value types, the last rule's events one timespan later
//!   (just outside the window) for the temporal types. Expected: no alert.
//!
//! Events are built from each base rule's detection: the positive selection must be a plain
//! field/value map (values with `contains` / `startswith` / `endswith`, wildcards dropped);
//! every built event is checked to match its rule with the real detector before it is used.
//! Anything else is skipped with the reason.

use std::path::Path;
use std::sync::Arc;

use chrono::DateTime;
use securewatch_detection::correlation::{CompiledCorrelation, Condition, CorrelationKind, InputSource};
use securewatch_detection::rsigma_parser::{
    ConditionExpr, ConditionOperator, Detection, Modifier, SigmaRule, SigmaValue, SpecialChar, StringPart,
};
use securewatch_detection::{match_of, CompiledCorrelations, Detector, Match, Pipelines, Routing, RuleSet};
use securewatch_dataflow::correlate_batch;
use securewatch_schemas::{Event, EventId};
use serde_json::{Map, Value};

/// Start of every built stream: 2024-03-01T10:00:00Z.
const START_MS: u64 = 1_709_287_200_000;
/// The value every group-by field takes, so all events of a stream share one group.
const GROUP_VALUE: &str = "group-1";

/// Totals of the run.
#[derive(Debug, Default)]
pub struct Totals {
    /// Correlations run (both streams).
    pub run: usize,
    /// Firing streams that gave exactly one alert.
    pub fired: usize,
    /// Near-miss streams that gave no alert.
    pub silent: usize,
    /// Near-miss streams that could be built (some conditions have none).
    pub near_misses: usize,
    /// Correlations skipped, with the reason printed.
    pub skipped: usize,
    /// Real mismatches: a firing stream without exactly one alert, or a near miss that fired.
    pub mismatches: usize,
}

/// Runs every file under `dir`; prints a line per correlation and the totals.
pub fn run(dir: &Path, files: &[std::path::PathBuf]) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    println!("sigma: correlation examples run through the engine's correlation operators:");
    for file in files {
        let text = std::fs::read_to_string(file)?;
        let set = RuleSet::from_text(file, &text);
        let compiled = Arc::new(CompiledCorrelations::compile(&set));
        let detector = Detector::compile(&set, &Pipelines::none());
        let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        for rejected in set.rejected.iter().filter(|r| r.reason.contains("correlation references")) {
            totals.skipped += 1;
            println!(
                "  SKIP {name}: {}: references rules not in its file",
                rejected.rule_id.as_deref().or(rejected.title.as_deref()).unwrap_or("-")
            );
        }
        for correlation in &compiled.correlations {
            let builder = Builder { set: &set, compiled: &compiled, detector: &detector };
            let label = format!("{name}: {} ({})", correlation.rule_id, correlation.kind.as_str());
            let firing = match builder.stream(correlation, Shape::Fire) {
                Ok(stream) => stream,
                Err(reason) => {
                    totals.skipped += 1;
                    println!("  SKIP {label}: {reason}");
                    continue;
                }
            };
            totals.run += 1;
            let fired = alerts_of(&compiled, correlation, firing)?;
            let near = match builder.stream(correlation, Shape::NearMiss) {
                Ok(stream) => Some(alerts_of(&compiled, correlation, stream)?),
                Err(_) => None,
            };
            let fire_ok = fired == 1;
            let near_ok = near.is_none_or(|count| count == 0);
            totals.fired += usize::from(fire_ok);
            totals.near_misses += usize::from(near.is_some());
            totals.silent += usize::from(near == Some(0));
            totals.mismatches += usize::from(!fire_ok) + usize::from(!near_ok);
            println!(
                "  {} {label}: fired {fired}/1; near miss ({}) silent: {}",
                if fire_ok && near_ok { "ok  " } else { "FAIL" },
                near_miss_kind(correlation.kind),
                match near {
                    Some(0) => "yes".to_string(),
                    Some(count) => format!("NO ({count} alerts)"),
                    None => "n/a (a count of 1 has no shorter stream)".to_string(),
                }
            );
        }
    }
    println!(
        "sigma: correlation examples: {} run, fired {}/{}, near misses silent {}/{}, {} skipped, {} mismatches",
        totals.run, totals.fired, totals.run, totals.silent, totals.near_misses, totals.skipped, totals.mismatches
    );
    Ok(totals)
}

fn near_miss_kind(kind: CorrelationKind) -> &'static str {
    match kind {
        CorrelationKind::EventCount => "one event short",
        CorrelationKind::ValueCount => "one distinct value short",
        CorrelationKind::ValueSum | CorrelationKind::ValueAvg => "value at the threshold's wrong side",
        CorrelationKind::Temporal | CorrelationKind::TemporalOrdered => "last rule outside the timespan",
    }
}

/// Alerts of `correlation` (stored or feeding others) over `matches`.
fn alerts_of(compiled: &Arc<CompiledCorrelations>, correlation: &CompiledCorrelation, matches: Vec<Match>) -> anyhow::Result<usize> {
    let alerts = correlate_batch(matches, Arc::clone(compiled), 1)?;
    Ok(alerts.iter().filter(|a| a.alert.rule_id == correlation.rule_id).count())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fire,
    NearMiss,
}

struct Builder<'a> {
    set: &'a RuleSet,
    compiled: &'a CompiledCorrelations,
    detector: &'a Detector,
}

/// Base-rule events of a stream: (rule reference as written, fields, time), and the time at
/// which the stream completes its condition.
struct Piece {
    events: Vec<(String, Map<String, Value>, u64)>,
    done_ms: u64,
}

impl Builder<'_> {
    /// The matches of the stream of `shape` for `correlation`, or why none can be built.
    fn stream(&self, correlation: &CompiledCorrelation, shape: Shape) -> Result<Vec<Match>, String> {
        let piece = self.satisfy(correlation, START_MS, shape)?;
        let mut matches = Vec::new();
        for (number, (reference, fields, time)) in piece.events.into_iter().enumerate() {
            let rule = self.set.rule_by_reference(&reference).ok_or_else(|| format!("{reference} is not a rule"))?;
            let base = event_fields(&rule.item).map_err(|reason| format!("rule {reference}: {reason}"))?;
            let mut object = base;
            object.extend(fields);
            let time = DateTime::from_timestamp_millis(time as i64).ok_or("time out of range")?;
            let event = Event::from_json_object(EventId(number as u128 + 1), time, "conformance", Value::Object(object));
            let reference_id = self.compiled_reference(&rule.item);
            let mut hit = false;
            for rule_match in self.detector.matches_with(&event, Routing::All) {
                if rule_match.rule.reference() == reference_id {
                    hit = true;
                    matches.push(match_of(&rule_match, &event, self.compiled));
                }
            }
            if !hit {
                return Err(format!("the event built for rule {reference} does not match it"));
            }
        }
        Ok(matches)
    }

    fn compiled_reference(&self, rule: &SigmaRule) -> String {
        rule.id.clone().or_else(|| rule.name.clone()).unwrap_or_else(|| rule.title.clone())
    }

    /// Events (starting at `at`) that make `correlation` hold once in group [`GROUP_VALUE`]
    /// (or, for [`Shape::NearMiss`], just not).
    fn satisfy(&self, correlation: &CompiledCorrelation, at: u64, shape: Shape) -> Result<Piece, String> {
        let step = (correlation.timespan_ms / 100).max(1);
        let near = shape == Shape::NearMiss;
        let mut events = Vec::new();
        let add = |input: usize, at: u64, value: Option<String>, events: &mut Vec<_>| -> Result<u64, String> {
            let piece = self.input_events(correlation, input, at, value)?;
            events.extend(piece.events);
            Ok(piece.done_ms)
        };
        let done_ms = match (&correlation.condition, correlation.kind) {
            (Condition::Threshold(predicates), CorrelationKind::EventCount | CorrelationKind::ValueCount) => {
                let n = smallest_count(predicates).ok_or("no count of 1..=10000 satisfies the condition")?;
                if near && n < 2 {
                    return Err("no near miss".into());
                }
                let count = if near { n - 1 } else { n };
                let mut done = at;
                for i in 0..count {
                    let value = (correlation.kind == CorrelationKind::ValueCount).then(|| format!("value-{i}"));
                    done = add(0, at + i * step, value, &mut events)?;
                }
                done
            }
            (Condition::Threshold(predicates), CorrelationKind::ValueSum | CorrelationKind::ValueAvg) => {
                let (fire, miss) = value_bounds(predicates).ok_or("no integer value satisfies the condition")?;
                let value = if near { miss.ok_or("no near miss")? } else { fire };
                add(0, at, Some(value.to_string()), &mut events)?
            }
            (Condition::AllRules, CorrelationKind::Temporal | CorrelationKind::TemporalOrdered) => {
                let (mut time, mut anchor) = (at, at);
                let last = correlation.inputs.len() - 1;
                for input in 0..correlation.inputs.len() {
                    if input == last && near {
                        // Just outside the window anchored at the first rule's match; windows
                        // anchored later do not hold that match.
                        time = anchor + correlation.timespan_ms;
                    }
                    let done = add(input, time, None, &mut events)?;
                    if input == 0 {
                        anchor = done;
                    }
                    time = done + step;
                }
                time - step
            }
            (Condition::Expr(_), _) => return Err("a boolean temporal condition: no generic stream".into()),
            _ => return Err(format!("condition of {} not covered", correlation.kind.as_str())),
        };
        Ok(Piece { events, done_ms })
    }

    /// Events of input `input` of `correlation` at `at`: one base event, or a whole firing
    /// stream of an inner correlation. `value` goes into the condition's field.
    fn input_events(&self, correlation: &CompiledCorrelation, input: usize, at: u64, value: Option<String>) -> Result<Piece, String> {
        let spec = &correlation.inputs[input];
        match &spec.source {
            InputSource::Correlation(inner) => {
                if value.is_some() {
                    return Err("a value field over a chained correlation".into());
                }
                self.satisfy(&self.compiled.correlations[*inner], at, Shape::Fire)
            }
            InputSource::Rule(_) => {
                let mut fields = Map::new();
                for field in &spec.group_fields {
                    fields.insert(field.clone(), Value::String(GROUP_VALUE.into()));
                }
                if let Some(value) = value {
                    for field in &spec.value_fields {
                        fields.insert(field.clone(), Value::String(value.clone()));
                    }
                }
                Ok(Piece { events: vec![(spec.reference.clone(), fields, at)], done_ms: at })
            }
        }
    }
}

fn holds(predicates: &[(ConditionOperator, u64)], value: i64) -> bool {
    predicates.iter().all(|(op, bound)| {
        let bound = *bound as i64;
        match op {
            ConditionOperator::Lt => value < bound,
            ConditionOperator::Lte => value <= bound,
            ConditionOperator::Gt => value > bound,
            ConditionOperator::Gte => value >= bound,
            ConditionOperator::Eq => value == bound,
            ConditionOperator::Neq => value != bound,
        }
    })
}

/// The smallest count in 1..=10000 the predicates accept.
fn smallest_count(predicates: &[(ConditionOperator, u64)]) -> Option<u64> {
    (1..=10_000u64).find(|n| holds(predicates, *n as i64))
}

/// A value the predicates accept (the smallest above every lower bound), and one next to it
/// they refuse.
fn value_bounds(predicates: &[(ConditionOperator, u64)]) -> Option<(i64, Option<i64>)> {
    let floor = predicates.iter().map(|(_, bound)| *bound as i64).max().unwrap_or(0);
    let fire = (floor.saturating_sub(1)..=floor.saturating_add(1)).find(|v| holds(predicates, *v))?;
    let miss = [fire - 1, fire + 1].into_iter().find(|v| !holds(predicates, *v));
    Some((fire, miss))
}

/// Fields that satisfy the rule's positive selection: the condition must be `sel` or
/// `sel and not filter...`, and `sel` a field/value map.
fn event_fields(rule: &SigmaRule) -> Result<Map<String, Value>, String> {
    let [condition] = rule.detection.conditions.as_slice() else {
        return Err("several conditions".into());
    };
    let positive = match condition {
        ConditionExpr::Identifier(name) => name,
        ConditionExpr::And(items) => {
            let mut positive = None;
            for item in items {
                match item {
                    ConditionExpr::Identifier(name) if positive.is_none() => positive = Some(name),
                    ConditionExpr::Not(inner) if matches!(**inner, ConditionExpr::Identifier(_)) => {}
                    _ => return Err(format!("condition `{condition}` is not `selection [and not filter]`")),
                }
            }
            positive.ok_or("no positive selection")?
        }
        other => return Err(format!("condition `{other}` is not `selection [and not filter]`")),
    };
    let Some(Detection::AllOf(items)) = rule.detection.named.get(positive) else {
        return Err(format!("selection {positive} is not a field/value map"));
    };
    let mut fields = Map::new();
    for item in items {
        let name = item.field.name.clone().ok_or("keyword selection")?;
        let plain = item.field.modifiers.iter().all(|m| matches!(m, Modifier::Contains | Modifier::StartsWith | Modifier::EndsWith));
        if !plain {
            return Err(format!("field {name} has modifiers other than contains/startswith/endswith"));
        }
        let value = match item.values.first().ok_or("empty value list")? {
            SigmaValue::String(text) => Value::String(
                text.parts
                    .iter()
                    .map(|part| match part {
                        StringPart::Plain(plain) => plain.as_str(),
                        StringPart::Special(SpecialChar::WildcardMulti) => "",
                        StringPart::Special(SpecialChar::WildcardSingle) => "x",
                    })
                    .collect(),
            ),
            SigmaValue::Integer(number) => Value::from(*number),
            SigmaValue::Float(number) => Value::from(*number),
            SigmaValue::Bool(flag) => Value::Bool(*flag),
            SigmaValue::Null => return Err(format!("field {name} must be null")),
        };
        fields.insert(name, value);
    }
    Ok(fields)
}
