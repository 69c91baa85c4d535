//! Detection alerts in the store: upserts and deletes from the dataflow's alert diffs, and the
//! queries behind `/api/v1/alerts`.

use securewatch_schemas::{Alert, AlertLevel, Event, EventId};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::query::{row_to_event, EVENT_COLUMNS};
use super::store::{SqliteStore, StoreError};
use crate::sinks::read::AlertQuery;
use crate::sinks::rows::sql_ms;

/// Applies alert diffs in order: `+1` stores the alert (replacing a row with the same id and
/// its event list), `-1` deletes it. Idempotent, so a replayed epoch changes nothing.
pub async fn apply_alert_changes(connection: &mut SqliteConnection, changes: &[(Alert, isize)]) -> Result<(), StoreError> {
    for (alert, diff) in changes {
        let id = alert.id.to_bytes().to_vec();
        sqlx::query("DELETE FROM alert_events WHERE alert_id = ?").bind(&id).execute(&mut *connection).await?;
        if *diff <= 0 {
            sqlx::query("DELETE FROM alerts WHERE id = ?").bind(&id).execute(&mut *connection).await?;
            continue;
        }
        sqlx::query(
            "INSERT OR REPLACE INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start_ms, \
             window_end_ms, fired_at_ms, first_seen_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&alert.rule_id)
        .bind(&alert.rule_title)
        .bind(alert.level.map(AlertLevel::as_str))
        .bind(&alert.kind)
        .bind(serde_json::to_string(&alert.tags)?)
        .bind(serde_json::to_string(&alert.group_key)?)
        .bind(sql_ms(alert.window_start_ms))
        .bind(sql_ms(alert.window_end_ms))
        .bind(sql_ms(alert.fired_at_ms))
        .bind(sql_ms(alert.first_seen_ms))
        .bind(sql_ms(alert.last_seen_ms))
        .execute(&mut *connection)
        .await?;
        for chunk in alert.event_ids.chunks(1000) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT OR IGNORE INTO alert_events (alert_id, event_id) ");
            builder.push_values(chunk, |mut row, event| {
                row.push_bind(id.clone()).push_bind(event.to_bytes().to_vec());
            });
            builder.build().execute(&mut *connection).await?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Alerts matching `query`, newest last-seen first, each with its contributing event ids.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, rule_id, title, level, kind, tags, group_key, window_start_ms, window_end_ms, \
             fired_at_ms, first_seen_ms, last_seen_ms FROM alerts WHERE 1 = 1",
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
            builder.push(" AND last_seen_ms >= ").push_bind(from.timestamp_millis());
        }
        if let Some(to) = query.to {
            builder.push(" AND last_seen_ms < ").push_bind(to.timestamp_millis());
        }
        builder.push(" ORDER BY last_seen_ms DESC, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = builder.build().fetch_all(self.pool()).await?;
        let mut alerts = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut alert = row_to_alert(row)?;
            alert.event_ids = self.alert_event_ids(alert.id).await?;
            alerts.push(alert);
        }
        Ok(alerts)
    }

    /// One alert and its contributing events that are in this store, oldest first (each looked
    /// up by the events index within the alert's first and last seen times).
    pub async fn alert(&self, id: EventId) -> Result<Option<(Alert, Vec<Event>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, rule_id, title, level, kind, tags, group_key, window_start_ms, window_end_ms, \
             fired_at_ms, first_seen_ms, last_seen_ms FROM alerts WHERE id = ?",
        )
        .bind(id.to_bytes().to_vec())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut alert = row_to_alert(&row)?;
        alert.event_ids = self.alert_event_ids(id).await?;
        let (first_us, last_us) = (sql_ms(alert.first_seen_ms).saturating_mul(1000), sql_ms(alert.last_seen_ms).saturating_mul(1000) + 999);
        let mut events = Vec::with_capacity(alert.event_ids.len());
        for event_id in &alert.event_ids {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE time_us BETWEEN ? AND ? AND id = ?"
            )))
            .bind(first_us)
            .bind(last_us)
            .bind(event_id.to_bytes().to_vec())
            .fetch_optional(self.pool())
            .await?;
            if let Some(found) = found {
                events.push(row_to_event(&found)?);
            }
        }
        events.sort_by_key(|event| (event.time, event.id));
        Ok(Some((alert, events)))
    }

    async fn alert_event_ids(&self, id: EventId) -> Result<Vec<EventId>, StoreError> {
        let rows = sqlx::query("SELECT event_id FROM alert_events WHERE alert_id = ? ORDER BY event_id")
            .bind(id.to_bytes().to_vec())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| id_from_blob(row.try_get("event_id")?)).collect()
    }
}

fn id_from_blob(bytes: Vec<u8>) -> Result<EventId, StoreError> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map(EventId::from_bytes)
        .map_err(|_| StoreError::Sql(sqlx::Error::Decode("id is not 16 bytes".into())))
}

fn row_to_alert(row: &sqlx::sqlite::SqliteRow) -> Result<Alert, StoreError> {
    let tags: String = row.try_get("tags")?;
    let group: String = row.try_get("group_key")?;
    let level: Option<String> = row.try_get("level")?;
    let time = |column: &str| -> Result<u64, StoreError> { Ok(row.try_get::<i64, _>(column)?.max(0) as u64) };
    Ok(Alert {
        id: id_from_blob(row.try_get("id")?)?,
        rule_id: row.try_get("rule_id")?,
        rule_title: row.try_get("title")?,
        level: level.as_deref().and_then(AlertLevel::parse),
        kind: row.try_get("kind")?,
        tags: serde_json::from_str(&tags)?,
        group_key: serde_json::from_str(&group)?,
        window_start_ms: time("window_start_ms")?,
        window_end_ms: time("window_end_ms")?,
        fired_at_ms: time("fired_at_ms")?,
        first_seen_ms: time("first_seen_ms")?,
        last_seen_ms: time("last_seen_ms")?,
        event_ids: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
