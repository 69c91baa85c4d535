//! SecureWatch I/O: the ingestion sources, the bounded ingest queue, the bus, and the sinks.
//!
//! Each source lives in `sources/<name>/` with its config struct, its server or reader and its
//! tests. Sources only move bytes: they cut the input into [`securewatch_schemas::RawRecord`]s
//! and enqueue them on the [`queue`]; normalisation happens inside the dataflow, so every
//! transport shares one path. [`bus`] carries records between `ingest` and `worker` processes,
//! [`sinks`] writes what the dataflow produced and reads it back for the API (one read
//! interface over every store), and [`enrichment`] loads and watches the reference files that
//! the dataflow tags events with.
//!
//! May depend on: `securewatch-schemas` and I/O crates (tokio, sqlx, rdkafka, redis, reqwest,
//! axum). Must not depend on: any operator crate or timely/differential (connectors and
//! operators are siblings over `schemas`; the binary wires them together). Tests may use
//! `securewatch-parse` to check that what a source hands over normalises.

#![warn(missing_docs)]

pub mod bus;
pub mod enrichment;
pub mod fd_limit;
pub mod http_listener;
pub mod log_limit;
pub mod queue;
pub mod secret;
pub mod settings;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod tls;

pub use tokio_util::sync::CancellationToken;
