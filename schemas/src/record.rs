//! The raw record handed from sources to normalisation: one record's bytes plus transport metadata.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{SourceKind, Tenant};

/// Exactly one record as received, with the transport metadata its parser needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// Which kind of source produced it.
    pub kind: SourceKind,
    /// The configured source name (metrics label, `Event.source.name`).
    pub source_name: Arc<str>,
    /// The tenant the source's configuration assigns (shared, not copied per record).
    pub tenant: Tenant,
    /// Remote address (`ip:port`) for network sources; the file path for tailed files.
    pub peer: Option<String>,
    /// Ingest time.
    pub received: DateTime<Utc>,
    /// The record's bytes: one syslog message, one HEC envelope or raw line, one alert line.
    pub body: Vec<u8>,
    /// Transport metadata.
    pub meta: RecordMeta,
}

/// Transport metadata per kind of record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordMeta {
    /// Nothing beyond the common fields (syslog over UDP, TCP, or TLS without a client certificate).
    None,
    /// One JSON envelope of `/services/collector/event`; `index` is its position in the request.
    HecEvent {
        /// The request's metadata.
        meta: Arc<HecMeta>,
        /// Position of the envelope in the request.
        index: u32,
    },
    /// One line of `/services/collector/raw`; `index` is its position in the request.
    HecRaw {
        /// The request's metadata.
        meta: Arc<HecMeta>,
        /// Position of the line in the request.
        index: u32,
    },
    /// A message received over TLS from a client that presented a certificate (syslog).
    TlsPeer {
        /// The client certificate's subject, e.g. `CN=relay.example.com,O=Example`.
        identity: Arc<str>,
    },
    /// One line of a tailed file: file identity (`dev:inode`) and the line's byte offset.
    File {
        /// The file's identity, `dev:inode`.
        identity: String,
        /// Byte offset of the line.
        offset: u64,
    },
}

/// Request-level metadata of a HEC request, shared by all of its records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HecMeta {
    /// The token's configured name (never the secret itself).
    pub token_name: String,
    /// `X-Splunk-Request-Channel` header or `?channel=` parameter.
    pub channel: Option<String>,
    /// Metadata applied where an envelope (or raw request) does not say otherwise.
    pub defaults: HecDefaults,
}

/// HEC metadata: from the token's configuration, overridden by the query string (raw) or the
/// envelope keys (event).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HecDefaults {
    /// The event's host.
    pub host: Option<String>,
    /// Splunk's `source` (kept as the `source` field).
    pub source: Option<String>,
    /// Splunk's `sourcetype`, which also picks the Sigma log source.
    pub sourcetype: Option<String>,
    /// Splunk's `index` (kept as a field).
    pub index: Option<String>,
    /// Event time for raw requests (`?time=` epoch seconds).
    pub time: Option<DateTime<Utc>>,
}
