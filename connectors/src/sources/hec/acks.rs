//! Indexer acknowledgement: ack ids per (token, channel), pending until their batch is durable.
//!
//! A request on a token with `ack = true` reserves room in its channel before its batch is
//! enqueued, then gets the channel's next id once accepted. The id reads `true` once its
//! batch is durable (then it is forgotten), `false` before, and `false` for ever when the batch
//! failed or the id is unknown (another process, a restart, an idle channel removed). Bounds:
//! channels, ids held per channel and in all (refused with 503 beyond), idle channels removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// Gauge: channels known to the ack registry.
pub const ACK_CHANNELS: &str = "securewatch_hec_ack_channels";
/// Gauge: ack ids held (batches not yet durable, plus durable ones not yet read as `true`).
pub const ACK_PENDING: &str = "securewatch_hec_ack_pending";
/// Counter: acknowledged batches by outcome (`durable`, `failed`).
pub const ACK_BATCHES: &str = "securewatch_hec_ack_batches_total";
/// Counter: channels removed after `idle_channel_secs` without a request, with the ids they held.
pub const ACK_IDLE_CHANNELS: &str = "securewatch_hec_ack_idle_channels_removed_total";

/// `[sources.hec.acks]`: the bounds of indexer acknowledgement (tokens turn it on with `ack`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecAckConfig {
    /// Most channels at once (default 100,000); a request opening one more gets 503 code 9.
    pub max_channels: u64,
    /// Most ack ids one channel holds (default 100,000): ids of batches not yet durable plus
    /// durable ones not yet read; beyond it the channel's requests get 503 code 9.
    pub max_pending_per_channel: u64,
    /// Most ack ids held over all channels (default 1,000,000; about 50 bytes each).
    pub max_pending: u64,
    /// A channel without a request (ingest or ack poll) for this many seconds is removed with
    /// its ids (default 300); they then read `false`.
    pub idle_channel_secs: u64,
}

impl Default for HecAckConfig {
    fn default() -> Self {
        HecAckConfig { max_channels: 100_000, max_pending_per_channel: 100_000, max_pending: 1_000_000, idle_channel_secs: 300 }
    }
}

impl HecAckConfig {
    /// Every bound positive; a channel's bound not above the total.
    pub fn validate(&self) -> Result<(), SettingError> {
        SettingError::positive("acks.max_channels", self.max_channels)?;
        SettingError::positive("acks.max_pending", self.max_pending)?;
        SettingError::within(
            "acks.max_pending_per_channel",
            self.max_pending_per_channel,
            self.max_pending,
            "a channel cannot hold more ids than all channels together (acks.max_pending)",
        )?;
        SettingError::within("acks.idle_channel_secs", self.idle_channel_secs, 86_400, "idle channels hold memory")
    }
}

/// Why a request could not get room for an ack id (answered 503 code 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckRefusal {
    /// `max_channels` channels exist and this one is new.
    TooManyChannels,
    /// The channel holds `max_pending_per_channel` ids.
    ChannelFull,
    /// All channels together hold `max_pending` ids.
    Full,
}

impl AckRefusal {
    /// The metrics reason.
    pub fn reason(self) -> &'static str {
        match self {
            AckRefusal::TooManyChannels => "ack_channels_full",
            AckRefusal::ChannelFull => "ack_channel_full",
            AckRefusal::Full => "ack_pending_full",
        }
    }
}

/// A channel of one token: the token's position among the configured ones and the channel id.
pub(crate) type ChannelKey = (usize, String);

/// One channel's ids.
#[derive(Debug)]
struct Channel {
    next_id: u64,
    /// Ids whose batch is not durable yet.
    waiting: HashSet<u64>,
    /// Ids whose batch is durable and that were not read yet.
    durable: HashSet<u64>,
    /// Requests that reserved room and have no id yet.
    reserved: u64,
    last_used: Instant,
}

impl Channel {
    fn held(&self) -> u64 {
        (self.waiting.len() + self.durable.len()) as u64 + self.reserved
    }
}

#[derive(Debug, Default)]
struct Channels {
    by_key: HashMap<ChannelKey, Channel>,
    /// Ids held and room reserved over all channels.
    held: u64,
}

/// Every channel of one HEC source.
#[derive(Debug)]
pub(crate) struct AckRegistry {
    channels: Mutex<Channels>,
    limits: HecAckConfig,
    source: String,
}

/// Room for one ack id in a channel, held between the request's acceptance checks and its
/// answer; given back when dropped unused (the request failed).
#[derive(Debug)]
pub(crate) struct AckReservation {
    registry: Arc<AckRegistry>,
    key: Option<ChannelKey>,
}

impl AckRegistry {
    pub fn new(limits: HecAckConfig, source: &str) -> Arc<Self> {
        Arc::new(AckRegistry { channels: Mutex::new(Channels::default()), limits, source: source.to_string() })
    }

    fn lock(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, channels: &Channels) {
        let source = self.source.clone();
        metrics::gauge!(ACK_CHANNELS, "source" => source.clone()).set(channels.by_key.len() as f64);
        metrics::gauge!(ACK_PENDING, "source" => source).set(channels.held as f64);
    }

    /// Reserves room for one id in `key`'s channel (opening it if new), within the bounds.
    pub fn reserve(self: &Arc<Self>, key: ChannelKey, now: Instant) -> Result<AckReservation, AckRefusal> {
        let mut channels = self.lock();
        if channels.held >= self.limits.max_pending {
            return Err(AckRefusal::Full);
        }
        let open = channels.by_key.len() as u64;
        let channel = match channels.by_key.get_mut(&key) {
            Some(channel) => channel,
            None if open >= self.limits.max_channels => return Err(AckRefusal::TooManyChannels),
            None => channels.by_key.entry(key.clone()).or_insert_with(|| Channel {
                next_id: 0,
                waiting: HashSet::new(),
                durable: HashSet::new(),
                reserved: 0,
                last_used: now,
            }),
        };
        channel.last_used = now;
        if channel.held() >= self.limits.max_pending_per_channel {
            return Err(AckRefusal::ChannelFull);
        }
        channel.reserved += 1;
        channels.held += 1;
        self.publish(&channels);
        Ok(AckReservation { registry: Arc::clone(self), key: Some(key) })
    }

    /// The ids of `key`'s channel that read `true` now (each forgotten once read); unknown
    /// channels and ids read `false`.
    pub fn query(&self, key: &ChannelKey, ids: &[u64], now: Instant) -> Vec<(u64, bool)> {
        let mut channels = self.lock();
        let Some(channel) = channels.by_key.get_mut(key) else {
            return ids.iter().map(|id| (*id, false)).collect();
        };
        channel.last_used = now;
        let answers: Vec<(u64, bool)> = ids.iter().map(|id| (*id, channel.durable.remove(id))).collect();
        let read = answers.iter().filter(|(_, durable)| *durable).count() as u64;
        channels.held -= read;
        self.publish(&channels);
        answers
    }

    /// Records the outcome of `id`'s batch: durable ids wait to be read, failed ones are
    /// forgotten (they read `false` for ever).
    pub fn settle(&self, key: &ChannelKey, id: u64, durable: bool) {
        let outcome = if durable { "durable" } else { "failed" };
        metrics::counter!(ACK_BATCHES, "source" => self.source.clone(), "outcome" => outcome).increment(1);
        let mut channels = self.lock();
        let Some(channel) = channels.by_key.get_mut(key) else { return };
        if !channel.waiting.remove(&id) {
            return;
        }
        if durable {
            channel.durable.insert(id);
        } else {
            channels.held -= 1;
            self.publish(&channels);
        }
    }

    /// Removes the channels unused for `idle_channel_secs` (those with a request in flight
    /// stay); returns how many.
    pub fn remove_idle(&self, now: Instant) -> usize {
        let idle = Duration::from_secs(self.limits.idle_channel_secs);
        let mut channels = self.lock();
        let mut freed = 0;
        let before = channels.by_key.len();
        channels.by_key.retain(|_, channel| {
            let keep = channel.reserved > 0 || now.saturating_duration_since(channel.last_used) < idle;
            if !keep {
                freed += channel.held();
            }
            keep
        });
        channels.held -= freed;
        let removed = before - channels.by_key.len();
        if removed > 0 {
            metrics::counter!(ACK_IDLE_CHANNELS, "source" => self.source.clone()).increment(removed as u64);
            self.publish(&channels);
        }
        removed
    }

    /// How often to look for idle channels: a tenth of the idle time, 1 to 30 seconds.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs((self.limits.idle_channel_secs / 10).clamp(1, 30))
    }
}

impl AckReservation {
    /// Turns the reservation into the channel's next id: already durable, or waiting for its
    /// batch ([`AckRegistry::settle`]). `None` when the channel was removed meanwhile.
    pub fn issue(mut self, durable: bool) -> Option<u64> {
        let key = self.key.take()?;
        let mut channels = self.registry.lock();
        let channel = channels.by_key.get_mut(&key)?;
        channel.reserved -= 1;
        let id = channel.next_id;
        channel.next_id += 1;
        if durable {
            channel.durable.insert(id);
        } else {
            channel.waiting.insert(id);
        }
        Some(id)
    }

    /// The channel this reservation is in.
    pub fn key(&self) -> Option<&ChannelKey> {
        self.key.as_ref()
    }
}

impl Drop for AckReservation {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut channels = self.registry.lock();
        if let Some(channel) = channels.by_key.get_mut(&key) {
            channel.reserved -= 1;
            channels.held -= 1;
            self.registry.publish(&channels);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max_channels: u64, per_channel: u64, total: u64) -> Arc<AckRegistry> {
        let limits = HecAckConfig { max_channels, max_pending_per_channel: per_channel, max_pending: total, idle_channel_secs: 60 };
        AckRegistry::new(limits, "hec")
    }

    fn key(channel: &str) -> ChannelKey {
        (0, channel.to_string())
    }

    #[test]
    fn ids_count_per_channel_and_read_true_once() {
        let acks = registry(10, 10, 100);
        let now = Instant::now();
        let first = acks.reserve(key("a"), now).unwrap().issue(false).unwrap();
        let second = acks.reserve(key("a"), now).unwrap().issue(true).unwrap();
        let other = acks.reserve(key("b"), now).unwrap().issue(false).unwrap();
        let other_token = acks.reserve((1, "a".into()), now).unwrap().issue(false).unwrap();
        assert_eq!((first, second, other, other_token), (0, 1, 0, 0));
        assert_eq!(acks.query(&key("a"), &[0, 1, 7], now), [(0, false), (1, true), (7, false)]);
        assert_eq!(acks.query(&key("a"), &[1], now), [(1, false)], "read once, then forgotten");
        acks.settle(&key("a"), 0, true);
        assert_eq!(acks.query(&key("a"), &[0], now), [(0, true)]);
        acks.settle(&key("b"), 0, false);
        assert_eq!(acks.query(&key("b"), &[0], now), [(0, false)]);
        acks.settle(&key("b"), 0, true); // a late outcome of a forgotten id changes nothing
        assert_eq!(acks.query(&key("b"), &[0], now), [(0, false)], "a failed batch reads false for ever");
        assert_eq!(acks.query(&key("unknown"), &[0], now), [(0, false)]);
        assert_eq!(acks.lock().held, 1, "only (1, a) 0 is still waiting");
    }

    #[test]
    fn bounds_refuse_and_unused_reservations_give_room_back() {
        let acks = registry(2, 2, 3);
        let now = Instant::now();
        let held = acks.reserve(key("a"), now).unwrap();
        acks.reserve(key("a"), now).unwrap().issue(false).unwrap();
        assert_eq!(acks.reserve(key("a"), now).unwrap_err(), AckRefusal::ChannelFull);
        acks.reserve(key("b"), now).unwrap().issue(false).unwrap();
        assert_eq!(acks.reserve(key("c"), now).unwrap_err(), AckRefusal::Full);
        drop(held);
        assert_eq!(acks.reserve(key("c"), now).unwrap_err(), AckRefusal::TooManyChannels);
        assert_eq!(acks.reserve(key("a"), now).unwrap().issue(false), Some(1), "the dropped one used no id");
        acks.settle(&key("a"), 0, true);
        assert_eq!(acks.query(&key("a"), &[0], now), [(0, true)]);
        assert_eq!(acks.reserve(key("a"), now).unwrap().issue(false), Some(2));
    }

    #[test]
    fn idle_channels_are_removed_unless_a_request_is_in_flight() {
        let acks = registry(10, 10, 100);
        let start = Instant::now();
        acks.reserve(key("quiet"), start).unwrap().issue(true).unwrap();
        let in_flight = acks.reserve(key("busy"), start).unwrap();
        assert_eq!(acks.remove_idle(start + Duration::from_secs(59)), 0);
        assert_eq!(acks.remove_idle(start + Duration::from_secs(61)), 1);
        assert_eq!(acks.query(&key("quiet"), &[0], start), [(0, false)], "its ids are gone");
        assert_eq!(in_flight.issue(false), Some(0));
        assert_eq!(acks.lock().held, 1);
        assert_eq!(acks.sweep_interval(), Duration::from_secs(6));
    }

    #[test]
    fn config_defaults_and_validation() {
        let config: HecAckConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, HecAckConfig::default());
        config.validate().unwrap();
        let zero = HecAckConfig { max_channels: 0, ..HecAckConfig::default() };
        assert!(zero.validate().unwrap_err().to_string().contains("acks.max_channels"));
        let over = HecAckConfig { max_pending_per_channel: 2_000_000, ..HecAckConfig::default() };
        assert!(over.validate().unwrap_err().to_string().contains("must be at most 1000000"));
        assert!(serde_json::from_str::<HecAckConfig>(r#"{"max_chanels":1}"#).is_err());
    }
}
