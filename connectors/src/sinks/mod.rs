//! The sink layer: the write side (one run of epochs to every configured store, in order) and the
//! read side (one interface over the stores for the API), with SQLite, PostgreSQL and OpenSearch
//! each in a folder of its own.
//!
//! [`Sinks`] opens what the configuration names; the dataflow writes through [`Sinks::write`],
//! the API reads through [`Sinks::reader`]. A new sink touches its own folder, its config, this
//! module's fan-out and reader, and nothing in the binary.

pub mod audit;
mod fanout;
mod rows;
pub mod opensearch;
pub mod postgres;
pub mod progress;
pub mod read;
pub mod sqlite;
mod write;

pub use fanout::{SinkError, Sinks, Stored, OPENSEARCH_REJECTED};
pub use audit::{AuditEntry, AuditLog, AuditOutcome, AuditQuery};
pub use read::StoreReader;
pub use write::{DeadLetter, EpochWrite, WriteSummary};
