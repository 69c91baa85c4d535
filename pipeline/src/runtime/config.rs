//! `[dataflow]`: worker threads, the epoch tick, lateness, retention and the cluster peers.

use std::time::Duration;

use securewatch_dataflow::engine::{ClusterConfig, EngineConfig};
use securewatch_connectors::settings::SettingError;
use securewatch_dataflow::{TimeModel, TimeModelError};
use serde::{Deserialize, Serialize};

/// The most `workers`: every worker exchanges with every other, so channels, buffers and start
/// time grow with the square of the count (10 000 grew ~300 MB/s and never answered); 64 is
/// above the cores this is sized for.
pub const MAX_WORKERS: u64 = 64;

/// `[dataflow]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataflowConfig {
    /// Timely worker threads in this process (`--workers`).
    pub workers: usize,
    /// Epoch length: how often the ingest epoch is sealed, in milliseconds. Shorter means
    /// fresher rollups and faster acknowledgements, longer means less progress traffic.
    pub tick_ms: u64,
    /// How far behind the ingest clock an event may arrive and still correct its bucket.
    pub lateness_secs: u64,
    /// How long a bucket stays in memory after it ends (at least `lateness_secs`).
    pub retention_secs: u64,
    /// Feed messages queued per worker before the feeder waits.
    pub inbox_capacity: usize,
    /// This process's index in `peers` (`--process`).
    pub process: usize,
    /// Timely addresses (`host:port`) of all processes of the cluster, in process order, the
    /// same list on every process (`--peers`); empty or one entry runs alone.
    pub peers: Vec<String>,
}

impl Default for DataflowConfig {
    fn default() -> Self {
        DataflowConfig {
            workers: 1,
            tick_ms: 100,
            lateness_secs: 300,
            retention_secs: 300,
            inbox_capacity: 64,
            process: 0,
            peers: Vec::new(),
        }
    }
}

impl DataflowConfig {
    /// Checks the rules the types cannot express.
    pub fn validate(&self) -> Result<(), SettingError> {
        let why = "workers exchange with each other, so memory grows with the square of the count; use at most one per core";
        SettingError::within("workers", self.workers as u64, MAX_WORKERS, why)?;
        SettingError::positive("tick_ms", self.tick_ms)?;
        SettingError::positive("inbox_capacity", self.inbox_capacity as u64)?;
        // Checked here in the keys' own unit (seconds); the engine's message speaks milliseconds.
        if self.retention_secs < self.lateness_secs {
            return Err(SettingError::Below {
                key: "retention_secs",
                value: self.retention_secs,
                floor_key: "lateness_secs",
                floor: self.lateness_secs,
                unit: "s",
                why: "a bucket cannot leave memory while late events may still correct it",
            });
        }
        if self.peers.len() > 1 && self.process >= self.peers.len() {
            let reason = format!("{} but peers lists {} processes", self.process, self.peers.len());
            return Err(SettingError::invalid("process", reason));
        }
        if self.peers.len() <= 1 && self.process != 0 {
            return Err(SettingError::invalid("process", "must be 0 without a peer list"));
        }
        Ok(())
    }

    /// The epoch tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The time model of lateness and retention.
    pub fn time_model(&self) -> Result<TimeModel, TimeModelError> {
        TimeModel::new(Duration::from_secs(self.lateness_secs), Duration::from_secs(self.retention_secs))
    }

    /// The engine settings.
    pub fn engine(&self) -> Result<EngineConfig, TimeModelError> {
        Ok(EngineConfig {
            workers: self.workers,
            cluster: (self.peers.len() > 1)
                .then(|| ClusterConfig { process: self.process, addresses: self.peers.clone() }),
            time_model: self.time_model()?,
            inbox_capacity: self.inbox_capacity,
            ..EngineConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_single_process() {
        let config = DataflowConfig::default();
        config.validate().unwrap();
        let engine = config.engine().unwrap();
        assert_eq!(engine.workers, 1);
        assert!(engine.cluster.is_none());
        assert_eq!(engine.time_model.lateness_ms(), 300_000);
    }

    #[test]
    fn rejects_inconsistent_settings() {
        let bad = |change: fn(&mut DataflowConfig)| {
            let mut config = DataflowConfig::default();
            change(&mut config);
            config.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.workers = 0).contains("workers"));
        let many = bad(|c| c.workers = 10_000);
        assert!(many.starts_with("workers (10000) must be at most 64: "), "{many}");
        let units = bad(|c| c.retention_secs = 10);
        assert!(units.contains("retention_secs (10 s)") && units.contains("lateness_secs (300 s)"), "{units}");
        assert!(!units.contains("ms"), "the keys are in seconds: {units}");
        assert!(bad(|c| c.process = 1).contains("process"));
        assert!(bad(|c| {
            c.peers = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
            c.process = 2;
        })
        .contains("peers"));
    }

    #[test]
    fn a_peer_list_makes_a_cluster() {
        let config = DataflowConfig {
            workers: 2,
            process: 1,
            peers: vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()],
            ..DataflowConfig::default()
        };
        config.validate().unwrap();
        let cluster = config.engine().unwrap().cluster.unwrap();
        assert_eq!(cluster.process, 1);
        assert_eq!(cluster.addresses.len(), 2);
    }
}
