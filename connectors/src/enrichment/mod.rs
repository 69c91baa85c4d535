//! Enrichment reference files: the asset inventory and IP/CIDR lists, loaded at start and reloaded on change.
//!
//! [`EnrichmentWatcher::start`] loads every file of [`EnrichmentConfig`] (an error is fatal) and
//! returns the initial [`Reference`](securewatch_schemas::Reference)s; [`EnrichmentWatcher::run`]
//! then polls the files and hands each valid change on as a diff (`+1` / `-1` per reference),
//! which the caller feeds into the dataflow's reference collection
//! ([`securewatch_dataflow::build_enrichment`]). An invalid edit keeps the last valid version.
//!
//! Formats:
//! * **assets** (CSV): a header naming `key` and any of `owner`, `criticality`, `tags`, then one
//!   row per asset; the key is an IP address or a host name (compared case-insensitively),
//!   tags are separated by `;`.
//! * **network lists**: one IP address or CIDR network per line, `#` comments, blank lines.
//! * **geoip**: a MaxMind City database, static: [`open_geoip`] gives the dataflow's lookup.

mod config;
mod files;
mod geoip;
#[cfg(test)]
mod tests;
mod watcher;

pub use config::{EnrichmentConfig, NetworkList};
pub use files::{parse_assets, parse_network_list, EnrichmentError};
pub use geoip::open_geoip;
pub use watcher::EnrichmentWatcher;
