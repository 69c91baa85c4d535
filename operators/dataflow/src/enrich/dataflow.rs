//! The enrichment dataflow: windowed distinct (bucket, key) pairs joined with the references.

use differential_dataflow::operators::ThresholdTotal;
use differential_dataflow::VecCollection;
use ipnet::IpNet;

use super::EnrichInput;
use securewatch_schemas::{EnrichmentRow, GeoLookup, LookupKey, Reference, Tag};
use crate::time::TimeModel;
use securewatch_schemas::bucket_start;
use crate::time::Epoch;
use crate::window::{window, without_expiry, Windowed};

/// The outputs of [`build_enrichment`], at ingest-epoch times.
pub struct Enrichment<'scope> {
    /// Tag changes for the store, as differential updates (`+1` insert, `-1` delete), each
    /// row at most once. A reference edit re-tags the resident buckets at the epoch of the
    /// edit; a bucket's departure at its expiry epoch is not a change, so the store keeps the
    /// last tags of expired buckets.
    pub rows: VecCollection<'scope, Epoch, EnrichmentRow, isize>,
    /// The rows resident in memory: like `rows`, plus the retraction of each bucket at its
    /// expiry epoch. Never write it to a store; it serves gauges and tests.
    pub resident: VecCollection<'scope, Epoch, EnrichmentRow, isize>,
}

/// Builds the enrichment of `keys` (one update per event and lookup key, at the event's ingest
/// epoch) with `references` (the asset inventory and network lists, changing at run time).
///
/// Keys are windowed like the rollups ([`TimeModel::accepts`], retraction at
/// [`TimeModel::expiry_epoch`]); late keys are not enriched. The distinct `(bucket, key)`
/// pairs are joined with the assets by key, and each IP key is expanded to its prefixes
/// (`/0..=/32` or `/0..=/128`, host bits cleared) and joined with the networks by their
/// canonical network, so an IP gets one tag per `(list, network)` that contains it, nested
/// networks included. References are deduplicated (a network is compared by its canonical
/// form), so every output row has multiplicity one. Every step is keyed, so workers may feed
/// any subset of the keys and of the references.
pub fn build_enrichment<'scope>(
    keys: VecCollection<'scope, Epoch, EnrichInput, isize>,
    references: VecCollection<'scope, Epoch, Reference, isize>,
    config: TimeModel,
) -> Enrichment<'scope> {
    build_enrichment_with_geo(keys, references, config, None)
}

/// [`build_enrichment`], plus a [`Tag::Geo`] for each distinct (bucket, IP key) that `geo`
/// locates. The lookup is static (it is not a reference collection): each worker calls its
/// copy as keys enter and leave.
pub fn build_enrichment_with_geo<'scope>(
    keys: VecCollection<'scope, Epoch, EnrichInput, isize>,
    references: VecCollection<'scope, Epoch, Reference, isize>,
    config: TimeModel,
    geo: Option<GeoLookup>,
) -> Enrichment<'scope> {
    let Windowed { resident: windowed, late: _ } =
        window(keys, config, |input: &EnrichInput| input.event_time_ms);
    // Not `distinct_total` (see rollup.rs): keep a pair while it has a positive count.
    let present = windowed
        .map(|input| (bucket_start(input.event_time_ms), input.key))
        .threshold_total(|_, count: &isize| isize::from(*count > 0))
        .map(|(bucket, key)| (key, bucket));

    let references = references
        .map(Reference::canonical)
        .threshold_total(|_, count: &isize| isize::from(*count > 0));
    let assets = references.clone().flat_map(|reference| match reference {
        Reference::Asset { key, asset } => Some((key, asset)),
        Reference::Network { .. } => None,
    });
    let networks = references.flat_map(|reference| match reference {
        Reference::Network { list, net } => Some((net, list)),
        Reference::Asset { .. } => None,
    });

    let asset_rows = present
        .clone()
        .join_map(assets, |key, bucket, asset| EnrichmentRow {
            bucket_start_ms: *bucket,
            key: key.clone(),
            tag: Tag::Asset(asset.clone()),
        });
    let network_rows = present
        .clone()
        .flat_map(|(key, bucket)| match key {
            LookupKey::Ip(ip) => prefixes(ip)
                .map(|net| (net, (bucket, ip)))
                .collect::<Vec<_>>(),
            LookupKey::Host(_) => Vec::new(),
        })
        .join_map(networks, |net, (bucket, ip), list| EnrichmentRow {
            bucket_start_ms: *bucket,
            key: LookupKey::Ip(*ip),
            tag: Tag::Network {
                list: list.clone(),
                net: *net,
            },
        });

    let mut resident = asset_rows.concat(network_rows);
    if let Some(geo) = geo {
        let geo_rows = present.flat_map(move |(key, bucket)| match key {
            LookupKey::Ip(ip) => geo(ip).filter(|found| !found.is_empty()).map(|found| EnrichmentRow {
                bucket_start_ms: bucket,
                key,
                tag: Tag::Geo(found),
            }),
            LookupKey::Host(_) => None,
        });
        resident = resident.concat(geo_rows);
    }
    let rows = without_expiry(resident.clone(), config, |row: &EnrichmentRow| {
        row.bucket_start_ms
    });
    Enrichment { rows, resident }
}

/// Every network containing `ip`, from `/0` to the full length, host bits cleared.
fn prefixes(ip: std::net::IpAddr) -> impl Iterator<Item = IpNet> {
    let max = match ip {
        std::net::IpAddr::V4(_) => 32,
        std::net::IpAddr::V6(_) => 128,
    };
    (0..=max).filter_map(move |length| IpNet::new(ip, length).ok().map(|net| net.trunc()))
}
