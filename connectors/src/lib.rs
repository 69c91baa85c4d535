//! SecureWatch I/O: the ingestion sources, the bounded ingest queue and the event store.
//!
//! Each source lives in `sources/<name>/` with its config struct, its server or reader and its
//! tests. Sources only move bytes: they cut the input into [`securewatch_schemas::RawRecord`]s
//! and enqueue them on the [`queue`]; normalisation happens after the queue (today in
//! `pipeline`'s normaliser, later inside the dataflow), so every transport shares one path.
//! [`enrichment`] loads and watches the reference files that the dataflow tags events with.

pub mod bus;
pub mod enrichment;
pub mod queue;
pub mod sinks;
pub mod sources;
pub mod telemetry;

pub use tokio_util::sync::CancellationToken;
