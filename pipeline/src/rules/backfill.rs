//! Rebuilding the open windows of correlations that a reload brought in, from stored events.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use securewatch_connectors::sinks::read::EventQuery;
use securewatch_connectors::sinks::StoreReader;
use securewatch_dataflow::engine::{Feed, Rules};
use securewatch_schemas::TenantScope;
use serde::Serialize;

use crate::runtime::DataflowControl;

/// Counter: matches fed to new correlations by backfills.
const BACKFILL_MATCHES: &str = "securewatch_correlation_backfill_matches_total";
/// Matches per backfill message to the dataflow.
const CHUNK: usize = 10_000;
/// Longest wait for the events ingested before a swap to be stored.
const DURABLE_WAIT: Duration = Duration::from_secs(30);

/// A swap that brought new correlations.
pub struct Swap {
    /// The rules now in force.
    pub rules: Arc<Rules>,
    /// Keys of the correlations that are new in them.
    pub new_keys: BTreeSet<u64>,
    /// Wall-clock time of the swap (ms since the Unix epoch).
    pub at_ms: u64,
}

/// What one backfill did.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    /// Event time from which stored events were read (RFC 3339).
    pub from: String,
    /// Stored events read and matched against the new rules.
    pub events: usize,
    /// Matches fed to the new correlations.
    pub matches: usize,
    /// The read stopped at `backfill_max_events`: older events of the span were left out.
    pub truncated: bool,
    /// Everything ingested before the swap was stored before the read; when `false` the wait
    /// timed out and events still in flight then may be missing from the new windows.
    pub complete: bool,
}

/// Reads stored events back into the dataflow for new correlations.
pub struct Backfiller {
    store: StoreReader,
    dataflow: DataflowControl,
    max_events: u32,
}

impl Backfiller {
    pub fn new(store: StoreReader, dataflow: DataflowControl, max_events: u32) -> Backfiller {
        Backfiller { store, dataflow, max_events }
    }

    /// Waits until the events ingested before the swap are stored, reads those of the new
    /// correlations' open windows, and feeds their matches to the new correlations only.
    ///
    /// Events ingested after the swap were matched by the new rules already; an event both
    /// stored and matched after the swap arrives twice, which the correlations absorb (they
    /// count distinct event ids).
    pub async fn run(&self, swap: &Swap) -> anyhow::Result<BackfillReport> {
        let complete = self.dataflow.wait_durable(swap.at_ms, DURABLE_WAIT).await;
        let correlations = &swap.rules.correlations;
        let span_ms = correlations
            .correlations
            .iter()
            .filter(|correlation| swap.new_keys.contains(&correlation.key))
            .map(|correlation| correlation.timespan_ms.saturating_add(correlation.settle_ms))
            .max()
            .unwrap_or(0)
            .saturating_add(self.dataflow.lateness_ms());
        let from_ms = swap.at_ms.saturating_sub(span_ms);
        let from = Utc.timestamp_millis_opt(from_ms as i64).single().unwrap_or_else(Utc::now);
        let query = EventQuery { limit: self.max_events, from: Some(from), ..EventQuery::default() };
        // A backfill rebuilds every tenant's correlation windows.
        let events = self.store.events(&query, &TenantScope::All).await?;
        let truncated = events.len() as u64 >= u64::from(self.max_events);

        let rules = Arc::clone(&swap.rules);
        let new_keys = swap.new_keys.clone();
        let scanned = events.len();
        let matches =
            tokio::task::spawn_blocking(move || rules.correlation_matches(&events, |key| new_keys.contains(&key))).await?;
        let fed = matches.len();
        let mut matches = matches.into_iter().peekable();
        while matches.peek().is_some() {
            let chunk: Vec<_> = matches.by_ref().take(CHUNK).collect();
            if !self.dataflow.send(Feed::Backfill(chunk)) {
                anyhow::bail!("the dataflow has stopped");
            }
        }
        metrics::counter!(BACKFILL_MATCHES).increment(fed as u64);
        if truncated {
            tracing::warn!(max_events = self.max_events, "Correlation backfill read only the newest events of its span.");
        }
        tracing::info!(events = scanned, matches = fed, complete, "New correlations backfilled from stored events.");
        Ok(BackfillReport { from: from.to_rfc3339(), events: scanned, matches: fed, truncated, complete })
    }
}
