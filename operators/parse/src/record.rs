//! The raw record handed from sources to normalisation, and the dispatch to each parser.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use securewatch_schemas::{Event, SourceKind};

/// Exactly one record as received, with the transport metadata its parser needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    /// Which kind of source produced it.
    pub kind: SourceKind,
    /// The configured source name (metrics label, `Event.source.name`).
    pub source_name: Arc<str>,
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
    /// Nothing beyond the common fields (syslog).
    None,
    /// One JSON envelope of `/services/collector/event`; `index` is its position in the request.
    HecEvent { meta: Arc<HecMeta>, index: u32 },
    /// One line of `/services/collector/raw`; `index` is its position in the request.
    HecRaw { meta: Arc<HecMeta>, index: u32 },
    /// One line of a tailed file: file identity (`dev:inode`) and the line's byte offset.
    File { identity: String, offset: u64 },
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
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub index: Option<String>,
    /// Event time for raw requests (`?time=` epoch seconds).
    pub time: Option<DateTime<Utc>>,
}

/// Why a record could not become an event. [`ParseError::reason`] is the metrics label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("record is empty")]
    Empty,
    #[error("record kind {0} has no parser in this build")]
    Unsupported(SourceKind),
}

impl ParseError {
    /// A short, stable label for metrics (`rejected{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::InvalidJson(_) => "invalid_json",
            ParseError::MissingField(_) => "missing_field",
            ParseError::InvalidField { .. } => "invalid_field",
            ParseError::Empty => "empty",
            ParseError::Unsupported(_) => "unsupported",
        }
    }
}

/// Turns one raw record into an event. Syslog never fails (an unparseable message is kept
/// with its raw text and a `parse_error` field); HEC and Wazuh records that are not valid
/// give an error, which the caller dead-letters with its reason.
pub fn normalise(record: &RawRecord) -> Result<Event, ParseError> {
    match (&record.kind, &record.meta) {
        (SourceKind::Syslog, _) => Ok(crate::syslog::normalise(record)),
        (SourceKind::Hec, RecordMeta::HecEvent { meta, index }) => {
            crate::hec::normalise_event(record, meta, *index)
        }
        (SourceKind::Hec, RecordMeta::HecRaw { meta, index }) => {
            Ok(crate::hec::normalise_raw(record, meta, *index))
        }
        (SourceKind::Wazuh, _) => crate::wazuh::normalise(record),
        (kind, _) => Err(ParseError::Unsupported(*kind)),
    }
}
