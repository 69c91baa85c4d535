//! Configuration of the embedded SQLite store.

use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// `[store]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file name inside the data directory: relative, without `..` (checked by
    /// [`SqliteConfig::validate`]).
    pub file: String,
    /// Most events written in one transaction (group commit).
    pub max_batch_events: usize,
    /// SQLite `synchronous` setting: `full` fsyncs every commit (durable across power loss),
    /// `normal` only survives process crashes.
    pub synchronous: Synchronous,
    /// Seconds of history kept: older events, alerts, dead letters, rollup and enrichment
    /// buckets are deleted in the background (see `retention.rs`). 0 keeps everything.
    pub retention_secs: u64,
}

/// The shortest retention. It must also outlast the dataflow's open buckets (lateness plus
/// retention of `[dataflow]`, checked with the whole configuration): a bucket deleted while
/// still open would be written back in part.
pub const MIN_RETENTION_SECS: u64 = 600;

/// The SQLite `PRAGMA synchronous` values we allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// `normal`: commits survive process crashes, not power loss.
    Normal,
    /// `full`: every commit is fsynced, durable across power loss.
    Full,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            file: "securewatch.db".to_string(),
            max_batch_events: 20_000,
            synchronous: Synchronous::Full,
            retention_secs: 0,
        }
    }
}

impl SqliteConfig {
    /// Checks that `file` stays inside the data directory (issue 24: `"../../x.db"` wrote
    /// outside it), that `max_batch_events` is positive and that a retention is 0 or at least
    /// [`MIN_RETENTION_SECS`].
    pub fn validate(&self) -> Result<(), SettingError> {
        SettingError::inside_data_dir("file", &self.file)?;
        SettingError::positive("max_batch_events", self.max_batch_events as u64)?;
        if self.retention_secs != 0 && self.retention_secs < MIN_RETENTION_SECS {
            return Err(SettingError::invalid(
                "retention_secs",
                format!("{} is too short: use 0 (keep everything) or at least {MIN_RETENTION_SECS}", self.retention_secs),
            ));
        }
        Ok(())
    }

    /// How long the store keeps history (`None`: forever).
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_secs > 0).then(|| std::time::Duration::from_secs(self.retention_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_must_stay_inside_the_data_directory() {
        SqliteConfig::default().validate().unwrap();
        for bad in ["../../x.db", "/var/tmp/x.db", "sub/../../x.db"] {
            let config = SqliteConfig { file: bad.into(), ..SqliteConfig::default() };
            let error = config.validate().unwrap_err().to_string();
            assert!(error.starts_with("file (") && error.contains("inside the data directory"), "{bad}: {error}");
        }
        let config = SqliteConfig { max_batch_events: 0, ..SqliteConfig::default() };
        assert_eq!(config.validate().unwrap_err().to_string(), "max_batch_events must be at least 1");
    }
}
