//! The writer's view of the local workers' progress: the epoch below which all output arrived.

use std::collections::BTreeMap;

use crate::time::Epoch;

/// Tracks the frontier each local worker's sink reported; their minimum is the epoch below
/// which every output of this process has arrived.
#[derive(Clone, Debug)]
pub struct FrontierTracker {
    /// Per global worker index: `Some(epoch)` or `None` once the worker finished.
    frontiers: BTreeMap<usize, Option<Epoch>>,
}

impl FrontierTracker {
    /// Starts with every local worker at epoch 0.
    pub fn new(first_worker: usize, local_workers: usize) -> Self {
        FrontierTracker { frontiers: (first_worker..first_worker + local_workers).map(|worker| (worker, Some(0))).collect() }
    }

    /// Records a worker's frontier and returns the combined one after it.
    pub fn update(&mut self, worker: usize, frontier: Option<Epoch>) -> Option<Epoch> {
        self.frontiers.insert(worker, frontier);
        self.combined()
    }

    /// The least frontier over the workers; `None` once all of them finished.
    pub fn combined(&self) -> Option<Epoch> {
        self.frontiers.values().flatten().min().copied()
    }

    /// Whether every worker finished (the dataflow completed).
    pub fn finished(&self) -> bool {
        self.combined().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_worker_holds_the_frontier() {
        let mut tracker = FrontierTracker::new(2, 2);
        assert_eq!(tracker.combined(), Some(0));
        assert_eq!(tracker.update(2, Some(100)), Some(0));
        assert_eq!(tracker.update(3, Some(50)), Some(50));
        assert_eq!(tracker.update(3, None), Some(100));
        assert!(!tracker.finished());
        assert_eq!(tracker.update(2, None), None);
        assert!(tracker.finished());
    }
}
