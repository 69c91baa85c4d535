//! Counters of one bus producer or consumer, kept as numbers and reported as metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry;

/// Counters of one producer or consumer, also reported as metrics labelled with the bus and
/// the stream (Redis) or topic (Kafka).
#[derive(Debug)]
pub struct BusStats {
    labels: Vec<(&'static str, String)>,
    produced: AtomicU64,
    produce_errors: AtomicU64,
    consumed: AtomicU64,
    committed: AtomicU64,
    redelivered: AtomicU64,
    undecodable: AtomicU64,
}

/// A snapshot of [`BusStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusCounts {
    /// Records the bus confirmed (Redis: `XADD` answered; Kafka: delivery report without error).
    pub produced: u64,
    /// Records of failed batches: not confirmed, the sender is told to retry.
    pub produce_errors: u64,
    /// Entries handed to the caller (records and undecodable ones, redeliveries included).
    pub consumed: u64,
    /// Entries made final after their output was durable: Redis entries acknowledged with
    /// `XACK` (that were pending); Kafka offsets the group's committed position advanced by.
    pub committed: u64,
    /// Entries delivered again (Redis: own pending entries after a restart, and entries claimed
    /// from dead consumers).
    pub redelivered: u64,
    /// Entries that were not records of the expected layout (handed out as `Err`).
    pub undecodable: u64,
}

impl BusStats {
    /// Counters labelled `bus = <bus>` and `<target_label> = <target>` (`stream` or `topic`).
    pub(crate) fn new(bus: &'static str, target_label: &'static str, target: &str) -> Self {
        BusStats {
            labels: vec![("bus", bus.to_string()), (target_label, target.to_string())],
            produced: AtomicU64::new(0),
            produce_errors: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
        }
    }

    /// The current counts.
    pub fn snapshot(&self) -> BusCounts {
        BusCounts {
            produced: self.produced.load(Ordering::Relaxed),
            produce_errors: self.produce_errors.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
            committed: self.committed.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            undecodable: self.undecodable.load(Ordering::Relaxed),
        }
    }

    /// The metric labels: bus and stream or topic.
    pub(crate) fn labels(&self) -> Vec<(&'static str, String)> {
        self.labels.clone()
    }

    fn labels_with(&self, name: &'static str, value: impl Into<String>) -> Vec<(&'static str, String)> {
        let mut labels = self.labels();
        labels.push((name, value.into()));
        labels
    }

    pub(crate) fn count_produced(&self, records: u64) {
        self.produced.fetch_add(records, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_PRODUCED, &self.labels).increment(records);
    }

    pub(crate) fn count_produce_errors(&self, records: u64) {
        self.produce_errors.fetch_add(records, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_PRODUCE_ERRORS, &self.labels).increment(records);
    }

    pub(crate) fn count_consumed(&self, entries: u64) {
        self.consumed.fetch_add(entries, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_CONSUMED, &self.labels).increment(entries);
    }

    pub(crate) fn count_committed(&self, entries: u64) {
        self.committed.fetch_add(entries, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_ACKED, &self.labels).increment(entries);
    }

    /// `reason`: `own_pending` or `claimed` (Redis).
    pub(crate) fn count_redelivered(&self, entries: u64, reason: &'static str) {
        self.redelivered.fetch_add(entries, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_REDELIVERED, &self.labels_with("reason", reason)).increment(entries);
    }

    /// `reason`: [`super::DecodeError::reason`].
    pub(crate) fn count_undecodable(&self, reason: &'static str) {
        self.undecodable.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::BUS_UNDECODABLE, &self.labels_with("reason", reason)).increment(1);
    }

    /// Sets a gauge with this bus's labels plus `extra`.
    pub(crate) fn set_gauge(&self, name: &'static str, extra: &[(&'static str, String)], value: f64) {
        let mut labels = self.labels();
        labels.extend(extra.iter().cloned());
        metrics::gauge!(name, &labels).set(value);
    }
}
