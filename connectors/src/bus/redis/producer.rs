//! The producer of `securewatch ingest`: one pipelined `XADD … MAXLEN ~ N *` per record.

use std::sync::Arc;

use ::redis::aio::ConnectionManager;
use securewatch_schemas::RawRecord;

use super::{codec, connect, BusProducer, BusStats, RedisBusConfig, RedisBusError};

/// Appends raw records to a stream. Cheap to clone; clones share one connection (commands of
/// concurrent batches are pipelined on it).
#[derive(Clone)]
pub struct RedisProducer {
    connection: ConnectionManager,
    stream: Arc<str>,
    max_len: u64,
    stats: Arc<BusStats>,
}

impl std::fmt::Debug for RedisProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProducer").field("stream", &self.stream).field("max_len", &self.max_len).finish()
    }
}

impl RedisProducer {
    /// Connects to `config.url`; fails when Redis cannot be reached now. Later outages fail
    /// the batches sent meanwhile, and the connection is re-established by itself.
    pub async fn connect(config: &RedisBusConfig) -> Result<Self, RedisBusError> {
        let connection = connect(config, config.response_timeout()).await?;
        Ok(RedisProducer {
            connection,
            stream: config.stream.as_str().into(),
            max_len: config.max_len,
            stats: Arc::new(BusStats::new("redis", "stream", &config.stream)),
        })
    }

    /// Appends the records in order, as one pipeline, and returns their entry ids. `Ok` only
    /// once Redis confirmed every entry; on `Err` none of them may be taken as sent (some may
    /// be on the stream: a retry sends them again).
    pub async fn send(&self, records: &[RawRecord]) -> Result<Vec<String>, RedisBusError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = ::redis::pipe();
        for record in records {
            let mut command = ::redis::cmd("XADD");
            command.arg(&*self.stream);
            if self.max_len > 0 {
                command.arg("MAXLEN").arg("~").arg(self.max_len);
            }
            command.arg("*");
            codec::append_fields(&mut command, record);
            pipeline.add_command(command);
        }
        let mut connection = self.connection.clone();
        let result: Result<Vec<String>, RedisBusError> =
            pipeline.query_async(&mut connection).await.map_err(RedisBusError::from).and_then(|ids: Vec<String>| {
                if ids.len() == records.len() {
                    Ok(ids)
                } else {
                    Err(RedisBusError::Reply(format!("{} ids for {} entries", ids.len(), records.len())))
                }
            });
        match &result {
            Ok(ids) => self.stats.count_produced(ids.len() as u64),
            Err(error) => {
                self.stats.count_produce_errors(records.len() as u64);
                tracing::warn!(stream = %self.stream, records = records.len(), %error, "Redis rejected a batch.");
            }
        }
        result
    }

    /// This producer's counters (shared by its clones).
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }
}

impl BusProducer for RedisProducer {
    type Error = RedisBusError;

    async fn send_records(&self, records: &[RawRecord]) -> Result<(), RedisBusError> {
        self.send(records).await.map(drop)
    }
}
