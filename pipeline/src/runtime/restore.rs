//! Rebuilding the dataflow's state at start from the store, so a restart (after a crash too)
//! continues the open rollup buckets and correlation windows instead of starting them empty.
//!
//! Rollup rows are written as full counts, so a worker that started empty would overwrite a
//! stored count with the count of the events since its start. Before any new record enters,
//! the stored events of the buckets still open are fed back ([`Feed::Restore`]: they count in
//! the rollups, are not written again, and never count as late), and the matches of the stored
//! events in the longest correlation window go to every correlation ([`Feed::Backfill`]).
//! Together with the source positions committed in the same transaction as the outputs, the
//! state after a restart is the state before it: nothing counted twice, nothing missing.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use securewatch_connectors::sinks::read::EventQuery;
use securewatch_connectors::sinks::StoreReader;
use securewatch_dataflow::engine::{Feed, Rules};
use securewatch_schemas::{TenantScope, BUCKET_MS};

/// Counter: stored events read back at start.
const RESTORED_EVENTS: &str = "securewatch_restored_events_total";
/// Events or matches per message to the dataflow.
const CHUNK: usize = 10_000;

/// What a start-up restore read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Stored events read back.
    pub events: usize,
    /// Correlation matches among them.
    pub matches: usize,
    /// The read stopped at `max_events`: the oldest events of the span are missing.
    pub truncated: bool,
}

/// The feeds that rebuild the state of open buckets and windows from `store`, as of now.
pub async fn restore_feeds(
    store: &StoreReader,
    lateness_ms: u64,
    rules: Option<Arc<Rules>>,
    max_events: u32,
) -> anyhow::Result<(Vec<Feed>, RestoreReport)> {
    // A bucket is open while the epoch is below its start + one bucket + the lateness; one more
    // bucket of margin, the dataflow decides exactly.
    let rollup_span = lateness_ms.saturating_add(2 * BUCKET_MS);
    let correlation_span = rules
        .as_ref()
        .and_then(|rules| {
            let spans = rules.correlations.correlations.iter();
            spans.map(|correlation| correlation.timespan_ms.saturating_add(correlation.settle_ms)).max()
        })
        .map_or(0, |span| span.saturating_add(lateness_ms));
    let now_ms = securewatch_dataflow::now_ms();
    let from_ms = now_ms.saturating_sub(rollup_span.max(correlation_span));
    let from = Utc.timestamp_millis_opt(from_ms as i64).single().unwrap_or_else(Utc::now);
    let query = EventQuery { limit: max_events, from: Some(from), ..EventQuery::default() };
    // A restore rebuilds every tenant's state, however long the store makes it wait.
    let events = store.for_startup().events(&query, &TenantScope::All).await?;
    let truncated = events.len() as u64 >= u64::from(max_events);
    let mut report = RestoreReport { events: events.len(), matches: 0, truncated };
    if events.is_empty() {
        return Ok((Vec::new(), report));
    }
    let matches = match rules {
        Some(rules) => {
            let events = events.clone();
            tokio::task::spawn_blocking(move || rules.correlation_matches(&events, |_| true)).await?
        }
        None => Vec::new(),
    };
    report.matches = matches.len();
    let rollup_from = now_ms.saturating_sub(rollup_span);
    let rollup_events: Vec<_> =
        events.into_iter().filter(|event| event.time.timestamp_millis() >= rollup_from as i64).collect();
    let mut feeds: Vec<Feed> = rollup_events.chunks(CHUNK).map(|chunk| Feed::Restore(chunk.to_vec())).collect();
    feeds.extend(matches.chunks(CHUNK).map(|chunk| Feed::Backfill(chunk.to_vec())));
    metrics::counter!(RESTORED_EVENTS).increment(report.events as u64);
    if truncated {
        tracing::warn!(max_events, "The start-up restore read only the newest events of its span.");
    }
    tracing::info!(events = report.events, matches = report.matches, "Open buckets and windows restored from the store.");
    Ok((feeds, report))
}
