//! Configuration of the embedded SQLite store.

use serde::{Deserialize, Serialize};

/// `[store]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file name inside the data directory.
    pub file: String,
    /// Most events written in one transaction (group commit).
    pub max_batch_events: usize,
    /// SQLite `synchronous` setting: `full` fsyncs every commit (durable across power loss),
    /// `normal` only survives process crashes.
    pub synchronous: Synchronous,
}

/// The SQLite `PRAGMA synchronous` values we allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Normal,
    Full,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            file: "securewatch.db".to_string(),
            max_batch_events: 20_000,
            synchronous: Synchronous::Full,
        }
    }
}
