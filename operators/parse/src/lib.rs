//! Pure parsers from raw records to the normalised [`securewatch_schemas::Event`]; no I/O.
//!
//! May depend on: `securewatch-schemas` and parsing crates. Must not depend on: connectors,
//! timely/differential, tokio, files, sockets or databases.
//!
//! Sources hand over [`RawRecord`](securewatch_schemas::RawRecord)s (exactly one record's bytes plus transport metadata);
//! [`normalise`] turns each into an `Event`. The same function serves the in-process path of
//! `securewatch run` and, later, the dataflow workers that consume raw records from a bus, so
//! there is one normalisation path whatever the transport.

#![warn(missing_docs)]

pub mod hec;
mod record;
pub mod syslog;
pub mod wazuh;

pub use record::{normalise, ParseError, PEER_IDENTITY_FIELD};
