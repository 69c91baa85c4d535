//! Deterministic 128-bit event ids derived from a source position or content + channel.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::Xxh3;

/// A deterministic event id: the same input (position or content + channel) gives the same id,
/// so a replayed or re-delivered event collapses downstream.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct EventId(pub u128);

impl EventId {
    /// Hashes the given parts, each length-prefixed so `["ab","c"]` and `["a","bc"]` differ.
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = Xxh3::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        EventId(hasher.digest128())
    }

    /// Big-endian bytes, as stored in Avro `fixed(16)`.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Inverse of [`EventId::to_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        EventId(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Error for an id that is not 32 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("event id must be 32 hexadecimal digits, got {0:?}")]
pub struct InvalidEventId(String);

impl FromStr for EventId {
    type Err = InvalidEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(InvalidEventId(s.to_string()));
        }
        u128::from_str_radix(s, 16).map(EventId).map_err(|_| InvalidEventId(s.to_string()))
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_same_id_and_boundaries_matter() {
        let a = EventId::from_parts([b"ab".as_slice(), b"c"]);
        let b = EventId::from_parts([b"ab".as_slice(), b"c"]);
        let c = EventId::from_parts([b"a".as_slice(), b"bc"]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn hex_round_trip() {
        let id = EventId::from_parts([b"x".as_slice()]);
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<EventId>().unwrap(), id);
        assert!("xyz".parse::<EventId>().is_err());
        assert_eq!(EventId::from_bytes(id.to_bytes()), id);
    }
}
