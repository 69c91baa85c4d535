//! Read queries over the embedded store for the API: events newest first, dead letters.

use chrono::{DateTime, Utc};
use securewatch_schemas::{Event, EventId, Fields, Severity, Source, SourceKind, Tenant, TenantScope};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::store::{SqliteStore, StoreError};
use crate::sinks::rows::tenant_condition;
use crate::sinks::read::{EventCursor, EventPage, EventQuery, StoredDeadLetter, StoredEvent};

fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped.push('%');
    escaped
}

pub(super) fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// The columns [`row_to_event`] reads.
pub(super) const EVENT_COLUMNS: &str =
    "id, time_us, received_us, source_kind, source_name, peer, host, severity, category, message, fields, raw, tenant";

impl SqliteStore {
    /// Events of `scope`'s tenants matching `query`, newest event time first.
    pub async fn events(&self, query: &EventQuery, scope: &TenantScope) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self.event_page(query, scope).await?.events)
    }

    /// Events of `scope`'s tenants matching `query`, newest event time first, read row by row
    /// until `limit` or until they hold `max_bytes` (then the page says where to continue).
    pub async fn event_page(&self, query: &EventQuery, scope: &TenantScope) -> Result<EventPage, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS}, seq FROM events WHERE {}",
            tenant_condition("tenant", scope)
        ));
        if let Some(after) = query.after {
            builder.push(" AND (time_us < ").push_bind(after.time_us);
            builder.push(" OR (time_us = ").push_bind(after.time_us).push(" AND seq < ").push_bind(after.seq).push("))");
        }
        if let Some(source) = &query.source {
            builder.push(" AND (source_kind = ").push_bind(source.clone());
            builder.push(" OR source_name = ").push_bind(source.clone()).push(")");
        }
        if let Some(host) = &query.host {
            builder.push(" AND host = ").push_bind(host.clone());
        }
        if let Some(q) = &query.q {
            builder.push(" AND message LIKE ").push_bind(escape_like(q)).push(" ESCAPE '\\'");
        }
        if let Some(from) = query.from {
            builder.push(" AND time_us >= ").push_bind(from.timestamp_micros());
        }
        if let Some(to) = query.to {
            builder.push(" AND time_us < ").push_bind(to.timestamp_micros());
        }
        builder.push(" ORDER BY time_us DESC, seq DESC LIMIT ").push_bind(i64::from(query.limit));
        let mut rows = builder.build().fetch(self.pool());
        let mut page = EventPage::default();
        let mut bytes = 0usize;
        while let Some(row) = rows.try_next().await? {
            let event = row_to_event(&row)?;
            let fields_bytes = row.try_get::<&str, _>("fields").map_or(0, str::len);
            bytes += event.message.len() + fields_bytes + event.raw.as_ref().map_or(0, String::len);
            page.events.push(event);
            if query.max_bytes.is_some_and(|max| bytes >= max) && page.events.len() < query.limit as usize {
                page.next = Some(EventCursor { time_us: row.try_get("time_us")?, seq: row.try_get("seq")? });
                break;
            }
        }
        Ok(page)
    }

    /// The most recent dead letters of `scope`'s tenants, newest first.
    pub async fn dead_letters(&self, limit: u32, scope: &TenantScope) -> Result<Vec<StoredDeadLetter>, StoreError> {
        // Only the checked tenant condition is interpolated; the limit is bound.
        let sql = format!(
            "SELECT received_us, source_kind, source_name, peer, reason, detail, body, tenant \
             FROM dead_letters WHERE {} ORDER BY seq DESC LIMIT ?",
            tenant_condition("tenant", scope)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let body: Vec<u8> = row.try_get("body")?;
                Ok(StoredDeadLetter {
                    received: micros_to_time(row.try_get("received_us")?),
                    source_kind: row.try_get("source_kind")?,
                    source_name: row.try_get("source_name")?,
                    tenant: row.try_get("tenant")?,
                    peer: row.try_get("peer")?,
                    reason: row.try_get("reason")?,
                    detail: row.try_get("detail")?,
                    body: String::from_utf8_lossy(&body).into_owned(),
                })
            })
            .collect()
    }

    /// Number of stored events (for health and tests).
    pub async fn event_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(self.pool()).await?)
    }
}

pub(super) fn row_to_event(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StoreError> {
    let id_bytes: Vec<u8> = row.try_get("id")?;
    let id = <[u8; 16]>::try_from(id_bytes.as_slice())
        .map(EventId::from_bytes)
        .map_err(|_| StoreError::Sql(sqlx::Error::Decode("event id is not 16 bytes".into())))?;
    let kind: String = row.try_get("source_kind")?;
    let fields: String = row.try_get("fields")?;
    let severity: i64 = row.try_get("severity")?;
    Ok(Event {
        id,
        time: micros_to_time(row.try_get("time_us")?),
        received: micros_to_time(row.try_get("received_us")?),
        source: Source {
            kind: SourceKind::parse(&kind).unwrap_or(SourceKind::File),
            name: row.try_get("source_name")?,
            peer: row.try_get("peer")?,
        },
        tenant: Tenant::from_stored(row.try_get("tenant")?),
        host: row.try_get("host")?,
        severity: Severity::from_code(severity.clamp(0, 7) as u8),
        category: row.try_get("category")?,
        message: row.try_get("message")?,
        fields: serde_json::from_str::<Fields>(&fields)?,
        raw: row.try_get("raw")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::sqlite::SqliteConfig;
    use crate::sinks::{DeadLetter, EpochWrite};
    use securewatch_schemas::{RawRecord, RecordMeta};
    use securewatch_schemas::FieldValue;

    fn event(seed: &str, seconds: i64, host: &str, message: &str) -> Event {
        let mut fields = Fields::new();
        fields.insert("seed".into(), FieldValue::from(seed));
        Event {
            tenant: Default::default(),
            id: EventId::from_parts([seed.as_bytes()]),
            time: DateTime::from_timestamp(seconds, 0).unwrap(),
            received: DateTime::from_timestamp(seconds + 1, 0).unwrap(),
            source: Source { kind: SourceKind::Syslog, name: "syslog".into(), peer: None },
            host: Some(host.into()),
            severity: Severity::Warning,
            category: None,
            message: message.into(),
            fields,
            raw: None,
        }
    }

    #[tokio::test]
    async fn writes_once_and_queries_newest_first_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let events = vec![
            event("a", 100, "web-01", "Failed password for root"),
            event("b", 300, "web-02", "Accepted publickey 100%_sure"),
            event("c", 200, "web-01", "session opened"),
        ];
        let first = store.write_epochs(&EpochWrite { events: events.clone(), ..EpochWrite::default() }).await.unwrap();
        assert_eq!((first.written, first.duplicates), (3, 0));
        let again = store.write_epochs(&EpochWrite { events: events[..2].to_vec(), ..EpochWrite::default() }).await.unwrap();
        assert_eq!((again.written, again.duplicates), (0, 2));
        assert_eq!(store.event_count().await.unwrap(), 3);

        let all = store.events(&EventQuery { limit: 10, ..Default::default() }, &TenantScope::All).await.unwrap();
        let order: Vec<_> = all.iter().map(|event| event.message.as_str()).collect();
        assert_eq!(order, ["Accepted publickey 100%_sure", "session opened", "Failed password for root"]);
        assert_eq!(all[0], events[1], "an event reads back exactly as written");

        let web01 = EventQuery { limit: 10, host: Some("web-01".into()), ..Default::default() };
        assert_eq!(store.events(&web01, &TenantScope::All).await.unwrap().len(), 2);
        let like = EventQuery { limit: 10, q: Some("100%_".into()), ..Default::default() };
        assert_eq!(store.events(&like, &TenantScope::All).await.unwrap().len(), 1);
        let wildcard = EventQuery { limit: 10, q: Some("%".into()), ..Default::default() };
        assert_eq!(store.events(&wildcard, &TenantScope::All).await.unwrap().len(), 1, "% is literal");
        let limited = EventQuery { limit: 1, source: Some("syslog".into()), ..Default::default() };
        assert_eq!(store.events(&limited, &TenantScope::All).await.unwrap().len(), 1);
        let other = EventQuery { limit: 10, source: Some("hec".into()), ..Default::default() };
        assert!(store.events(&other, &TenantScope::All).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn dead_letters_keep_reason_and_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let record = RawRecord {
            tenant: Default::default(),
            kind: SourceKind::Wazuh,
            source_name: "wazuh".into(),
            peer: Some("/tmp/alerts.json".into()),
            received: Utc::now(),
            body: b"{not json".to_vec(),
            meta: RecordMeta::None,
        };
        let letter = DeadLetter { record, reason: "invalid_json", detail: "EOF at column 9".into() };
        let summary = store.write_epochs(&EpochWrite { dead_letters: vec![letter], ..EpochWrite::default() }).await.unwrap();
        assert_eq!(summary.dead_lettered, 1);
        let stored = store.dead_letters(10, &TenantScope::All).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].reason, "invalid_json");
        assert_eq!(stored[0].body, "{not json");
    }

    /// Issue 24 finding 2: ten thousand 60 KB events built a 602 MB answer. A byte cap ends the
    /// page early with a cursor, and the pages together hold every event once, in order.
    #[tokio::test]
    async fn a_byte_cap_ends_a_page_with_a_cursor_that_continues_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let big = "x".repeat(10_000);
        // 30 events, two per second of event time, so pages also end inside a tie of times.
        let events: Vec<Event> = (0..30).map(|i| event(&format!("e{i:02}"), 1_000 + i / 2, "web-01", &big)).collect();
        store.write_epochs(&EpochWrite { events, ..EpochWrite::default() }).await.unwrap();

        let mut query = EventQuery { limit: 100, max_bytes: Some(45_000), ..Default::default() };
        let mut seen: Vec<String> = Vec::new();
        let mut pages = 0;
        loop {
            let page = store.event_page(&query, &TenantScope::All).await.unwrap();
            pages += 1;
            assert!(page.events.len() <= 5, "at most one event past the cap: {}", page.events.len());
            seen.extend(page.events.iter().map(|event| event.fields["seed"].as_text().to_string()));
            match page.next {
                Some(next) => query.after = Some(next.to_string().parse().unwrap()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..30).rev().map(|i| format!("e{i:02}")).collect::<Vec<_>>();
        let mut sorted_seen = seen.clone();
        sorted_seen.sort();
        sorted_seen.dedup();
        assert_eq!(sorted_seen.len(), 30, "every event once: {seen:?}");
        assert_eq!(seen.len(), 30, "no event twice: {seen:?}");
        assert!(pages >= 6, "{pages} pages");
        let times: Vec<_> = seen.iter().map(|seed| expected.iter().position(|e| e == seed).unwrap() / 2).collect();
        assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "newest first across pages: {seen:?}");

        let uncapped = store.event_page(&EventQuery { limit: 100, ..Default::default() }, &TenantScope::All).await.unwrap();
        assert_eq!((uncapped.events.len(), uncapped.next), (30, None));
        assert!("12x".parse::<EventCursor>().is_err() && "1.x".parse::<EventCursor>().is_err());
        store.close().await;
    }
}
