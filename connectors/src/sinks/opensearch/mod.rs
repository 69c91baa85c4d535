//! OpenSearch sink: events indexed through `_bulk` with `create` and their deterministic id.
//!
//! [`OpenSearchSink::connect`] installs the index template (mappings for the [`Event`] fields)
//! and the ISM retention policy, then [`OpenSearchSink::write`] indexes a batch of events:
//! split into `_bulk` requests bounded by bytes and documents, each document created under its
//! [`EventId`] so a re-delivered event answers 409 and is counted as already stored. Items
//! answered 429 or 5xx are re-sent alone with exponential backoff and full jitter; other 4xx
//! items come back as [`DeadLetter`]s with their reason. The write returns `Ok` only when every
//! event is stored, already stored or dead-lettered; otherwise it fails, the caller does not
//! commit its progress and the events are delivered again — none is dropped.
//!
//! [`Event`]: securewatch_schemas::Event
//! [`EventId`]: securewatch_schemas::EventId

mod bulk;
mod client;
mod config;
mod setup;
mod sink;

pub use config::{AuthConfig, Credentials, FieldsMapping, IndexMode, OpenSearchConfig, RetryConfig, TlsConfig};
pub use setup::{index_template, ism_policy};
pub use sink::{BulkOutcome, DeadLetter, OpenSearchSink};

/// Why the OpenSearch sink could not start or could not store a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenSearchError {
    /// The configuration is unusable.
    #[error("invalid OpenSearch configuration: {0}")]
    InvalidConfig(String),
    /// A secret's environment variable is unset or empty.
    #[error("OpenSearch secret: environment variable {variable} is unset or empty")]
    MissingSecret {
        /// The variable named by `password_env` or `token_env`.
        variable: String,
    },
    /// The CA file could not be read or holds no certificate.
    #[error("OpenSearch TLS: {0}")]
    Tls(String),
    /// The HTTP client could not be built.
    #[error("OpenSearch HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The cluster could not be reached, or answered 429 / 5xx to the whole request, on every
    /// attempt.
    #[error("OpenSearch unavailable for {what} after {attempts} attempts: {last}")]
    Unavailable {
        /// The request (`bulk`, `index template`, `ISM policy`).
        what: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Documents were still answered 429 / 5xx after the last attempt; they are not stored
    /// (the others of the write may be).
    #[error("OpenSearch did not store {pending} documents after {attempts} attempts (last status {last_status}: {last_reason})")]
    NotStored {
        /// Documents still refused.
        pending: usize,
        /// Attempts made.
        attempts: u32,
        /// Status of the last refusal.
        last_status: u16,
        /// Reason of the last refusal.
        last_reason: String,
    },
    /// The cluster refused a whole request with a status that a retry cannot fix (401, 403,
    /// 400 …).
    #[error("OpenSearch refused the {what} request with status {status}: {body}")]
    Rejected {
        /// The request.
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer could not be understood (not JSON, wrong number of items).
    #[error("OpenSearch answered {what} unexpectedly: {detail}")]
    Protocol {
        /// The request.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The protocol-level fake OpenSearch (feature `fake`), for tests of code that uses the sink.
#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;
