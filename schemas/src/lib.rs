//! SecureWatch data contracts: the types every other crate shares, their Avro schemas and codec.
//!
//! Everything that crosses a component boundary (queue, bus, dataflow, store, API) is one of
//! these types: the [`RawRecord`] a source hands over, the normalised [`Event`], the [`Alert`],
//! the rollup rows and changes ([`rollup`]) and the enrichment keys, references and tag rows
//! ([`enrichment`]).
//!
//! May depend on: serialisation and small data crates only. Must not depend on any other
//! SecureWatch crate, on timely/differential, on tokio or on any database or network client.
//! The Avro schemas under `avro/` are the source of truth for the bus; the Rust types mirror
//! them and [`avro`] converts between the two in the Confluent wire format.

#![warn(missing_docs)]

mod alert;
pub mod avro;
pub mod enrichment;
mod event;
mod hec_time;
mod id;
mod record;
pub mod query;
pub mod rollup;
mod severity;
mod tenant;

pub use alert::{Alert, AlertLevel};
pub use event::{flatten_json, Event, FieldValue, Fields, Source, SourceKind};
pub use hec_time::{epoch_from_number, parse_epoch_seconds};
pub use id::EventId;
pub use record::{HecDefaults, HecMeta, RawRecord, RecordMeta};
pub use severity::Severity;
pub use tenant::{Tenant, TenantNameError, TenantScope, DEFAULT_TENANT, MAX_TENANT_LEN};
pub use enrichment::{
    lookup_keys, parse_ip, Asset, EnrichmentRow, Geo, GeoLookup, LookupKey, LookupKeyError, Reference, Tag,
    DEFAULT_IP_FIELDS,
};
pub use rollup::{bucket_start, changes, top_hosts, HostVolume, RollupChange, RollupKey, RollupRow, RollupTable, BUCKET_MS};
