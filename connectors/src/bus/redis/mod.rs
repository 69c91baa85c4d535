//! The Redis Streams bus: [`RedisProducer`] appends raw records to a stream for
//! `securewatch ingest`, [`RedisConsumer`] reads them in a consumer group for
//! `securewatch worker`.
//!
//! **Delivery.** At least once. A producer batch is `Ok` only after Redis answered every `XADD`
//! of its pipeline; a failed batch may still have left some entries on the stream, which a
//! retry then writes again (the workers' deterministic event ids make that harmless). A
//! consumer acknowledges (`XACK`) only what its caller hands to [`RedisConsumer::ack`], which
//! the caller does once everything derived from those entries is durable. Entries left pending
//! by a consumer that died are claimed by another with `XAUTOCLAIM` once idle for
//! `claim_min_idle_ms`; a restarted consumer of the same name re-reads its own pending entries
//! first.
//!
//! The layout of a record in an entry is described in [`codec`]. Counters: [`BusStats`].

pub mod codec;
mod config;
mod consumer;
mod producer;
mod protocol;
#[cfg(test)]
mod tests;

pub use super::{BusCounts, BusProducer, BusStats};
pub use codec::DecodeError;
pub use config::RedisBusConfig;
pub use consumer::{BusEntry, GroupLag, RedisConsumer, StartPosition};
pub use producer::RedisProducer;

/// Errors of the Redis Streams bus.
#[derive(Debug, thiserror::Error)]
pub enum RedisBusError {
    /// The configuration is refused.
    #[error("invalid Redis bus configuration: {0}")]
    Config(String),
    /// A Redis command or connection failed.
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis answered with a reply of an unexpected shape.
    #[error("unexpected Redis reply: {0}")]
    Reply(String),
}

/// Opens a connection manager (reconnects by itself after Redis comes back) whose commands
/// fail after `response_timeout`.
pub(crate) async fn connect(
    config: &RedisBusConfig,
    response_timeout: std::time::Duration,
) -> Result<::redis::aio::ConnectionManager, RedisBusError> {
    config.validate()?;
    let client = config.client()?;
    let manager_config = ::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout()))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(std::time::Duration::from_secs(2));
    Ok(::redis::aio::ConnectionManager::new_with_config(client, manager_config).await?)
}
