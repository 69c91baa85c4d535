//! Detection alerts in the store: upserts and deletes from the dataflow's alert diffs, and the
//! queries behind `/api/v1/alerts`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use securewatch_schemas::{Event, EventId};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::query::{micros_to_time, row_to_event, EVENT_COLUMNS};
use super::store::{SqliteStore, StoreError};

/// One alert as stored: a detection rule's match or a correlation that holds for a group and a
/// window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Deterministic from (rule, group, window): a replay produces the same id.
    pub id: EventId,
    /// The Sigma rule (or correlation) id, else its name or title.
    pub rule_id: String,
    pub title: String,
    /// Sigma level: informational, low, medium, high or critical.
    pub level: String,
    /// `rule` for a single-event rule, else the correlation type (`event_count`, ...).
    pub kind: String,
    /// The rule's tags (ATT&CK techniques and tactics among them).
    pub tags: Vec<String>,
    /// Group-by field → value (empty for single-event rules).
    pub group: BTreeMap<String, String>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Event times of the earliest and latest contributing events.
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The contributing events: (event time, event id), the events table's key.
    pub events: Vec<(DateTime<Utc>, EventId)>,
}

/// Filters of [`SqliteStore::alerts`]; newest `last_seen` first.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub limit: u32,
    pub rule_id: Option<String>,
    pub level: Option<String>,
    pub kind: Option<String>,
    /// Alerts whose last contributing event is at or after `from`.
    pub from: Option<DateTime<Utc>>,
    /// Alerts whose last contributing event is before `to`.
    pub to: Option<DateTime<Utc>>,
}

/// Applies alert diffs in order: `+1` stores the alert (replacing a row with the same id and
/// its event list), `-1` deletes it. Idempotent, so a replayed epoch changes nothing.
pub async fn apply_alert_changes(connection: &mut SqliteConnection, changes: &[(AlertRecord, isize)]) -> Result<(), StoreError> {
    for (alert, diff) in changes {
        let id = alert.id.to_bytes().to_vec();
        sqlx::query("DELETE FROM alert_events WHERE alert_id = ?").bind(&id).execute(&mut *connection).await?;
        if *diff <= 0 {
            sqlx::query("DELETE FROM alerts WHERE id = ?").bind(&id).execute(&mut *connection).await?;
            continue;
        }
        sqlx::query(
            "INSERT OR REPLACE INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start_us, \
             window_end_us, first_seen_us, last_seen_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&alert.rule_id)
        .bind(&alert.title)
        .bind(&alert.level)
        .bind(&alert.kind)
        .bind(serde_json::to_string(&alert.tags)?)
        .bind(serde_json::to_string(&alert.group)?)
        .bind(alert.window_start.timestamp_micros())
        .bind(alert.window_end.timestamp_micros())
        .bind(alert.first_seen.timestamp_micros())
        .bind(alert.last_seen.timestamp_micros())
        .execute(&mut *connection)
        .await?;
        for chunk in alert.events.chunks(1000) {
            let mut builder: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO alert_events (alert_id, event_time_us, event_id) ");
            builder.push_values(chunk, |mut row, (time, event)| {
                row.push_bind(id.clone()).push_bind(time.timestamp_micros()).push_bind(event.to_bytes().to_vec());
            });
            builder.build().execute(&mut *connection).await?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Alerts matching `query`, newest last-seen first, each with its contributing event keys.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<AlertRecord>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, rule_id, title, level, kind, tags, group_key, window_start_us, window_end_us, \
             first_seen_us, last_seen_us FROM alerts WHERE 1 = 1",
        );
        if let Some(rule_id) = &query.rule_id {
            builder.push(" AND rule_id = ").push_bind(rule_id.clone());
        }
        if let Some(level) = &query.level {
            builder.push(" AND level = ").push_bind(level.clone());
        }
        if let Some(kind) = &query.kind {
            builder.push(" AND kind = ").push_bind(kind.clone());
        }
        if let Some(from) = query.from {
            builder.push(" AND last_seen_us >= ").push_bind(from.timestamp_micros());
        }
        if let Some(to) = query.to {
            builder.push(" AND last_seen_us < ").push_bind(to.timestamp_micros());
        }
        builder.push(" ORDER BY last_seen_us DESC, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = builder.build().fetch_all(self.pool()).await?;
        let mut alerts = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut alert = row_to_alert(row)?;
            alert.events = self.alert_event_keys(alert.id).await?;
            alerts.push(alert);
        }
        Ok(alerts)
    }

    /// One alert and its contributing events (those still in the store), oldest first.
    pub async fn alert(&self, id: EventId) -> Result<Option<(AlertRecord, Vec<Event>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, rule_id, title, level, kind, tags, group_key, window_start_us, window_end_us, \
             first_seen_us, last_seen_us FROM alerts WHERE id = ?",
        )
        .bind(id.to_bytes().to_vec())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut alert = row_to_alert(&row)?;
        alert.events = self.alert_event_keys(id).await?;
        let mut events = Vec::with_capacity(alert.events.len());
        for (time, event_id) in &alert.events {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE time_us = ? AND id = ?"
            )))
            .bind(time.timestamp_micros())
            .bind(event_id.to_bytes().to_vec())
            .fetch_optional(self.pool())
            .await?;
            if let Some(found) = found {
                events.push(row_to_event(&found)?);
            }
        }
        Ok(Some((alert, events)))
    }

    async fn alert_event_keys(&self, id: EventId) -> Result<Vec<(DateTime<Utc>, EventId)>, StoreError> {
        let rows = sqlx::query("SELECT event_time_us, event_id FROM alert_events WHERE alert_id = ? ORDER BY event_time_us, event_id")
            .bind(id.to_bytes().to_vec())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((micros_to_time(row.try_get("event_time_us")?), id_from_blob(row.try_get("event_id")?)?)))
            .collect()
    }
}

fn id_from_blob(bytes: Vec<u8>) -> Result<EventId, StoreError> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(EventId::from_bytes)
        .map_err(|_| StoreError::Sql(sqlx::Error::Decode("id is not 16 bytes".into())))
}

fn row_to_alert(row: &sqlx::sqlite::SqliteRow) -> Result<AlertRecord, StoreError> {
    let tags: String = row.try_get("tags")?;
    let group: String = row.try_get("group_key")?;
    Ok(AlertRecord {
        id: id_from_blob(row.try_get("id")?)?,
        rule_id: row.try_get("rule_id")?,
        title: row.try_get("title")?,
        level: row.try_get("level")?,
        kind: row.try_get("kind")?,
        tags: serde_json::from_str(&tags)?,
        group: serde_json::from_str(&group)?,
        window_start: micros_to_time(row.try_get("window_start_us")?),
        window_end: micros_to_time(row.try_get("window_end_us")?),
        first_seen: micros_to_time(row.try_get("first_seen_us")?),
        last_seen: micros_to_time(row.try_get("last_seen_us")?),
        events: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
