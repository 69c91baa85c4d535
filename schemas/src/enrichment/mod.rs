//! Enrichment data: lookup keys of an event, reference collections (asset inventory, network
//! lists), GeoIP locations, and the tag rows the dataflow derives from them.

mod keys;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use keys::{lookup_keys, parse_ip, LookupKey, LookupKeyError};

/// Fields searched for IP addresses by default: common flat names (HEC, Splunk CIM) and the
/// Wazuh names (`agent.ip`, decoded `data.srcip`/`data.dstip`, Windows event data, AWS
/// GuardDuty remote addresses) as they appear in Wazuh alerts.
pub const DEFAULT_IP_FIELDS: &[&str] = &[
    "src_ip",
    "srcip",
    "source_ip",
    "dest_ip",
    "dst_ip",
    "dstip",
    "destination_ip",
    "client_ip",
    "agent.ip",
    "data.srcip",
    "data.dstip",
    "data.src_ip",
    "data.dest_ip",
    "data.win.eventdata.ipAddress",
    "data.win.eventdata.sourceAddress",
    "data.win.eventdata.destAddress",
    "data.aws.service.action.awsApiCallAction.remoteIpDetails.ipAddressV4",
    "data.aws.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4",
];

/// An asset inventory entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Asset {
    /// Who owns the asset.
    pub owner: Option<String>,
    /// How critical it is (free text, e.g. `high`).
    pub criticality: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// One element of the reference collections.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reference {
    /// The asset behind a host name or IP address.
    Asset {
        /// The host or IP.
        key: LookupKey,
        /// What is known about it.
        asset: Asset,
    },
    /// A network in the named list (threat intelligence, internal ranges, ...).
    Network {
        /// The list's name.
        list: String,
        /// The network; a single address is a `/32` or `/128`.
        net: IpNet,
    },
}

impl Reference {
    /// The reference with its network's host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn canonical(self) -> Reference {
        match self {
            Reference::Network { list, net } => Reference::Network {
                list,
                net: net.trunc(),
            },
            asset => asset,
        }
    }
}

/// What a lookup key is tagged with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tag {
    /// The key's asset inventory entry.
    Asset(Asset),
    /// A network of a list that contains the key's IP.
    Network {
        /// The list's name.
        list: String,
        /// The (canonical) network that matched.
        net: IpNet,
    },
    /// Where the key's IP is, from a GeoIP database.
    Geo(Geo),
}

/// The location of an IP address. Coordinates are kept in millionths of a degree so that the
/// tag stays `Eq`, `Ord` and `Hash` (GeoIP databases carry four decimals at most).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// City name (English).
    pub city: Option<String>,
    /// Latitude in millionths of a degree.
    pub latitude_e6: Option<i32>,
    /// Longitude in millionths of a degree.
    pub longitude_e6: Option<i32>,
}

impl Geo {
    /// Degrees as millionths of a degree (`None` when out of range or not a number).
    pub fn to_e6(degrees: f64) -> Option<i32> {
        let scaled = (degrees * 1e6).round();
        (scaled.is_finite() && scaled.abs() <= 180e6).then_some(scaled as i32)
    }

    /// The latitude in degrees.
    pub fn latitude(&self) -> Option<f64> {
        self.latitude_e6.map(|value| f64::from(value) / 1e6)
    }

    /// The longitude in degrees.
    pub fn longitude(&self) -> Option<f64> {
        self.longitude_e6.map(|value| f64::from(value) / 1e6)
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        *self == Geo::default()
    }
}

/// Looks up where an IP address is (a GeoIP database, for instance). It must be a pure
/// function of the address: the dataflow calls it again when a key leaves, and the retraction
/// must match the insertion.
pub type GeoLookup = Arc<dyn Fn(IpAddr) -> Option<Geo> + Send + Sync>;

/// One tag of one lookup key in one event-time bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EnrichmentRow {
    /// Bucket start in event time, ms since the Unix epoch (see [`crate::bucket_start`]).
    pub bucket_start_ms: u64,
    /// The tagged key.
    pub key: LookupKey,
    /// The tag.
    pub tag: Tag,
}

