//! SecureWatch data contracts: the normalised [`Event`], its Avro schema and wire codec.
//!
//! Everything that crosses a component boundary (queue, bus, store, API) is one of these types.
//! The Avro schemas under `avro/` are the source of truth for the bus; the Rust types mirror
//! them and [`avro`] converts between the two in the Confluent wire format.

mod alert;
pub mod avro;
mod event;
mod id;
mod severity;

pub use alert::{Alert, AlertLevel};
pub use event::{flatten_json, Event, FieldValue, Fields, Source, SourceKind};
pub use id::EventId;
pub use severity::Severity;
