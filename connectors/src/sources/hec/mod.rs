//! Splunk-compatible HTTP Event Collector source: `/services/collector/{event,raw,health}`.
//!
//! Requests are authorised with `Authorization: Splunk <token>` (compared in constant time),
//! decoded (gzip, capped while decompressing), cut into one [`RawRecord`] per envelope or
//! line and enqueued as one batch. The answer — Splunk's status codes and JSON bodies — is
//! given only once the batch is durable: `200 {"text":"Success","code":0}` then means stored.
//! A token with `ack = true` (indexer acknowledgement) needs a channel, is answered once the
//! batch is journaled with an `ackId`, and `POST /services/collector/ack` tells when that id's
//! batch is durable. A request that does not fit the ingest queue gets
//! `503 {"text":"Server is busy","code":9}`.
//!
//! [`RawRecord`]: securewatch_schemas::RawRecord

mod acks;
mod config;
mod request;
mod response;
mod server;
pub mod split;
pub mod token;

use std::net::SocketAddr;

pub use acks::{HecAckConfig, ACK_BATCHES, ACK_CHANNELS, ACK_IDLE_CHANNELS, ACK_PENDING};
pub use config::{HecConfig, HecTokenConfig};
pub use server::HecSource;

/// Why the HEC source could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HecError {
    /// The configuration is unusable (no token, duplicate tokens, zero limits).
    #[error("invalid HEC configuration: {0}")]
    InvalidConfig(String),
    /// The listen address could not be bound.
    #[error("HEC cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA file is unusable.
    #[error("HEC {0}")]
    Tls(#[from] crate::tls::TlsError),
}

#[cfg(test)]
mod ack_tests;
#[cfg(test)]
mod tests;
