//! The compiled single-event matcher: rules after pipelines and filters, routed by log source.

use std::path::PathBuf;
use std::sync::Arc;

use rsigma_eval::{compile_rule, evaluate_rule, CompiledRule, Engine};
use rsigma_eval::pipeline::apply_pipelines;
use rsigma_parser::{Detection, FilterRuleTarget, Level, LogSource, Modifier, SigmaRule, SigmaValue};
use securewatch_schemas::{Event, SourceKind};

use crate::error::Rejection;
use crate::load::{Loaded, RuleSet};
use crate::logsource::{EventLogSource, RouteIndex};
use crate::pipelines::Pipelines;
use crate::view::EventView;

/// A detection rule as compiled into a [`Detector`].
#[derive(Clone, Debug)]
pub struct DetectorRule {
    /// `id`, when the rule has one.
    pub id: Option<String>,
    /// `name`, when the rule has one (correlations may refer to it).
    pub name: Option<String>,
    /// `title`.
    pub title: String,
    /// `level`.
    pub level: Option<Level>,
    /// `tags` (ATT&CK and others).
    pub tags: Vec<String>,
    /// `author` (DRL 1.1 asks to keep it in match output).
    pub author: Option<String>,
    /// The rule's log source after the pipelines (`change_logsource` may alter it).
    pub logsource: LogSource,
    /// The file the rule came from.
    pub file: PathBuf,
    /// Titles of the filters applied to it.
    pub filters: Vec<String>,
    compiled: CompiledRule,
    compiled_filters: Vec<CompiledRule>,
}

impl DetectorRule {
    /// The id, else the name, else the title: how reports name a rule.
    pub fn reference(&self) -> &str {
        self.id.as_deref().or(self.name.as_deref()).unwrap_or(&self.title)
    }
}

/// One rule that matched one event.
#[derive(Clone, Debug)]
pub struct RuleMatch<'d> {
    /// Index of the rule in [`Detector::rules`] (stable for the detector's lifetime).
    pub index: usize,
    /// The rule.
    pub rule: &'d DetectorRule,
    /// Names of the detections (selections) that made the condition true.
    pub selections: Vec<String>,
}

/// How a detector chooses the rules an event is tried against.
#[derive(Clone, Copy, Debug)]
pub enum Routing<'a> {
    /// By the log source derived from the event ([`EventLogSource::of`]).
    Derived,
    /// By this log source.
    Given(&'a EventLogSource),
    /// Every rule sees every event (routing off).
    All,
}

/// Sigma detection rules compiled for one field naming (one set of pipelines).
///
/// Immutable after [`Detector::compile`], `Send + Sync`, and cheap to share across timely
/// workers behind an `Arc` (see [`SharedDetector`]); matching allocates only for matches.
#[derive(Clone, Debug)]
pub struct Detector {
    rules: Vec<DetectorRule>,
    index: RouteIndex,
    /// One rsigma [`Engine`] per route group (same numbering as `index`'s groups).
    engines: Arc<[GroupEngine]>,
    rejected: Vec<Rejection>,
}

/// The rules of one route group in an rsigma [`Engine`], whose candidate index (necessary
/// field values, substrings and presences per rule) picks the few rules worth evaluating for
/// an event instead of trying every rule of the group. Each engine rule's `id` is its number in
/// [`Detector::rules`], which is how a result is traced back to its rule.
struct GroupEngine(Engine);

impl std::fmt::Debug for GroupEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GroupEngine").field("rules", &self.0.rule_count()).finish()
    }
}

/// A detector shared between workers.
pub type SharedDetector = Arc<Detector>;

impl Detector {
    /// Applies `pipelines` and the set's filters to every rule of `set` and compiles them.
    /// Rules that fail (a pipeline error, an unresolved `|expand` placeholder, a matcher
    /// rsigma cannot build) are listed in [`Detector::rejected`] and left out.
    pub fn compile(set: &RuleSet, pipelines: &Pipelines) -> Detector {
        let pipelines = pipelines.to_vec();
        let mut detector =
            Detector { rules: Vec::new(), index: RouteIndex::default(), engines: Arc::new([]), rejected: Vec::new() };
        let mut broken_filters = Vec::new();
        for loaded in &set.rules {
            match compile_one(loaded, set, &pipelines, &mut broken_filters) {
                Ok(rule) => {
                    let number = detector.rules.len();
                    detector.index.insert(
                        number,
                        rule.logsource.product.as_deref(),
                        rule.logsource.category.as_deref(),
                        rule.logsource.service.as_deref(),
                    );
                    detector.rules.push(rule);
                }
                Err(reason) => detector.rejected.push(Rejection {
                    file: loaded.file.clone(),
                    rule_id: loaded.item.id.clone().or_else(|| loaded.item.name.clone()),
                    title: Some(loaded.item.title.clone()),
                    reason,
                }),
            }
        }
        broken_filters.sort_by(|a: &Rejection, b| (&a.file, &a.title).cmp(&(&b.file, &b.title)));
        broken_filters.dedup();
        detector.rejected.extend(broken_filters);
        detector.engines = (0..detector.index.group_count())
            .map(|group| {
                let mut engine = Engine::new();
                engine.extend_compiled_rules(detector.index.members(group).iter().map(|&number| {
                    let mut compiled = detector.rules[number].compiled.clone();
                    compiled.id = Some(number.to_string());
                    compiled
                }));
                GroupEngine(engine)
            })
            .collect();
        detector
    }

    /// The compiled rules.
    pub fn rules(&self) -> &[DetectorRule] {
        &self.rules
    }

    /// Rules and filters that could not be compiled, with the reason.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }

    /// The rules matching `event`, routed by the event's derived log source, in rule order.
    pub fn matches<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = RuleMatch<'a>> + 'a {
        self.matches_with(event, Routing::Derived)
    }

    /// The rules matching `event` with the given routing, in rule order.
    pub fn matches_with<'a>(&'a self, event: &'a Event, routing: Routing<'_>) -> impl Iterator<Item = RuleMatch<'a>> + 'a {
        let groups: Vec<usize> = match routing {
            Routing::Derived => self.index.groups(&EventLogSource::of(event)).collect(),
            Routing::Given(source) => self.index.groups(source).collect(),
            Routing::All => (0..self.index.group_count()).collect(),
        };
        let view = EventView::new(event);
        let mut found = Vec::new();
        for group in groups {
            for result in self.engines[group].0.evaluate(&view) {
                let index: usize = result
                    .header
                    .rule_id
                    .as_deref()
                    .and_then(|id| id.parse().ok())
                    .expect("a group engine's rule ids are rule numbers");
                let rule = &self.rules[index];
                if !rule.compiled_filters.iter().all(|filter| evaluate_rule(filter, &view).is_some()) {
                    continue;
                }
                let selections = result.as_detection().map(|body| body.matched_selections.clone()).unwrap_or_default();
                found.push(RuleMatch { index, rule, selections });
            }
        }
        found.sort_unstable_by_key(|found| found.index);
        found.into_iter()
    }

    /// How many rules `event` is offered to with the given routing; 0 means its log source
    /// reaches none of the rules' log sources, so no rule can match it.
    pub fn routed_rule_count(&self, event: &Event, routing: Routing<'_>) -> usize {
        match routing {
            Routing::Derived => self.index.candidates(&EventLogSource::of(event)).count(),
            Routing::Given(source) => self.index.candidates(source).count(),
            Routing::All => self.rules.len(),
        }
    }

    /// Like [`Detector::matches_with`], but evaluates every routed rule in full, without the
    /// engines' candidate index: the reference the index is tested against.
    #[cfg(test)]
    fn matches_full_scan<'a>(&'a self, event: &'a Event, routing: Routing<'_>) -> Vec<RuleMatch<'a>> {
        let mut candidates: Vec<usize> = match routing {
            Routing::Derived => self.index.candidates(&EventLogSource::of(event)).collect(),
            Routing::Given(source) => self.index.candidates(source).collect(),
            Routing::All => self.index.all().collect(),
        };
        candidates.sort_unstable();
        let view = EventView::new(event);
        candidates
            .into_iter()
            .filter_map(|index| {
                let rule = &self.rules[index];
                let result = evaluate_rule(&rule.compiled, &view)?;
                if !rule.compiled_filters.iter().all(|filter| evaluate_rule(filter, &view).is_some()) {
                    return None;
                }
                let selections = result.as_detection().map(|body| body.matched_selections.clone()).unwrap_or_default();
                Some(RuleMatch { index, rule, selections })
            })
            .collect()
    }
}

/// One [`Detector`] per source kind, each compiled with that kind's built-in pipeline (see
/// [`Pipelines::for_source`]) followed by the extra pipelines given; events are dispatched by
/// `event.source.kind`. This is what the pipeline's dataflow uses.
#[derive(Clone, Debug)]
pub struct SourceDetectors {
    by_kind: Vec<(SourceKind, Arc<Detector>)>,
}

impl SourceDetectors {
    /// Compiles `set` once per source kind.
    pub fn compile(set: &RuleSet, extra: &Pipelines) -> SourceDetectors {
        let by_kind = SourceKind::ALL
            .iter()
            .map(|&kind| {
                let mut pipelines = Pipelines::for_source(kind);
                pipelines.extend(extra);
                (kind, Arc::new(Detector::compile(set, &pipelines)))
            })
            .collect();
        SourceDetectors { by_kind }
    }

    /// The detector for events of `kind`.
    pub fn for_kind(&self, kind: SourceKind) -> &Arc<Detector> {
        &self
            .by_kind
            .iter()
            .find(|(known, _)| *known == kind)
            .expect("a detector for every kind")
            .1
    }

    /// The rules matching `event` (routed by its derived log source).
    pub fn matches<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = RuleMatch<'a>> + 'a {
        self.for_kind(event.source.kind).matches(event)
    }

    /// Every rejection of any kind's detector, each once.
    pub fn rejected(&self) -> Vec<Rejection> {
        let mut all: Vec<Rejection> =
            self.by_kind.iter().flat_map(|(_, detector)| detector.rejected().iter().cloned()).collect();
        all.sort_by(|a, b| (&a.file, &a.rule_id, &a.reason).cmp(&(&b.file, &b.rule_id, &b.reason)));
        all.dedup();
        all
    }
}

fn compile_one(
    loaded: &Loaded<SigmaRule>,
    set: &RuleSet,
    pipelines: &[rsigma_eval::Pipeline],
    broken_filters: &mut Vec<Rejection>,
) -> Result<DetectorRule, String> {
    let mut rule = loaded.item.clone();
    apply_pipelines(pipelines, &mut rule).map_err(|error| format!("pipeline: {error}"))?;
    if let Some(field) = unresolved_placeholder(&rule) {
        return Err(format!(
            "field {field} uses the |expand modifier, but no pipeline resolves its placeholders"
        ));
    }
    let compiled = compile_rule(&rule).map_err(|error| error.to_string())?;

    let mut filters = Vec::new();
    let mut compiled_filters = Vec::new();
    for filter in &set.filters {
        let item = &filter.item;
        let targeted = match &item.rules {
            FilterRuleTarget::Any => true,
            FilterRuleTarget::Specific(references) => references.iter().any(|reference| {
                loaded.item.id.as_deref() == Some(reference.as_str())
                    || loaded.item.name.as_deref() == Some(reference.as_str())
                    || loaded.item.title == *reference
            }),
        };
        let logsource_fits = item.logsource.as_ref().is_none_or(|wanted| {
            let fits = |want: &Option<String>, have: &Option<String>| {
                want.as_ref().is_none_or(|want| have.as_ref().is_some_and(|have| have.eq_ignore_ascii_case(want)))
            };
            fits(&wanted.product, &loaded.item.logsource.product)
                && fits(&wanted.category, &loaded.item.logsource.category)
                && fits(&wanted.service, &loaded.item.logsource.service)
        });
        if !targeted || !logsource_fits {
            continue;
        }
        // The filter's detection, as a rule with the target's log source, goes through the
        // same pipelines so its field names match the rule's.
        let mut pseudo = loaded.item.clone();
        pseudo.title = item.title.clone();
        pseudo.detection = item.detection.clone();
        let compiled_filter = apply_pipelines(pipelines, &mut pseudo)
            .map_err(|error| format!("pipeline: {error}"))
            .and_then(|()| compile_rule(&pseudo).map_err(|error| error.to_string()));
        match compiled_filter {
            Ok(compiled_filter) => {
                filters.push(item.title.clone());
                compiled_filters.push(compiled_filter);
            }
            Err(reason) => broken_filters.push(Rejection {
                file: filter.file.clone(),
                rule_id: item.id.clone().or_else(|| item.name.clone()),
                title: Some(item.title.clone()),
                reason: format!("filter not applied: {reason}"),
            }),
        }
    }

    Ok(DetectorRule {
        id: rule.id.clone(),
        name: rule.name.clone(),
        title: rule.title.clone(),
        level: rule.level,
        tags: rule.tags.clone(),
        author: rule.author.clone(),
        logsource: rule.logsource.clone(),
        file: loaded.file.clone(),
        filters,
        compiled,
        compiled_filters,
    })
}

/// The first `|expand` field whose values still hold a `%name%` placeholder after the
/// pipelines (no `value_placeholders` transformation with that variable ran).
fn unresolved_placeholder(rule: &SigmaRule) -> Option<String> {
    fn has_placeholder(value: &SigmaValue) -> bool {
        let SigmaValue::String(text) = value else { return false };
        let mut parts = text.original.split('%');
        parts.next();
        // `a%name%b` splits into at least three parts with a non-empty name in the middle.
        parts.next().is_some_and(|name| !name.is_empty() && !name.contains(' ')) && parts.next().is_some()
    }
    fn walk(detection: &Detection) -> Option<String> {
        match detection {
            Detection::AllOf(items) => items.iter().find_map(|item| {
                (item.field.has_modifier(Modifier::Expand) && item.values.iter().any(has_placeholder))
                    .then(|| item.field.name.clone().unwrap_or_else(|| "(keywords)".into()))
            }),
            Detection::AnyOf(inner) | Detection::And(inner) => inner.iter().find_map(walk),
            Detection::Keywords(_) => None,
            Detection::ArrayMatch { body, .. } => walk(body),
            Detection::Conditional { named, .. } => named.values().find_map(walk),
        }
    }
    rule.detection.named.values().find_map(walk)
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
