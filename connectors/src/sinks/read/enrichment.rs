//! Enrichment reads: which tags an event's lookup keys carry in its bucket.

use chrono::{DateTime, Utc};
use securewatch_schemas::LookupKey;
use serde::Serialize;

/// What [`SqliteStore::event_enrichment`] needs to know of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentLookup {
    /// The event time: it picks the bucket.
    pub time: DateTime<Utc>,
    /// The event's lookup keys (`securewatch_schemas::lookup_keys`).
    pub keys: Vec<LookupKey>,
}

/// The tags of one event as the API shows them (`"enrichment"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventEnrichment {
    /// Asset inventory entries of the event's host or addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<AssetTag>,
    /// Listed networks containing the event's addresses: one per (address, list, network).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkTag>,
    /// Locations of the event's addresses (GeoIP).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub geo: Vec<GeoTag>,
}

impl EventEnrichment {
    /// Whether the event has no tags.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty() && self.networks.is_empty() && self.geo.is_empty()
    }
}

/// A location tag: the event's address and where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeoTag {
    /// The address.
    pub ip: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// City name.
    pub city: Option<String>,
    /// Latitude in degrees.
    pub lat: Option<f64>,
    /// Longitude in degrees.
    pub lon: Option<f64>,
}

/// An asset tag: the key it was found under (`host:web-1`, `ip:10.0.0.5`) and the entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AssetTag {
    /// The lookup key, `host:<name>` or `ip:<address>`.
    pub key: String,
    /// Owner, when listed.
    pub owner: Option<String>,
    /// Criticality, when listed.
    pub criticality: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
}

/// A network tag: the event's address, the list and the network that contains it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct NetworkTag {
    /// The address.
    pub ip: String,
    /// The list's name.
    pub list: String,
    /// The network, in CIDR notation.
    pub cidr: String,
}
