//! The consumer of `securewatch worker`: a consumer group member that hands out entries in
//! batches and acknowledges them only when told.
//!
//! **Start position.** [`RedisConsumer::connect`] creates the group (`XGROUP CREATE … MKSTREAM`)
//! at the given [`StartPosition`] only when it does not exist yet; an existing group keeps its
//! own position, because everything after the caller's committed position is then either
//! undelivered or pending in the group (entries are acknowledged only after they are durable).
//! The pipeline passes the position committed in its store's progress table; to move an
//! existing group there explicitly use [`RedisConsumer::set_group_position`]. Re-reading older
//! entries to rebuild window state (committed position minus the longest window; Redis ids
//! are millisecond timestamps, see [`StartPosition::at_time`]) uses
//! [`RedisConsumer::read_range`], which leaves the group untouched.
//!
//! **Order of [`RedisConsumer::poll`].** First this consumer's own pending entries (delivered
//! before a restart and never acknowledged), then, every `claim_interval_ms`, entries idle
//! longer than `claim_min_idle_ms` in other consumers (`XAUTOCLAIM`), then new entries
//! (`XREADGROUP … BLOCK`).

use std::sync::Arc;
use std::time::Instant;

use ::redis::aio::ConnectionManager;
use chrono::{DateTime, Utc};
use securewatch_schemas::RawRecord;

use super::codec::{DecodeError, Decoder};
use super::protocol::{self, RawEntry};
use super::{connect, BusStats, RedisBusConfig, RedisBusError};
use crate::telemetry;

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// With the first entry still in the stream (`0`).
    Beginning,
    /// With entries added after the group is created (`$`).
    End,
    /// With the entries after this id (a committed position).
    After(String),
}

impl StartPosition {
    /// After every entry added before `time` (ids are `<milliseconds>-<sequence>`).
    pub fn at_time(time: DateTime<Utc>) -> StartPosition {
        StartPosition::After(format!("{}-0", time.timestamp_millis().max(1) - 1))
    }

    fn id(&self) -> &str {
        match self {
            StartPosition::Beginning => "0",
            StartPosition::End => "$",
            StartPosition::After(id) => id,
        }
    }
}

/// One delivered entry: its id (to acknowledge) and its record, or why it is not one (the
/// caller dead-letters it and acknowledges it like any other).
#[derive(Debug, Clone, PartialEq)]
pub struct BusEntry {
    /// The stream entry id, to acknowledge.
    pub id: String,
    /// The decoded record, or why the entry is not one.
    pub record: Result<RawRecord, DecodeError>,
    /// Whether this consumer read the entry before (its own pending entries after a restart):
    /// a caller that stores positions may find it durable already.
    pub own_pending: bool,
}

/// The consumer group's backlog on its stream (`XINFO GROUPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLag {
    /// Entries not yet delivered to the group; `None` when Redis cannot tell (after deletions
    /// in the middle of the stream).
    pub lag: Option<u64>,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
}

/// What the next poll reads first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// This consumer's own pending entries after this id.
    OwnPending(String),
    /// New entries (`>`).
    New,
}

/// A member of a consumer group on one stream.
pub struct RedisConsumer {
    /// The blocking `XREADGROUP`s; its timeout covers the block time.
    reader: ConnectionManager,
    /// Everything else (acks, claims, info), so an ack never waits behind a blocked read.
    commands: ConnectionManager,
    config: RedisBusConfig,
    phase: Phase,
    claim_cursor: String,
    next_claim: Instant,
    decoder: Decoder,
    stats: Arc<BusStats>,
}

impl std::fmt::Debug for RedisConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConsumer")
            .field("stream", &self.config.stream)
            .field("group", &self.config.group)
            .field("consumer", &self.config.consumer)
            .field("phase", &self.phase)
            .finish()
    }
}

impl RedisConsumer {
    /// Connects, creates the group at `start` unless it exists (see the module docs) and
    /// starts with this consumer's own pending entries.
    pub async fn connect(config: &RedisBusConfig, start: StartPosition) -> Result<Self, RedisBusError> {
        let commands = connect(config, config.response_timeout()).await?;
        let reader = connect(config, config.block() + config.response_timeout()).await?;
        let mut consumer = RedisConsumer {
            reader,
            commands,
            config: config.clone(),
            phase: Phase::OwnPending("0".to_string()),
            claim_cursor: "0-0".to_string(),
            next_claim: Instant::now(),
            decoder: Decoder::default(),
            stats: Arc::new(BusStats::new("redis", "stream", &config.stream)),
        };
        consumer.create_group(&start).await?;
        Ok(consumer)
    }

    async fn create_group(&mut self, start: &StartPosition) -> Result<(), RedisBusError> {
        let created: Result<(), _> = ::redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(start.id())
            .arg("MKSTREAM")
            .query_async(&mut self.commands)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Moves the group's last-delivered position (`XGROUP SETID`); pending entries stay
    /// pending.
    pub async fn set_group_position(&mut self, start: &StartPosition) -> Result<(), RedisBusError> {
        let () = ::redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(start.id())
            .query_async(&mut self.commands)
            .await?;
        Ok(())
    }

    /// The next batch of at most `batch_size` entries; empty when nothing arrived within
    /// `block_ms`. Entries stay pending until [`RedisConsumer::ack`].
    ///
    /// When the group is gone (Redis restarted without its data, or the group was destroyed)
    /// it is created again at the beginning of the stream, so that nothing written since is
    /// skipped, and this poll returns nothing.
    pub async fn poll(&mut self) -> Result<Vec<BusEntry>, RedisBusError> {
        match self.poll_group().await {
            Err(RedisBusError::Redis(error)) if error.code() == Some("NOGROUP") => {
                tracing::warn!(
                    stream = %self.config.stream,
                    group = %self.config.group,
                    "The consumer group is gone; creating it again at the beginning of the stream."
                );
                self.create_group(&StartPosition::Beginning).await?;
                self.phase = Phase::OwnPending("0".to_string());
                self.claim_cursor = "0-0".to_string();
                Ok(Vec::new())
            }
            Err(error) => {
                // A read that timed out may still have been served (Redis answers once it can):
                // its entries then wait in this consumer's pending list, so read that again next.
                self.phase = Phase::OwnPending("0".to_string());
                Err(error)
            }
            ok => ok,
        }
    }

    async fn poll_group(&mut self) -> Result<Vec<BusEntry>, RedisBusError> {
        if let Phase::OwnPending(after) = &self.phase {
            let entries = self.read_group(after.clone(), None).await?;
            match entries.last() {
                Some((last, _)) => {
                    self.phase = Phase::OwnPending(last.clone());
                    let (delivered, trimmed) = self.deliver(entries, Some("own_pending"));
                    self.forget_trimmed(&trimmed).await?;
                    return Ok(delivered);
                }
                None => self.phase = Phase::New,
            }
        }
        if Instant::now() >= self.next_claim {
            let claimed = self.claim().await?;
            if !claimed.is_empty() {
                return Ok(self.deliver(claimed, Some("claimed")).0);
            }
        }
        let entries = self.read_group(">".to_string(), Some(self.config.block_ms)).await?;
        Ok(self.deliver(entries, None).0)
    }

    async fn read_group(&mut self, after: String, block_ms: Option<u64>) -> Result<Vec<RawEntry>, RedisBusError> {
        let mut command = ::redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(self.config.batch_size);
        if let Some(block_ms) = block_ms {
            command.arg("BLOCK").arg(block_ms);
        }
        command.arg("STREAMS").arg(&self.config.stream).arg(after);
        let reply: ::redis::Value = command.query_async(&mut self.reader).await?;
        protocol::read_reply(reply)
    }

    /// One `XAUTOCLAIM` step; the scan continues from its cursor on the next poll, and waits
    /// `claim_interval_ms` once it went round the whole pending list.
    async fn claim(&mut self) -> Result<Vec<RawEntry>, RedisBusError> {
        let reply: ::redis::Value = ::redis::cmd("XAUTOCLAIM")
            .arg(&self.config.stream)
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg(self.config.claim_min_idle_ms)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(self.config.batch_size)
            .query_async(&mut self.commands)
            .await?;
        let (cursor, claimed, deleted) = protocol::autoclaim_reply(reply)?;
        if !deleted.is_empty() {
            metrics::counter!(telemetry::BUS_TRIMMED_PENDING, &self.labels()).increment(deleted.len() as u64);
            tracing::warn!(
                stream = %self.config.stream,
                entries = deleted.len(),
                "Pending entries were trimmed from the stream before they were acknowledged."
            );
        }
        if cursor == "0-0" {
            self.next_claim = Instant::now() + std::time::Duration::from_millis(self.config.claim_interval_ms);
        }
        self.claim_cursor = cursor;
        Ok(claimed)
    }

    /// Decodes entries; returns them and the ids of pending entries the stream no longer
    /// holds (nothing to hand out).
    fn deliver(&mut self, entries: Vec<RawEntry>, redelivery: Option<&'static str>) -> (Vec<BusEntry>, Vec<String>) {
        let mut delivered = Vec::with_capacity(entries.len());
        let mut trimmed = Vec::new();
        for (id, fields) in entries {
            let Some(fields) = fields else {
                trimmed.push(id);
                continue;
            };
            let record = self.decoder.decode(&fields);
            if let Err(error) = &record {
                self.stats.count_undecodable(error.reason());
            }
            delivered.push(BusEntry { id, record, own_pending: redelivery == Some("own_pending") });
        }
        self.stats.count_consumed(delivered.len() as u64);
        if let Some(reason) = redelivery {
            self.stats.count_redelivered(delivered.len() as u64, reason);
        }
        (delivered, trimmed)
    }

    /// Own pending entries trimmed from the stream: counted, and acknowledged so that they
    /// leave the pending list.
    async fn forget_trimmed(&mut self, ids: &[String]) -> Result<(), RedisBusError> {
        if ids.is_empty() {
            return Ok(());
        }
        metrics::counter!(telemetry::BUS_TRIMMED_PENDING, &self.labels()).increment(ids.len() as u64);
        tracing::warn!(
            stream = %self.config.stream,
            entries = ids.len(),
            "Own pending entries were trimmed from the stream before they were acknowledged."
        );
        let mut command = ::redis::cmd("XACK");
        command.arg(&self.config.stream).arg(&self.config.group).arg(ids);
        let _: u64 = command.query_async(&mut self.commands).await?;
        Ok(())
    }

    /// Acknowledges entries (`XACK`): call it only once all output derived from them is
    /// durable. Returns how many were pending in the group.
    pub async fn ack<I: AsRef<str>>(&mut self, ids: &[I]) -> Result<u64, RedisBusError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut command = ::redis::cmd("XACK");
        command.arg(&self.config.stream).arg(&self.config.group);
        for id in ids {
            command.arg(id.as_ref());
        }
        let acked: u64 = command.query_async(&mut self.commands).await?;
        self.stats.count_committed(acked);
        Ok(acked)
    }

    /// Up to `count` entries after `after` (exclusive; `-` for the first), read with `XRANGE`
    /// without touching the group: for replays from a committed position.
    pub async fn read_range(&mut self, after: &str, count: usize) -> Result<Vec<BusEntry>, RedisBusError> {
        let start = if after == "-" { "-".to_string() } else { format!("({after}") };
        let reply: ::redis::Value = ::redis::cmd("XRANGE")
            .arg(&self.config.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.commands)
            .await?;
        Ok(protocol::entries(reply)?
            .into_iter()
            .filter_map(|(id, fields)| fields.map(|fields| (id, fields)))
            .map(|(id, fields)| {
                let record = self.decoder.decode(&fields);
                BusEntry { id, record, own_pending: false }
            })
            .collect())
    }

    /// The group's lag and pending count (`XINFO GROUPS`), also set as gauges.
    pub async fn lag(&mut self) -> Result<GroupLag, RedisBusError> {
        let reply: ::redis::streams::StreamInfoGroupsReply =
            ::redis::cmd("XINFO").arg("GROUPS").arg(&self.config.stream).query_async(&mut self.commands).await?;
        let group = reply
            .groups
            .into_iter()
            .find(|group| group.name == self.config.group)
            .ok_or_else(|| RedisBusError::Reply(format!("group {} not found", self.config.group)))?;
        let lag = GroupLag { lag: group.lag.map(|lag| lag as u64), pending: group.pending as u64 };
        let mut labels = self.labels();
        labels.push(("group", self.config.group.clone()));
        if let Some(value) = lag.lag {
            metrics::gauge!(telemetry::BUS_CONSUMER_LAG, &labels).set(value as f64);
        }
        metrics::gauge!(telemetry::BUS_PENDING, &labels).set(lag.pending as f64);
        Ok(lag)
    }

    /// This consumer's counters.
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    fn labels(&self) -> Vec<(&'static str, String)> {
        self.stats.labels()
    }
}
