//! `[detection]`: the Sigma rules directory, extra processing pipelines and hot-reload polling.

use std::path::{Path, PathBuf};

use securewatch_connectors::settings::SettingError;
use serde::{Deserialize, Serialize};

/// `[detection]`: Sigma rules run inside the dataflow when `enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// `true` runs the rules of `rules_dir`. Leaving it out while `rules_dir` is set still turns
    /// detection on, with a deprecation warning (the spelling before one on/off convention).
    pub enabled: Option<bool>,
    /// Directory of Sigma rules (`.yml` / `.yaml`, searched recursively, multi-document files).
    pub rules_dir: Option<PathBuf>,
    /// Extra Sigma processing pipelines (pySigma YAML files, or built-in names such as
    /// `evtx_json`), applied after each source's built-in pipeline.
    pub pipelines: Vec<String>,
    /// How often the rules directory is checked for changes, in milliseconds (default 2000);
    /// 0 turns polling off (reload with `POST /api/v1/rules/reload`).
    pub poll_interval_ms: u64,
    /// Most stored events a reload reads back to rebuild the open windows of new correlations
    /// (newest first; default 1,000,000).
    pub backfill_max_events: u32,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig { enabled: None, rules_dir: None, pipelines: Vec::new(), poll_interval_ms: 2000, backfill_max_events: 1_000_000 }
    }
}

impl DetectionConfig {
    /// Checks what the types cannot; the message names the bad key.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.rules_dir.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
            return Err(SettingError::EmptyPath { key: "rules_dir" });
        }
        if self.enabled == Some(true) && self.rules_dir.is_none() {
            return Err(SettingError::invalid("rules_dir", "must be set when enabled = true"));
        }
        SettingError::positive("backfill_max_events", u64::from(self.backfill_max_events))?;
        if self.pipelines.iter().any(String::is_empty) {
            return Err(SettingError::invalid("pipelines", "must not contain an empty entry"));
        }
        Ok(())
    }

    /// The rules directory when detection is on (`enabled = true`, or the deprecated spelling:
    /// `rules_dir` set without `enabled`).
    pub fn rules_dir_in_force(&self) -> Option<&Path> {
        match self.enabled {
            Some(false) => None,
            _ => self.rules_dir.as_deref(),
        }
    }

    /// A deprecation warning when detection is on through the old spelling.
    pub fn deprecation(&self) -> Option<&'static str> {
        (self.enabled.is_none() && self.rules_dir.is_some())
            .then_some("[detection]: rules_dir without `enabled = true` is deprecated; add `enabled = true`")
    }
}
