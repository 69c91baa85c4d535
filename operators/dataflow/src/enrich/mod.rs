//! Enrichment: tags per (event-time bucket, lookup key) from reference collections that change at run time.
//!
//! Events are not enriched one by one. Each event yields its [`LookupKey`]s ([`lookup_keys`]);
//! the keys are windowed exactly like the rollups (bucketed by event time, accepted while their
//! bucket is open, retracted at its expiry epoch), and each distinct `(bucket, key)` pair is
//! joined with the references: the asset inventory (key → [`Asset`]) and named IP/CIDR lists
//! (list → network). So memory is bounded by the distinct keys of the resident buckets, and an
//! edit of a reference file (its diff fed as [`Reference`] updates) re-tags every pair still
//! resident at the epoch of the edit. Tags of expired buckets stay in the store as they were.
//! A reader finds an event's tags under `(bucket_start(event time), key)` for each of its keys.
//!
//! CIDR matching is "every match": an IP is tagged with each `(list, network)` containing it,
//! nested networks and several lists included; a reader wanting the most specific network picks
//! the longest prefix. With a [`GeoLookup`] (a static GeoIP database), each distinct IP key of
//! a bucket is also tagged with its [`Geo`] location.

mod dataflow;
#[cfg(test)]
mod tests;

use securewatch_schemas::{lookup_keys, Event, LookupKey};
use serde::{Deserialize, Serialize};

pub use dataflow::{build_enrichment, build_enrichment_with_geo, Enrichment};

/// The enrichment input: one lookup key of one event, with the event's time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnrichInput {
    /// Event time in milliseconds since the Unix epoch (times before 1970 are clamped to 0).
    pub event_time_ms: u64,
    /// The key.
    pub key: LookupKey,
}

/// The enrichment inputs of `event`: one per key of [`lookup_keys`], at the event's time.
pub fn enrich_inputs(event: &Event, ip_fields: &[String]) -> Vec<EnrichInput> {
    let event_time_ms = u64::try_from(event.time.timestamp_millis()).unwrap_or(0);
    lookup_keys(event, ip_fields)
        .into_iter()
        .map(|key| EnrichInput { event_time_ms, key })
        .collect()
}
