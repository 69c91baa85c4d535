//! Sigma processing pipelines (pySigma's YAML format), parsed and applied by rsigma-eval, plus
//! SecureWatch's built-in pipelines for its sources (embedded YAML under `pipelines/`).
//!
//! rsigma-eval implements pySigma's transformations (`field_name_mapping`,
//! `field_name_prefix`, `change_logsource`, `add_condition`, `value_placeholders`, ...) and
//! conditions (`logsource`, `include_fields`, `exclude_fields`, ...); an unknown transformation
//! or condition type is an error naming it. Pipelines that fetch dynamic sources
//! (`${source.*}` templates: HTTP, commands, NATS) are refused: a detector must not depend on
//! outside services at load time.

use std::path::Path;
use std::sync::LazyLock;

use rsigma_eval::pipeline::{parse_pipeline, Pipeline};
use securewatch_schemas::SourceKind;

use crate::error::DetectionError;

/// Built-in pipelines: (name, YAML).
const BUILTIN: [(&str, &str); 4] = [
    ("wazuh", include_str!("../pipelines/wazuh.yml")),
    ("syslog", include_str!("../pipelines/syslog.yml")),
    ("hec", include_str!("../pipelines/hec.yml")),
    ("evtx_json", include_str!("../pipelines/evtx_json.yml")),
];

/// The built-in pipelines, each parsed once: every rules compile (start, reload, `rules test`)
/// takes one per source kind.
static PARSED_BUILTIN: LazyLock<Vec<(&'static str, Result<Pipeline, String>)>> =
    LazyLock::new(|| BUILTIN.iter().map(|(name, yaml)| (*name, parse_pipeline(yaml).map_err(|e| e.to_string()))).collect());

/// An ordered set of processing pipelines (applied by ascending `priority`, then in the order
/// given).
#[derive(Clone, Debug, Default)]
pub struct Pipelines {
    items: Vec<(String, Pipeline)>,
}

impl Pipelines {
    /// No pipelines: rules see field names exactly as written.
    pub fn none() -> Pipelines {
        Pipelines::default()
    }

    /// Names of the built-in pipelines.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(name, _)| *name).collect()
    }

    /// The built-in pipeline `name` (see [`Pipelines::builtin_names`]).
    pub fn builtin(name: &str) -> Result<Pipelines, DetectionError> {
        let mut pipelines = Pipelines::none();
        pipelines.add_builtin(name)?;
        Ok(pipelines)
    }

    /// The built-in pipeline for events of `kind` (none for kinds without one).
    pub fn for_source(kind: SourceKind) -> Pipelines {
        let name = match kind {
            SourceKind::Wazuh => "wazuh",
            SourceKind::Syslog => "syslog",
            SourceKind::Hec => "hec",
            _ => return Pipelines::none(),
        };
        Pipelines::builtin(name).expect("built-in pipelines parse (tested)")
    }

    /// Adds the built-in pipeline `name`.
    pub fn add_builtin(&mut self, name: &str) -> Result<(), DetectionError> {
        let origin = format!("builtin:{name}");
        let (_, parsed) = PARSED_BUILTIN.iter().find(|(known, _)| *known == name).ok_or_else(|| {
            DetectionError::Pipeline {
                origin: origin.clone(),
                reason: format!("no such built-in pipeline (known: {})", Pipelines::builtin_names().join(", ")),
            }
        })?;
        let pipeline = parsed.clone().map_err(|reason| DetectionError::Pipeline { origin: origin.clone(), reason })?;
        self.items.push((origin, pipeline));
        Ok(())
    }

    /// Adds a pipeline file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), DetectionError> {
        let yaml = std::fs::read_to_string(path)
            .map_err(|source| DetectionError::Io { path: path.to_path_buf(), source })?;
        self.add_yaml(&path.display().to_string(), &yaml)
    }

    /// Adds a pipeline given as YAML text; `origin` names it in errors.
    pub fn add_yaml(&mut self, origin: &str, yaml: &str) -> Result<(), DetectionError> {
        let error = |reason: String| DetectionError::Pipeline { origin: origin.to_string(), reason };
        let pipeline = parse_pipeline(yaml).map_err(|e| error(e.to_string()))?;
        if pipeline.is_dynamic() {
            return Err(error("dynamic sources (${source.*} templates) are not supported".into()));
        }
        self.items.push((origin.to_string(), pipeline));
        Ok(())
    }

    /// Appends `other`'s pipelines after these.
    pub fn extend(&mut self, other: &Pipelines) {
        self.items.extend(other.items.iter().cloned());
    }

    /// Names (origins) of the pipelines, in application order.
    pub fn origins(&self) -> Vec<&str> {
        self.ordered().map(|(origin, _)| origin.as_str()).collect()
    }

    /// True when there are no pipelines.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn ordered(&self) -> impl Iterator<Item = &(String, Pipeline)> {
        let mut items: Vec<&(String, Pipeline)> = self.items.iter().collect();
        items.sort_by_key(|(_, pipeline)| pipeline.priority);
        items.into_iter()
    }

    /// The pipelines in application order, as rsigma takes them.
    pub fn to_vec(&self) -> Vec<Pipeline> {
        self.ordered().map(|(_, pipeline)| pipeline.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in Pipelines::builtin_names() {
            let pipelines = Pipelines::builtin(name).unwrap();
            assert_eq!(pipelines.origins(), [format!("builtin:{name}")]);
            assert!(!pipelines.items[0].1.is_dynamic(), "{name}: built-ins fetch nothing at load time");
        }
        assert!(Pipelines::for_source(SourceKind::Kafka).is_empty());
        assert!(!Pipelines::for_source(SourceKind::Wazuh).is_empty());
    }

    #[test]
    fn unknown_builtin_and_unknown_transformation_are_errors() {
        let error = Pipelines::builtin("nope").unwrap_err().to_string();
        assert!(error.contains("builtin:nope") && error.contains("wazuh"), "{error}");
        let yaml = "name: bad\ntransformations:\n  - type: teleport_fields\n";
        let error = Pipelines::none().add_yaml("bad.yml", yaml).unwrap_err().to_string();
        assert!(error.contains("bad.yml") && error.contains("teleport_fields"), "{error}");
    }

    #[test]
    fn pipelines_apply_by_priority() {
        let mut pipelines = Pipelines::none();
        pipelines.add_yaml("late", "name: late\npriority: 50\ntransformations: []\n").unwrap();
        pipelines.add_yaml("early", "name: early\npriority: 10\ntransformations: []\n").unwrap();
        assert_eq!(pipelines.origins(), ["early", "late"]);
    }
}
