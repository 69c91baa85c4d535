//! A token bucket that paces a load generator at a given rate of events per second, a batch
//! (an HEC request, a burst of syslog lines) per token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;

/// A token bucket over batches: one token every `interval`, at most `capacity` saved up.
/// Kept as the time the next token becomes available (never earlier than `capacity - 1`
/// intervals before now), so a caller reserves a token and sleeps until it is due.
pub struct Pacer {
    interval: Duration,
    capacity: u32,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(events_per_sec: f64, batch: u64, capacity: u32) -> anyhow::Result<Self> {
        if !(events_per_sec.is_finite() && events_per_sec > 0.0) {
            bail!("--rate must be a positive number of events per second");
        }
        Ok(Pacer {
            interval: Duration::from_secs_f64(batch as f64 / events_per_sec),
            capacity: capacity.max(1),
            next: Mutex::new(None),
        })
    }

    /// Reserves the next token; returns the instant it is due.
    pub fn reserve(&self, now: Instant) -> Instant {
        let saved = self.interval * (self.capacity - 1);
        let earliest = now.checked_sub(saved).unwrap_or(now);
        let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = match *next {
            Some(next) if next > earliest => next,
            Some(_) => earliest,
            None => now,
        };
        *next = Some(due + self.interval);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_tokens_and_saves_at_most_capacity() {
        let pacer = Pacer::new(1000.0, 100, 3).unwrap(); // one batch per 100 ms
        let start = Instant::now();
        assert_eq!(pacer.reserve(start), start);
        assert_eq!(pacer.reserve(start), start + Duration::from_millis(100));
        assert_eq!(pacer.reserve(start), start + Duration::from_millis(200));
        // After a long pause, `capacity` tokens are due at once (up to now), then pacing resumes.
        let later = start + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), later - Duration::from_millis(200));
        assert_eq!(pacer.reserve(later), later - Duration::from_millis(100));
        assert_eq!(pacer.reserve(later), later);
        assert_eq!(pacer.reserve(later), later + Duration::from_millis(100));
    }
}
