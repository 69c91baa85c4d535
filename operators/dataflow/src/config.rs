//! Rollup settings: bucket width, allowed lateness, retention horizon, and the rules built on them.

use std::time::Duration;

/// Width of a rollup bucket in event time: one minute.
pub const BUCKET_MS: u64 = 60_000;

/// Default allowed lateness: five minutes.
pub const DEFAULT_LATENESS_MS: u64 = 5 * 60_000;

/// Errors from building a [`RollupConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollupConfigError {
    /// A bucket must stay resident at least until it is final, so retention cannot be shorter
    /// than the allowed lateness.
    #[error("retention horizon ({retention_ms} ms) is shorter than the allowed lateness ({lateness_ms} ms)")]
    RetentionBelowLateness {
        /// The requested retention horizon.
        retention_ms: u64,
        /// The requested allowed lateness.
        lateness_ms: u64,
    },
}

/// Start (inclusive, ms since the Unix epoch) of the one-minute bucket holding `event_time_ms`.
pub fn bucket_start(event_time_ms: u64) -> u64 {
    event_time_ms - event_time_ms % BUCKET_MS
}

/// Allowed lateness and retention horizon of the rollups; both are measured in ingest-epoch
/// milliseconds past the end of a bucket (see the crate documentation for the rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollupConfig {
    lateness_ms: u64,
    retention_ms: u64,
}

impl Default for RollupConfig {
    /// Five minutes of lateness; buckets leave memory as soon as they are final.
    fn default() -> Self {
        RollupConfig {
            lateness_ms: DEFAULT_LATENESS_MS,
            retention_ms: DEFAULT_LATENESS_MS,
        }
    }
}

impl RollupConfig {
    /// Builds a config; fails when `retention` is shorter than `lateness`.
    pub fn new(lateness: Duration, retention: Duration) -> Result<Self, RollupConfigError> {
        let lateness_ms = duration_ms(lateness);
        let retention_ms = duration_ms(retention);
        if retention_ms < lateness_ms {
            return Err(RollupConfigError::RetentionBelowLateness {
                retention_ms,
                lateness_ms,
            });
        }
        Ok(RollupConfig {
            lateness_ms,
            retention_ms,
        })
    }

    /// The allowed lateness in milliseconds.
    pub fn lateness_ms(&self) -> u64 {
        self.lateness_ms
    }

    /// The retention horizon in milliseconds.
    pub fn retention_ms(&self) -> u64 {
        self.retention_ms
    }

    /// First ingest epoch at which the bucket starting at `bucket_start_ms` is final: updates
    /// ingested at this epoch or later no longer reach it.
    pub fn close_epoch(&self, bucket_start_ms: u64) -> u64 {
        bucket_start_ms
            .saturating_add(BUCKET_MS)
            .saturating_add(self.lateness_ms)
    }

    /// Ingest epoch at which the bucket starting at `bucket_start_ms` leaves the arrangements.
    /// Never earlier than [`RollupConfig::close_epoch`].
    pub fn expiry_epoch(&self, bucket_start_ms: u64) -> u64 {
        bucket_start_ms
            .saturating_add(BUCKET_MS)
            .saturating_add(self.retention_ms)
    }

    /// Whether an update with event time `event_time_ms` ingested at `epoch` is merged into the
    /// rollups (`true`) or reported as late (`false`).
    pub fn accepts(&self, event_time_ms: u64, epoch: u64) -> bool {
        epoch < self.close_epoch(bucket_start(event_time_ms))
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_minute_aligned() {
        assert_eq!(bucket_start(0), 0);
        assert_eq!(bucket_start(59_999), 0);
        assert_eq!(bucket_start(60_000), 60_000);
        assert_eq!(bucket_start(1_700_000_123_456), 1_700_000_100_000);
    }

    #[test]
    fn lateness_is_measured_from_the_bucket_end() {
        let config = RollupConfig::default();
        // Bucket [60 s, 120 s) closes at 120 s + 5 min.
        assert_eq!(config.close_epoch(60_000), 420_000);
        assert!(config.accepts(60_000, 419_999));
        assert!(config.accepts(119_999, 419_999));
        assert!(!config.accepts(60_000, 420_000));
        assert!(!config.accepts(119_999, 420_000));
        // Events from the future are accepted.
        assert!(config.accepts(10_000_000, 0));
    }

    #[test]
    fn retention_cannot_undercut_lateness() {
        let err = RollupConfig::new(Duration::from_secs(300), Duration::from_secs(60)).unwrap_err();
        assert_eq!(
            err,
            RollupConfigError::RetentionBelowLateness {
                retention_ms: 60_000,
                lateness_ms: 300_000
            }
        );
        let config = RollupConfig::new(Duration::from_secs(60), Duration::from_secs(600)).unwrap();
        assert_eq!(config.close_epoch(0), 120_000);
        assert_eq!(config.expiry_epoch(0), 660_000);
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let config = RollupConfig::default();
        assert_eq!(config.close_epoch(u64::MAX - 5), u64::MAX);
        assert!(config.accepts(u64::MAX, 0));
    }
}
