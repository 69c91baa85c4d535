//! The open connections of one HTTP listener: which have a request in flight, which sat idle longest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::Id;
use tokio_util::sync::CancellationToken;

/// One connection as its listener sees it; shared with the connection's task and its requests.
#[derive(Debug)]
pub(super) struct ConnectionState {
    origin: Instant,
    /// When a request last started or finished (or the connection opened): ms since `origin`.
    last_active_ms: AtomicU64,
    /// Requests whose answer is not sent yet.
    in_flight: AtomicUsize,
    /// Cancelled to close the connection: at once when it is idle, after its request otherwise.
    pub(super) close: CancellationToken,
}

impl ConnectionState {
    /// Whether no request is in flight: closing the connection now loses nothing.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Marks a request in flight until the returned guard drops (once its answer is sent).
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight { connection: Arc::clone(self) }
    }

    fn touch(&self) {
        self.last_active_ms.store(elapsed_ms(self.origin), Ordering::Relaxed);
    }

    fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_active_ms.load(Ordering::Relaxed))
    }
}

/// A request in flight on its connection; dropped when the answer's body is sent or abandoned.
#[derive(Debug)]
pub(super) struct InFlight {
    connection: Arc<ConnectionState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.connection.touch();
        self.connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections of one listener, by the task serving each.
#[derive(Debug)]
pub(super) struct Registry {
    origin: Instant,
    connections: HashMap<Id, Arc<ConnectionState>>,
    /// Connections asked to close whose tasks have not ended yet.
    closing: usize,
}

impl Registry {
    /// An empty registry.
    pub(super) fn new() -> Registry {
        Registry { origin: Instant::now(), connections: HashMap::new(), closing: 0 }
    }

    /// A new connection's state (active now), not yet registered.
    pub(super) fn open(&self) -> Arc<ConnectionState> {
        Arc::new(ConnectionState {
            origin: self.origin,
            last_active_ms: AtomicU64::new(elapsed_ms(self.origin)),
            in_flight: AtomicUsize::new(0),
            close: CancellationToken::new(),
        })
    }

    /// Tracks the connection served by task `id`.
    pub(super) fn register(&mut self, id: Id, connection: Arc<ConnectionState>) {
        self.connections.insert(id, connection);
    }

    /// Forgets the connection of a finished task.
    pub(super) fn remove(&mut self, id: Id) {
        if self.connections.remove(&id).is_some_and(|connection| connection.close.is_cancelled()) {
            self.closing -= 1;
        }
    }

    /// Connections open and not being closed: what counts against the limit.
    pub(super) fn live(&self) -> usize {
        self.connections.len() - self.closing
    }

    /// Closes the connection idle longest among those without a request in flight; `false`
    /// when every connection is busy (or being closed).
    pub(super) fn close_idlest(&mut self) -> bool {
        let now = elapsed_ms(self.origin);
        let idlest = self
            .connections
            .values()
            .filter(|connection| !connection.close.is_cancelled() && connection.is_idle())
            .max_by_key(|connection| connection.idle_ms(now));
        match idlest {
            Some(connection) => {
                connection.close.cancel();
                self.closing += 1;
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close (shutdown).
    pub(super) fn close_all(&mut self) {
        for connection in self.connections.values() {
            if !connection.close.is_cancelled() {
                connection.close.cancel();
                self.closing += 1;
            }
        }
    }
}

fn elapsed_ms(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_idlest_connection_without_a_request_in_flight_is_closed() {
        let mut registry = Registry::new();
        let mut tasks = tokio::task::JoinSet::new();
        let states: Vec<_> = (0..3)
            .map(|_| {
                let state = registry.open();
                registry.register(tasks.spawn(async {}).id(), Arc::clone(&state));
                state
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The oldest one is busy; of the other two, the second did something last.
        let busy = states[0].request_started();
        drop(states[2].request_started());
        assert_eq!(registry.live(), 3);
        assert!(registry.close_idlest());
        assert!(states[1].close.is_cancelled(), "idle longest without a request in flight");
        assert!(!states[0].close.is_cancelled() && !states[2].close.is_cancelled());
        assert_eq!(registry.live(), 2);
        assert!(registry.close_idlest());
        assert!(states[2].close.is_cancelled());
        assert!(!registry.close_idlest(), "the last one has a request in flight");
        drop(busy);
        assert!(states[0].is_idle());
        assert!(registry.close_idlest());
        assert_eq!(registry.live(), 0);
        let ids: Vec<Id> = registry.connections.keys().copied().collect();
        ids.into_iter().for_each(|id| registry.remove(id));
        assert_eq!((registry.live(), registry.closing), (0, 0), "closed connections that ended are forgotten");
    }
}
