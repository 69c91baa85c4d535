//! The write side of the sinks: what one run of completed dataflow epochs stores, and the summary.

use std::sync::Arc;

use securewatch_schemas::{Alert, EnrichmentRow, Event, RawRecord, RecordMeta, RollupChange};

use crate::sinks::progress::SourceProgress;

/// A record that could not become an event, kept with its reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The record as received.
    pub record: RawRecord,
    /// Metrics label, e.g. `invalid_json`.
    pub reason: &'static str,
    /// Human-readable explanation.
    pub detail: String,
}

impl DeadLetter {
    /// A dead letter for a normalised event a sink refused: the event as JSON, with the reason.
    pub fn for_event(event: &Event, reason: &'static str, detail: String) -> DeadLetter {
        DeadLetter {
            record: RawRecord {
                kind: event.source.kind,
                source_name: Arc::from(event.source.name.as_str()),
                tenant: event.tenant.clone(),
                peer: event.source.peer.clone(),
                received: event.received,
                body: serde_json::to_vec(event).unwrap_or_else(|_| event.message.as_bytes().to_vec()),
                meta: RecordMeta::None,
            },
            reason,
            detail,
        }
    }
}

/// Everything a run of completed dataflow epochs stores (to every sink, see [`super::fanout`]).
#[derive(Debug, Clone, Default)]
pub struct EpochWrite {
    /// Normalised events, stored once by id.
    pub events: Vec<Event>,
    /// Records that could not be normalised.
    pub dead_letters: Vec<DeadLetter>,
    /// Rollup rows to upsert (count 0: delete).
    pub rollups: Vec<RollupChange>,
    /// Events that arrived after their bucket closed, per bucket start (ms): added up.
    pub late: Vec<(u64, i64)>,
    /// Enrichment tag updates (`+1` insert, `-1` delete).
    pub enrichment: Vec<(EnrichmentRow, isize)>,
    /// Alert updates in order (`+1` store, `-1` delete).
    pub alerts: Vec<(Alert, isize)>,
    /// Source positions these outputs close, committed in the same transaction.
    pub progress: Vec<SourceProgress>,
}

/// What one write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Events newly stored.
    pub written: u64,
    /// Events already present (same id), not written again.
    pub duplicates: u64,
    /// Dead letters stored.
    pub dead_lettered: u64,
}
