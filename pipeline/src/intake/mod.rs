//! What feeds a worker's dataflow besides the sources: the embedded journal (`run`) and the
//! Kafka / Redis consumers (`worker`), with the `[bus]` settings.

mod config;
pub mod consume;
pub mod journal;

pub use config::{BusConfig, BusKind};
