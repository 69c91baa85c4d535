//! Refused credentials per peer: after `failed_per_minute` in a minute, the peer is answered 429 until that minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Peers remembered at most; past it, windows that ended are forgotten first.
const MAX_PEERS: usize = 65_536;

/// Counts refused credentials per peer address.
#[derive(Debug)]
pub struct FailureLimiter {
    per_window: u32,
    peers: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// A limiter allowing `per_window` failures a minute per peer (0: no limit).
    pub fn new(per_window: u32) -> FailureLimiter {
        FailureLimiter { per_window, peers: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `peer` may try again, when it used up its failures.
    pub fn blocked(&self, peer: IpAddr) -> Option<u64> {
        if self.per_window == 0 {
            return None;
        }
        let peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (started, failures) = peers.get(&peer)?;
        let elapsed = started.elapsed();
        (elapsed < WINDOW && *failures >= self.per_window).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts one refused credential of `peer`.
    pub fn failed(&self, peer: IpAddr) {
        if self.per_window == 0 {
            return;
        }
        let mut peers = self.peers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, (started, _)| started.elapsed() < WINDOW);
        }
        let entry = peers.entry(peer).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_blocked_after_its_failures_and_others_are_not() {
        let limiter = FailureLimiter::new(3);
        let (one, two): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..2 {
            limiter.failed(one);
        }
        assert_eq!(limiter.blocked(one), None);
        limiter.failed(one);
        assert!(limiter.blocked(one).is_some_and(|seconds| (1..=60).contains(&seconds)));
        assert_eq!(limiter.blocked(two), None);
        let unlimited = FailureLimiter::new(0);
        for _ in 0..100 {
            unlimited.failed(one);
        }
        assert_eq!(unlimited.blocked(one), None);
    }
}
