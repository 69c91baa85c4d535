//! The open TCP connections and when each last sent data, so a full listener can close the one idle longest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::Id;
use tokio_util::sync::CancellationToken;

/// When one connection last sent data: milliseconds since its registry's start.
#[derive(Debug, Clone)]
pub(super) struct Activity {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    /// Notes that the connection sent data now.
    pub(super) fn touch(&self) {
        self.last_ms.store(elapsed_ms(self.origin), Ordering::Relaxed);
    }
}

/// The connections of one listener, by task.
#[derive(Debug)]
pub(super) struct IdleRegistry {
    origin: Instant,
    connections: HashMap<Id, (Activity, CancellationToken)>,
}

impl IdleRegistry {
    /// An empty registry.
    pub(super) fn new() -> Self {
        IdleRegistry { origin: Instant::now(), connections: HashMap::new() }
    }

    /// A new connection's activity record (active now) and the token that closes it.
    pub(super) fn open(&self, shutdown: &CancellationToken) -> (Activity, CancellationToken) {
        let activity = Activity { origin: self.origin, last_ms: Arc::new(AtomicU64::new(elapsed_ms(self.origin))) };
        (activity, shutdown.child_token())
    }

    /// Tracks the connection served by task `id`.
    pub(super) fn register(&mut self, id: Id, activity: Activity, close: CancellationToken) {
        self.connections.insert(id, (activity, close));
    }

    /// Forgets the connection of a finished task.
    pub(super) fn remove(&mut self, id: Id) {
        self.connections.remove(&id);
    }

    /// Closes the connection idle longest when it has been idle for at least `min_idle`
    /// (`Duration::ZERO` never closes any); `true` when one was closed. Its task flushes what
    /// it read and ends, which frees its slot.
    pub(super) fn close_idlest(&mut self, min_idle: Duration) -> bool {
        if min_idle.is_zero() {
            return false;
        }
        let now = elapsed_ms(self.origin);
        let idlest = self
            .connections
            .iter()
            .filter(|(_, (_, close))| !close.is_cancelled())
            .map(|(id, (activity, _))| (now.saturating_sub(activity.last_ms.load(Ordering::Relaxed)), *id))
            .max();
        match idlest {
            Some((idle_ms, id)) if idle_ms >= min_idle.as_millis() as u64 => {
                self.connections[&id].1.cancel();
                true
            }
            _ => false,
        }
    }
}

fn elapsed_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_connection_idle_longest_is_closed_once_idle_long_enough() {
        let shutdown = CancellationToken::new();
        let mut registry = IdleRegistry::new();
        let ids: Vec<Id> = {
            let mut tasks = tokio::task::JoinSet::new();
            (0..3).map(|_| tasks.spawn(async {}).id()).collect()
        };
        let mut opened = Vec::new();
        for id in &ids {
            let (activity, close) = registry.open(&shutdown);
            registry.register(*id, activity.clone(), close.clone());
            opened.push((activity, close));
        }
        assert!(!registry.close_idlest(Duration::from_millis(50)), "nobody idle long enough yet");
        tokio::time::sleep(Duration::from_millis(80)).await;
        opened[0].0.touch();
        opened[2].0.touch();
        assert!(registry.close_idlest(Duration::from_millis(50)));
        assert!(opened[1].1.is_cancelled(), "the one that did not send is closed");
        assert!(!opened[0].1.is_cancelled() && !opened[2].1.is_cancelled());
        assert!(!registry.close_idlest(Duration::from_millis(50)), "the others sent just now");
        assert!(!registry.close_idlest(Duration::ZERO), "zero turns eviction off");
        registry.remove(ids[1]);
        assert_eq!(registry.connections.len(), 2);
    }
}
