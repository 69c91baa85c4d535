//! Rate-limited warnings: the first of a repeated warning is logged, then at most one per interval; the rest are counted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counter: warning lines not written because the same warning was written less than an interval
/// before, by `source` and `warning` (what the line would have said, e.g. `connection_refused`).
pub const LOGS_SUPPRESSED: &str = "securewatch_log_suppressed_total";

/// How often a repeated warning is written at most, by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Decides, for one repeated warning, which occurrences are written.
#[derive(Debug)]
pub struct WarnLimiter {
    interval: Duration,
    last_written: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// A limiter that lets the first warning through, then one per `interval`.
    pub const fn new(interval: Duration) -> WarnLimiter {
        WarnLimiter { interval, last_written: None, suppressed: 0 }
    }

    /// For an occurrence at `now`: `Some(n)` when it is to be written, `n` being the occurrences
    /// suppressed since the last written one (to say so in the line); `None` when it is to be
    /// suppressed (count it in [`LOGS_SUPPRESSED`]).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let due = self.last_written.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last_written = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// A [`WarnLimiter`] shared by the tasks that may repeat one warning (connections, requests);
/// what it suppresses is counted in [`LOGS_SUPPRESSED`].
#[derive(Debug)]
pub struct SharedWarnLimiter {
    limiter: Mutex<WarnLimiter>,
    warning: &'static str,
}

impl SharedWarnLimiter {
    /// A limiter for the warning named `warning` (the `warning` label), one line per `interval`.
    pub const fn new(warning: &'static str, interval: Duration) -> SharedWarnLimiter {
        SharedWarnLimiter { limiter: Mutex::new(WarnLimiter::new(interval)), warning }
    }

    /// `Some(n)` when this occurrence is to be written, `n` being the occurrences suppressed
    /// since the last line; `None` when it is suppressed, counted under `source` and `kind`.
    pub fn admit(&self, source: &str, kind: &'static str) -> Option<u64> {
        let admitted = self.limiter.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).admit(Instant::now());
        if admitted.is_none() {
            count_suppressed(source, kind, self.warning);
        }
        admitted
    }
}

/// Counts one suppressed line of `warning` in [`LOGS_SUPPRESSED`].
pub fn count_suppressed(source: &str, kind: &'static str, warning: &'static str) {
    metrics::counter!(LOGS_SUPPRESSED, "source" => source.to_string(), "kind" => kind, "warning" => warning).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_limiter_writes_the_first_and_counts_the_rest() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let limiter = SharedWarnLimiter::new("store_failed", Duration::from_secs(3600));
        let admitted: Vec<Option<u64>> =
            metrics::with_local_recorder(&recorder, || (0..5).map(|_| limiter.admit("hec", "hec")).collect());
        assert_eq!(admitted, [Some(0), None, None, None, None]);
        let suppressed: u64 = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, _, _, _)| key.key().name() == LOGS_SUPPRESSED)
            .filter(|(key, _, _, _)| key.key().labels().any(|label| label.key() == "warning" && label.value() == "store_failed"))
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(count) => count,
                _ => 0,
            })
            .sum();
        assert_eq!(suppressed, 4);
    }

    #[test]
    fn first_then_one_per_interval_with_the_suppressed_count() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut limiter = WarnLimiter::new(Duration::from_secs(10));
        assert_eq!(limiter.admit(at(0)), Some(0));
        for ms in [1, 2, 5_000, 9_999] {
            assert_eq!(limiter.admit(at(ms)), None, "{ms} ms");
        }
        assert_eq!(limiter.admit(at(10_000)), Some(4), "one line per interval, saying how many were held back");
        assert_eq!(limiter.admit(at(10_001)), None);
        assert_eq!(limiter.admit(at(60_000)), Some(1));
        assert_eq!(limiter.admit(at(60_000)), None, "a clock that does not move admits nothing more");
    }
}
