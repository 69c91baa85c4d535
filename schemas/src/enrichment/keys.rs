//! Lookup keys of an event: its host, its sender's IP and the IPs in configured fields.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::{Event, FieldValue};
use serde::{Deserialize, Serialize};

/// What an event is enriched by: a host name (lowercase) or an IP address (canonical: an
/// IPv4-mapped IPv6 address is its IPv4 address).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LookupKey {
    /// A host name, lowercased.
    Host(String),
    /// An IP address.
    Ip(IpAddr),
}

impl LookupKey {
    /// A host key; the name is trimmed and lowercased. `None` for a blank name.
    pub fn host(name: &str) -> Option<LookupKey> {
        let name = name.trim();
        (!name.is_empty()).then(|| LookupKey::Host(name.to_lowercase()))
    }

    /// The key of an asset-file entry: an IP address when `text` is one, else a host name.
    pub fn parse_asset_key(text: &str) -> Option<LookupKey> {
        match parse_ip(text) {
            Some(ip) => Some(LookupKey::Ip(ip)),
            None => LookupKey::host(text),
        }
    }
}

/// `host:<name>` or `ip:<address>`, as the store keeps it.
impl fmt::Display for LookupKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupKey::Host(name) => write!(formatter, "host:{name}"),
            LookupKey::Ip(ip) => write!(formatter, "ip:{ip}"),
        }
    }
}

/// Error of parsing a [`LookupKey`] from its display form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a lookup key (host:<name> or ip:<address>): {0:?}")]
pub struct LookupKeyError(pub String);

impl FromStr for LookupKey {
    type Err = LookupKeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || LookupKeyError(text.to_string());
        if let Some(name) = text.strip_prefix("host:") {
            return LookupKey::host(name).ok_or_else(invalid);
        }
        if let Some(ip) = text.strip_prefix("ip:") {
            return IpAddr::from_str(ip)
                .map(|ip| LookupKey::Ip(ip.to_canonical()))
                .map_err(|_| invalid());
        }
        Err(invalid())
    }
}

/// An IP address in `text`: a bare address, or the address of `ip:port` / `[v6]:port`.
/// Canonical, so `::ffff:10.0.0.1` is `10.0.0.1`.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    IpAddr::from_str(text)
        .ok()
        .or_else(|| SocketAddr::from_str(text).ok().map(|address| address.ip()))
        .map(|ip| ip.to_canonical())
}

/// The lookup keys of `event`, sorted and without duplicates:
///
/// * its `host` as [`LookupKey::Host`] (lowercased), and also as [`LookupKey::Ip`] when the
///   host is an IP address;
/// * the IP of `source.peer` (`ip:port` or `[v6]:port`; a file path yields nothing);
/// * the IP addresses in the fields named by `ip_fields` (a string, or each item of a list;
///   values that are not IP addresses are skipped).
pub fn lookup_keys(event: &Event, ip_fields: &[String]) -> Vec<LookupKey> {
    let mut keys = Vec::new();
    if let Some(host) = &event.host {
        keys.extend(LookupKey::host(host));
        keys.extend(parse_ip(host).map(LookupKey::Ip));
    }
    if let Some(peer) = &event.source.peer {
        keys.extend(parse_ip(peer).map(LookupKey::Ip));
    }
    for name in ip_fields {
        match event.fields.get(name) {
            Some(FieldValue::Str(text)) => keys.extend(parse_ip(text).map(LookupKey::Ip)),
            Some(FieldValue::List(items)) => {
                keys.extend(items.iter().filter_map(|item| parse_ip(item)).map(LookupKey::Ip))
            }
            _ => {}
        }
    }
    keys.sort();
    keys.dedup();
    keys
}
