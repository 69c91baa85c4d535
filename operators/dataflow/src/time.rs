//! The time model of the dataflow: ingest epochs as logical time, allowed lateness and retention.

use std::time::Duration;

use securewatch_schemas::{bucket_start, BUCKET_MS};

/// Logical time of the dataflow: the ingest epoch in milliseconds, rounded to the ticker's tick.
pub type Epoch = u64;

/// Default allowed lateness: five minutes.
pub const DEFAULT_LATENESS_MS: u64 = 5 * 60_000;

/// Errors from building a [`TimeModel`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeModelError {
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

/// Allowed lateness and retention horizon of every windowed operator (rollups, enrichment,
/// correlations); both are measured in ingest-epoch milliseconds past the end of a bucket (see
/// the crate documentation for the rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeModel {
    lateness_ms: u64,
    retention_ms: u64,
}

impl Default for TimeModel {
    /// Five minutes of lateness; buckets leave memory as soon as they are final.
    fn default() -> Self {
        TimeModel {
            lateness_ms: DEFAULT_LATENESS_MS,
            retention_ms: DEFAULT_LATENESS_MS,
        }
    }
}

impl TimeModel {
    /// Builds a config; fails when `retention` is shorter than `lateness`.
    pub fn new(lateness: Duration, retention: Duration) -> Result<Self, TimeModelError> {
        let lateness_ms = duration_ms(lateness);
        let retention_ms = duration_ms(retention);
        if retention_ms < lateness_ms {
            return Err(TimeModelError::RetentionBelowLateness {
                retention_ms,
                lateness_ms,
            });
        }
        Ok(TimeModel {
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
    /// Never earlier than [`TimeModel::close_epoch`].
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

/// Monotone ingest epochs: wall-clock milliseconds rounded down to the tick, and always above
/// the previous epoch even if the clock steps back.
#[derive(Debug)]
pub struct EpochClock {
    tick_ms: u64,
    last: Epoch,
}

impl EpochClock {
    /// A clock whose epochs are multiples of `tick` (at least one millisecond).
    pub fn new(tick: Duration) -> Self {
        EpochClock { tick_ms: (tick.as_millis() as u64).max(1), last: 0 }
    }

    /// The next epoch for the wall-clock time `now_ms`.
    pub fn next_at(&mut self, now_ms: u64) -> Epoch {
        let rounded = now_ms - now_ms % self.tick_ms;
        self.last = rounded.max(self.last + 1);
        self.last
    }

    /// The next epoch now.
    pub fn next(&mut self) -> Epoch {
        self.next_at(now_ms())
    }
}

/// Milliseconds since the Unix epoch, now (0 before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_rounded_and_monotone() {
        let mut clock = EpochClock::new(Duration::from_millis(100));
        assert_eq!(clock.next_at(1_000_057), 1_000_000);
        assert_eq!(clock.next_at(1_000_199), 1_000_100);
        // Same tick again, or the clock stepping back: still increasing.
        assert_eq!(clock.next_at(1_000_150), 1_000_101);
        assert_eq!(clock.next_at(900_000), 1_000_102);
        assert_eq!(clock.next_at(1_000_300), 1_000_300);
    }

    #[test]
    fn lateness_is_measured_from_the_bucket_end() {
        let config = TimeModel::default();
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
        let err = TimeModel::new(Duration::from_secs(300), Duration::from_secs(60)).unwrap_err();
        assert_eq!(
            err,
            TimeModelError::RetentionBelowLateness {
                retention_ms: 60_000,
                lateness_ms: 300_000
            }
        );
        let config = TimeModel::new(Duration::from_secs(60), Duration::from_secs(600)).unwrap();
        assert_eq!(config.close_epoch(0), 120_000);
        assert_eq!(config.expiry_epoch(0), 660_000);
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let config = TimeModel::default();
        assert_eq!(config.close_epoch(u64::MAX - 5), u64::MAX);
        assert!(config.accepts(u64::MAX, 0));
    }
}
