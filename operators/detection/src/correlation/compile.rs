//! Compiling the correlation rules of a rule set: references, conditions, windows, chains.

use std::collections::{BTreeMap, HashMap};

use rsigma_parser::{
    ConditionExpr, ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Level, WindowMode,
};
use securewatch_schemas::AlertLevel;

use super::{
    CompiledCorrelation, CompiledCorrelations, Condition, CorrelationInput, CorrelationKind, InputSource,
    RuleExpr, RuleInfo, MAX_CHAIN_DEPTH,
};
use crate::error::Rejection;
use crate::load::RuleSet;

fn level(level: Option<Level>) -> Option<AlertLevel> {
    level.map(|level| match level {
        Level::Informational => AlertLevel::Informational,
        Level::Low => AlertLevel::Low,
        Level::Medium => AlertLevel::Medium,
        Level::High => AlertLevel::High,
        Level::Critical => AlertLevel::Critical,
    })
}

fn reference_of(id: &Option<String>, name: &Option<String>, title: &str) -> String {
    id.clone().or_else(|| name.clone()).unwrap_or_else(|| title.to_string())
}

impl CompiledCorrelations {
    /// Compiles the correlations of `set`. A correlation that uses something not supported
    /// here (`value_percentile`, `value_median`, non-sliding `window` modes, a boolean
    /// condition on `temporal_ordered`, a threshold on `temporal_ordered`), or that
    /// references a rejected correlation, is rejected with the reason.
    pub fn compile(set: &RuleSet) -> CompiledCorrelations {
        let mut out = CompiledCorrelations::default();
        for loaded in &set.rules {
            let rule = &loaded.item;
            out.rules.insert(
                reference_of(&rule.id, &rule.name, &rule.title),
                RuleInfo { title: rule.title.clone(), level: level(rule.level), tags: rule.tags.clone(), emits: true },
            );
        }
        // Correlations by id / name, as far as compiled.
        let mut by_reference: HashMap<String, usize> = HashMap::new();
        for loaded in &set.correlations {
            let rule = &loaded.item;
            match out.compile_one(rule, set, &by_reference) {
                Ok(mut compiled) => {
                    let index = out.correlations.len();
                    compiled.index = index;
                    compiled.key = compiled.definition_key(&out.correlations);
                    for key in rule.id.iter().chain(rule.name.iter()) {
                        by_reference.insert(key.clone(), index);
                    }
                    out.correlations.push(compiled);
                }
                Err(reason) => out.rejected.push(Rejection {
                    file: loaded.file.clone(),
                    rule_id: rule.id.clone().or_else(|| rule.name.clone()),
                    title: Some(rule.title.clone()),
                    reason,
                }),
            }
        }
        out.emitting = vec![true; out.correlations.len()];
        let mut generated: BTreeMap<InputSourceKey, bool> = BTreeMap::new();
        for correlation in &out.correlations {
            for (number, input) in correlation.inputs.iter().enumerate() {
                out.routes.entry(input.rule_id.clone()).or_default().push((correlation.index, number));
                let key = match &input.source {
                    InputSource::Rule(rule) => {
                        let needed = out.needed.entry(rule.clone()).or_default();
                        needed.extend(input.group_fields.iter().cloned());
                        needed.extend(input.value_fields.iter().cloned());
                        InputSourceKey::Rule(rule.clone())
                    }
                    InputSource::Correlation(inner) => InputSourceKey::Correlation(*inner),
                };
                *generated.entry(key).or_insert(false) |= correlation.generate;
            }
        }
        for (key, emits) in generated {
            match key {
                InputSourceKey::Rule(rule) => {
                    if let Some(info) = out.rules.get_mut(&rule) {
                        info.emits = emits;
                    }
                }
                InputSourceKey::Correlation(index) => out.emitting[index] = emits,
            }
        }
        out
    }

    fn compile_one(
        &self,
        rule: &CorrelationRule,
        set: &RuleSet,
        by_reference: &HashMap<String, usize>,
    ) -> Result<CompiledCorrelation, String> {
        let kind = match rule.correlation_type {
            CorrelationType::EventCount => CorrelationKind::EventCount,
            CorrelationType::ValueCount => CorrelationKind::ValueCount,
            CorrelationType::Temporal => CorrelationKind::Temporal,
            CorrelationType::TemporalOrdered => CorrelationKind::TemporalOrdered,
            CorrelationType::ValueSum => CorrelationKind::ValueSum,
            CorrelationType::ValueAvg => CorrelationKind::ValueAvg,
            other => return Err(format!("correlation type {} is not supported", other.as_str())),
        };
        if rule.window != WindowMode::Sliding {
            return Err(format!("window mode {} is not supported (only sliding windows)", rule.window.as_str()));
        }
        if rule.rules.is_empty() {
            return Err("correlation lists no rules".into());
        }
        let timespan_ms = rule.timespan.seconds.saturating_mul(1_000);
        if timespan_ms == 0 {
            return Err("timespan must be positive".into());
        }
        let alias = |name: &str, reference: &str| -> String {
            rule.aliases
                .iter()
                .find(|alias| alias.alias == name)
                .and_then(|alias| alias.mapping.get(reference).cloned())
                .unwrap_or_else(|| name.to_string())
        };
        let (condition, value_names) = match &rule.condition {
            CorrelationCondition::Threshold { predicates, field, .. } => {
                let temporal = matches!(kind, CorrelationKind::Temporal | CorrelationKind::TemporalOrdered);
                let is_default = predicates.as_slice() == [(ConditionOperator::Gte, 1)];
                let condition = if temporal && is_default {
                    Condition::AllRules
                } else if kind == CorrelationKind::TemporalOrdered {
                    return Err("a threshold condition on temporal_ordered is not supported".into());
                } else {
                    Condition::Threshold(predicates.clone())
                };
                let value_names = match kind {
                    CorrelationKind::ValueCount | CorrelationKind::ValueSum | CorrelationKind::ValueAvg => {
                        let fields = field.clone().unwrap_or_default();
                        if fields.is_empty() {
                            return Err(format!("{} needs condition.field", kind.as_str()));
                        }
                        if fields.len() > 1 && kind != CorrelationKind::ValueCount {
                            return Err(format!("{} takes a single field", kind.as_str()));
                        }
                        fields
                    }
                    _ => Vec::new(),
                };
                (condition, value_names)
            }
            CorrelationCondition::Extended(expr) => {
                if kind != CorrelationKind::Temporal {
                    return Err(format!("a boolean condition on {} is not supported", kind.as_str()));
                }
                (Condition::Expr(rule_expr(expr, &rule.rules)?), Vec::new())
            }
        };
        let mut inputs = Vec::with_capacity(rule.rules.len());
        let (mut depth, mut settle_ms) = (0, 0u64);
        for reference in &rule.rules {
            let (rule_id, source) = if let Some(&index) = by_reference.get(reference) {
                let inner = &self.correlations[index];
                depth = depth.max(inner.depth + 1);
                settle_ms = settle_ms.max(inner.settle_ms.saturating_add(inner.timespan_ms));
                (inner.rule_id.clone(), InputSource::Correlation(index))
            } else if let Some(loaded) = set.rule_by_reference(reference) {
                let item = &loaded.item;
                let id = reference_of(&item.id, &item.name, &item.title);
                (id.clone(), InputSource::Rule(id))
            } else {
                return Err(format!("references {reference}, which is neither a loaded rule nor a usable correlation"));
            };
            inputs.push(CorrelationInput {
                reference: reference.clone(),
                rule_id,
                source,
                group_fields: rule.group_by.iter().map(|name| alias(name, reference)).collect(),
                value_fields: value_names.iter().map(|name| alias(name, reference)).collect(),
            });
        }
        if depth > MAX_CHAIN_DEPTH {
            return Err(format!(
                "correlation chains deeper than {MAX_CHAIN_DEPTH} levels are not supported (this one is {depth} deep)"
            ));
        }
        Ok(CompiledCorrelation {
            index: 0,
            key: 0,
            rule_id: reference_of(&rule.id, &rule.name, &rule.title),
            name: rule.name.clone(),
            title: rule.title.clone(),
            level: level(rule.level),
            tags: rule.tags.clone(),
            kind,
            inputs,
            group_by: rule.group_by.clone(),
            timespan_ms,
            condition,
            generate: rule.generate,
            depth,
            settle_ms,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum InputSourceKey {
    Rule(String),
    Correlation(usize),
}

fn rule_expr(expr: &ConditionExpr, rules: &[String]) -> Result<RuleExpr, String> {
    Ok(match expr {
        ConditionExpr::Identifier(name) => RuleExpr::Seen(
            rules
                .iter()
                .position(|rule| rule == name)
                .ok_or_else(|| format!("condition names {name}, which is not in rules"))?,
        ),
        ConditionExpr::And(items) => RuleExpr::And(items.iter().map(|i| rule_expr(i, rules)).collect::<Result<_, _>>()?),
        ConditionExpr::Or(items) => RuleExpr::Or(items.iter().map(|i| rule_expr(i, rules)).collect::<Result<_, _>>()?),
        ConditionExpr::Not(inner) => RuleExpr::Not(Box::new(rule_expr(inner, rules)?)),
        ConditionExpr::Selector { .. } => return Err("`of` selectors in a temporal condition are not supported".into()),
    })
}
