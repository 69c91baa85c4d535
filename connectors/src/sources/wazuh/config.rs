//! Configuration of the Wazuh `alerts.json` tailer.

use std::path::PathBuf;

use securewatch_schemas::Tenant;
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// Where to begin reading when no position has been persisted yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Read the file from its first byte.
    #[default]
    Beginning,
    /// Skip what the file holds now (up to its last complete line) and read only new alerts.
    End,
}

/// `[sources.wazuh]`: tails a Wazuh manager's `alerts.json`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WazuhConfig {
    /// Whether `securewatch run` starts this source (default false: only when configured).
    pub enabled: bool,
    /// Instance name: the `source` metrics label, `Event.source.name` and the position file
    /// name (`positions/wazuh-<name>.json`); letters, digits, `-`, `_` and `.` only.
    pub name: String,
    /// The alerts file to follow (default `/var/ossec/logs/alerts/alerts.json`).
    pub path: PathBuf,
    /// How often to look for new lines, rotation and truncation, in milliseconds (default 250).
    pub poll_interval_ms: u64,
    /// Longest accepted line in bytes (default 1 MiB); longer lines are skipped up to the next
    /// newline and counted as rejected with reason `too_large`.
    pub max_line_bytes: usize,
    /// Most lines per ingest batch (default 1000; also capped by the queue capacity).
    pub batch_size: usize,
    /// Where to begin when no position is persisted: `beginning` (default) or `end`.
    pub start_at: StartAt,
    /// First wait before re-sending a batch whose store write failed, in milliseconds
    /// (default 1000; doubles on each further failure, up to 30 s).
    pub retry_backoff_ms: u64,
    /// Whether `path` may be a symbolic link (default false). When false, a symlink at `path`
    /// is not opened: it is logged once, counted in `securewatch_wazuh_symlinks_refused_total`
    /// and treated as a missing file until a regular file is there again, so a link swapped
    /// in for `alerts.json` cannot make the tailer read another file.
    pub follow_symlinks: bool,
    /// The tenant of every alert in the file (default `default`; 1–64 characters of
    /// `a-z 0-9 - _`, starting with a letter or digit).
    pub tenant: Tenant,
}

impl Default for WazuhConfig {
    fn default() -> Self {
        WazuhConfig {
            enabled: false,
            name: "wazuh".to_string(),
            path: PathBuf::from("/var/ossec/logs/alerts/alerts.json"),
            poll_interval_ms: 250,
            max_line_bytes: 1024 * 1024,
            batch_size: 1000,
            start_at: StartAt::Beginning,
            retry_backoff_ms: 1000,
            follow_symlinks: false,
            tenant: Tenant::default(),
        }
    }
}

impl WazuhConfig {
    /// Checks the values that `Default` cannot guarantee; the message names the bad key.
    pub fn validate(&self) -> Result<(), SettingError> {
        let name_ok = !self.name.is_empty()
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !self.name.starts_with('.');
        if !name_ok {
            let reason = format!("{:?} must be non-empty and use only letters, digits, '-', '_' and '.'", self.name);
            return Err(SettingError::invalid("name", reason));
        }
        if self.path.as_os_str().is_empty() {
            return Err(SettingError::EmptyPath { key: "path" });
        }
        SettingError::positive("poll_interval_ms", self.poll_interval_ms)?;
        SettingError::positive("max_line_bytes", self.max_line_bytes as u64)?;
        SettingError::positive("batch_size", self.batch_size as u64)?;
        SettingError::positive("retry_backoff_ms", self.retry_backoff_ms)?;
        Ok(())
    }
}
