//! The roles of the binary: `run` and `worker` (dataflow, sinks, API) and `ingest` (sources to the bus).

mod ingest;
mod lifecycle;
mod publish;
mod run;

pub use lifecycle::private_data_dir;
pub use run::{run, Role};
