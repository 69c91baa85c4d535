//! The fleet roles' bus plumbing: `ingest` publishes what its sources accept, `worker` reads the
//! bus into the dataflow and commits positions only after the outputs are durable.

mod config;
pub mod consume;
pub mod publish;

pub use config::{BusConfig, BusKind};
