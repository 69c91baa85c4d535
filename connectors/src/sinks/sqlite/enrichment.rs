//! Enrichment tags: the dataflow's tag changes written idempotently, and the tags of events read back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use securewatch_schemas::{bucket_start, EnrichmentRow, LookupKey, Tag};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::store::{SqliteStore, StoreError};
use crate::sinks::rows::sql_ms;
use crate::sinks::read::{AssetTag, EnrichmentLookup, EventEnrichment, GeoTag, NetworkTag};

/// Rows per multi-row statement (at most 4 bound values each, well below SQLite's 32766 limit).
const ROWS_PER_STATEMENT: usize = 2000;

/// Applies enrichment changes inside the caller's transaction: the diffs of each
/// `(bucket, key, tag)` are summed first; a positive sum inserts the row, a negative one
/// deletes it, zero does nothing. Idempotent: applying the same changes again leaves the table
/// as it is. Returns the number of rows inserted or deleted.
pub async fn apply_enrichment_changes(
    tx: &mut SqliteConnection,
    rows: &[(EnrichmentRow, isize)],
) -> Result<u64, StoreError> {
    let mut net: BTreeMap<(i64, String, String), (isize, &'static str)> = BTreeMap::new();
    for (row, diff) in rows {
        let id = (sql_ms(row.bucket_start_ms), row.key.to_string(), serde_json::to_string(&row.tag)?);
        net.entry(id).or_insert((0, kind(&row.tag))).0 += diff;
    }
    let inserts: Vec<_> = net.iter().filter(|(_, (diff, _))| *diff > 0).collect();
    let deletes: Vec<_> = net.iter().filter(|(_, (diff, _))| *diff < 0).map(|(id, _)| id).collect();
    let mut touched = 0;
    for chunk in inserts.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT OR IGNORE INTO enrichment_tags (bucket_start_ms, lookup_key, kind, tag) ");
        builder.push_values(chunk, |mut values, ((bucket, key, tag), (_, kind))| {
            values.push_bind(*bucket).push_bind(key.as_str()).push_bind(*kind).push_bind(tag.as_str());
        });
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
        let mut builder: QueryBuilder<Sqlite> =
            QueryBuilder::new("DELETE FROM enrichment_tags WHERE (bucket_start_ms, lookup_key, tag) IN (");
        builder.push_values(chunk, |mut values, (bucket, key, tag)| {
            values.push_bind(*bucket).push_bind(key.as_str()).push_bind(tag.as_str());
        });
        builder.push(")");
        touched += builder.build().execute(&mut *tx).await?.rows_affected();
    }
    Ok(touched)
}

impl SqliteStore {
    /// The stored tags of each event (same order as `events`): the rows of the event's bucket
    /// for each of its keys.
    pub async fn event_enrichment(&self, events: &[EnrichmentLookup]) -> Result<Vec<EventEnrichment>, StoreError> {
        let wanted: BTreeSet<(i64, String)> = events
            .iter()
            .flat_map(|event| {
                let bucket = sql_ms(bucket_start(u64::try_from(event.time.timestamp_millis()).unwrap_or(0)));
                event.keys.iter().map(move |key| (bucket, key.to_string()))
            })
            .collect();
        let wanted: Vec<_> = wanted.into_iter().collect();
        let mut tags: HashMap<(i64, String), Vec<Tag>> = HashMap::new();
        for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT bucket_start_ms, lookup_key, tag FROM enrichment_tags WHERE (bucket_start_ms, lookup_key) IN (",
            );
            builder.push_values(chunk, |mut values, (bucket, key)| {
                values.push_bind(*bucket).push_bind(key.as_str());
            });
            builder.push(")");
            for row in builder.build().fetch_all(self.pool()).await? {
                let tag: String = row.try_get("tag")?;
                let id = (row.try_get("bucket_start_ms")?, row.try_get("lookup_key")?);
                tags.entry(id).or_default().push(serde_json::from_str(&tag)?);
            }
        }
        Ok(events
            .iter()
            .map(|event| {
                let bucket = sql_ms(bucket_start(u64::try_from(event.time.timestamp_millis()).unwrap_or(0)));
                let mut enrichment = EventEnrichment::default();
                for key in &event.keys {
                    let Some(found) = tags.get(&(bucket, key.to_string())) else { continue };
                    for tag in found {
                        match tag {
                            Tag::Asset(asset) => enrichment.assets.push(AssetTag {
                                key: key.to_string(),
                                owner: asset.owner.clone(),
                                criticality: asset.criticality.clone(),
                                tags: asset.tags.clone(),
                            }),
                            Tag::Network { list, net } => enrichment.networks.push(NetworkTag {
                                ip: address(key),
                                list: list.clone(),
                                cidr: net.to_string(),
                            }),
                            Tag::Geo(geo) => enrichment.geo.push(GeoTag {
                                ip: address(key),
                                country: geo.country.clone(),
                                city: geo.city.clone(),
                                lat: geo.latitude(),
                                lon: geo.longitude(),
                            }),
                        }
                    }
                }
                enrichment.assets.sort();
                enrichment.networks.sort();
                enrichment.geo.sort_by(|a, b| a.ip.cmp(&b.ip));
                enrichment
            })
            .collect())
    }
}

fn kind(tag: &Tag) -> &'static str {
    match tag {
        Tag::Asset(_) => "asset",
        Tag::Network { .. } => "network",
        Tag::Geo(_) => "geo",
    }
}

/// The address of an IP key (a network or geo tag is only ever on one).
fn address(key: &LookupKey) -> String {
    match key {
        LookupKey::Ip(ip) => ip.to_string(),
        LookupKey::Host(name) => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::{DateTime, Utc};

    use securewatch_schemas::{Asset, Geo};
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::Connection;

    use super::*;
    use crate::sinks::sqlite::SqliteConfig;

    fn key(text: &str) -> LookupKey {
        LookupKey::parse_asset_key(text).unwrap()
    }

    fn asset_row(bucket: u64, name: &str, owner: &str) -> EnrichmentRow {
        EnrichmentRow {
            bucket_start_ms: bucket,
            key: key(name),
            tag: Tag::Asset(Asset { owner: Some(owner.into()), criticality: Some("high".into()), tags: vec!["pci".into()] }),
        }
    }

    fn network_row(bucket: u64, ip: &str, list: &str, net: &str) -> EnrichmentRow {
        EnrichmentRow { bucket_start_ms: bucket, key: key(ip), tag: Tag::Network { list: list.into(), net: net.parse().unwrap() } }
    }

    fn time(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    async fn count(connection: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM enrichment_tags").fetch_one(&mut *connection).await.unwrap()
    }

    #[tokio::test]
    async fn enrichment_changes_are_consolidated_idempotent_and_read_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let path = dir.path().join(&SqliteConfig::default().file);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).unwrap();
        let mut connection = SqliteConnection::connect_with(&options).await.unwrap();

        let first = vec![
            (asset_row(60_000, "web-1", "alice"), 1),
            (network_row(60_000, "10.1.2.3", "internal", "10.0.0.0/8"), 1),
            (network_row(60_000, "10.1.2.3", "threat", "10.1.2.3/32"), 1),
            (
                EnrichmentRow {
                    bucket_start_ms: 60_000,
                    key: key("10.1.2.3"),
                    tag: Tag::Geo(Geo { country: Some("NL".into()), city: None, latitude_e6: Some(52_374_000), longitude_e6: Some(4_889_700) }),
                },
                1,
            ),
            (asset_row(120_000, "web-1", "alice"), 1),
            // Inserted and retracted in the same batch: nothing to do.
            (asset_row(120_000, "db-1", "bob"), 1),
            (asset_row(120_000, "db-1", "bob"), -1),
        ];
        let mut tx = connection.begin().await.unwrap();
        assert_eq!(apply_enrichment_changes(&mut tx, &first).await.unwrap(), 5);
        tx.commit().await.unwrap();
        assert_eq!(apply_enrichment_changes(&mut connection, &first).await.unwrap(), 0, "idempotent");
        assert_eq!(count(&mut connection).await, 5);

        // A reference edit: web-1 changes owner in bucket 120 s only.
        let edit = vec![(asset_row(120_000, "web-1", "alice"), -1), (asset_row(120_000, "web-1", "carol"), 1)];
        assert_eq!(apply_enrichment_changes(&mut connection, &edit).await.unwrap(), 2);
        assert_eq!(apply_enrichment_changes(&mut connection, &edit).await.unwrap(), 0, "idempotent");
        assert_eq!(count(&mut connection).await, 5);

        let lookups = vec![
            EnrichmentLookup { time: time(61_000), keys: vec![key("web-1"), key("10.1.2.3"), key("10.9.9.9")] },
            EnrichmentLookup { time: time(179_999), keys: vec![key("web-1")] },
            EnrichmentLookup { time: time(180_000), keys: vec![key("web-1")] },
            EnrichmentLookup { time: time(61_000), keys: vec![] },
        ];
        let found = store.event_enrichment(&lookups).await.unwrap();
        assert_eq!(found.len(), 4);
        assert_eq!(
            serde_json::to_value(&found[0]).unwrap(),
            serde_json::json!({
                "assets": [{"key": "host:web-1", "owner": "alice", "criticality": "high", "tags": ["pci"]}],
                "networks": [
                    {"ip": "10.1.2.3", "list": "internal", "cidr": "10.0.0.0/8"},
                    {"ip": "10.1.2.3", "list": "threat", "cidr": "10.1.2.3/32"}
                ],
                "geo": [{"ip": "10.1.2.3", "country": "NL", "city": null, "lat": 52.374, "lon": 4.8897}]
            })
        );
        assert_eq!(found[1].assets[0].owner.as_deref(), Some("carol"));
        assert!(found[1].networks.is_empty() && found[1].geo.is_empty());
        assert_eq!(serde_json::to_value(&found[1]).unwrap().get("networks"), None, "empty lists are omitted");
        assert!(found[2].is_empty() && found[3].is_empty());
        store.close().await;
    }
}
