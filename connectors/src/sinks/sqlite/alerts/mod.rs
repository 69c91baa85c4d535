//! Detection alerts in the store: upserts and deletes from the dataflow's alert diffs, and the
//! queries behind `/api/v1/alerts`.

use securewatch_schemas::{Alert, Event, EventId, TenantScope};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::query::{row_to_event, EVENT_COLUMNS};
use super::store::{SqliteStore, StoreError};
use crate::sinks::read::AlertQuery;
use crate::sinks::rows::{self, id_from_bytes, push_alert_filters, sql_ms, tenant_condition, AlertValues};

/// The columns [`row_to_alert`] reads.
const ALERT_COLUMNS: &str = "id, rule_id, title, level, kind, tags, group_key, window_start_ms, window_end_ms, \
                             fired_at_ms, first_seen_ms, last_seen_ms, tenant";

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
        let values = AlertValues::of(alert)?;
        let mut upsert = sqlx::query(
            "INSERT OR REPLACE INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start_ms, \
             window_end_ms, fired_at_ms, first_seen_ms, last_seen_ms, tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(values.rule_id)
        .bind(values.title)
        .bind(values.level)
        .bind(values.kind)
        .bind(values.tags)
        .bind(values.group_key);
        for ms in values.times_ms {
            upsert = upsert.bind(ms);
        }
        upsert = upsert.bind(values.tenant);
        upsert.execute(&mut *connection).await?;
        for chunk in values.event_ids.chunks(1000) {
            let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new("INSERT OR IGNORE INTO alert_events (alert_id, event_id) ");
            builder.push_values(chunk, |mut row, event| {
                row.push_bind(id.clone()).push_bind(event.clone());
            });
            builder.build().execute(&mut *connection).await?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Alerts of `scope`'s tenants matching `query`, newest last-seen first, each with its
    /// contributing event ids.
    pub async fn alerts(&self, query: &AlertQuery, scope: &TenantScope) -> Result<Vec<Alert>, StoreError> {
        let mut builder: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {}",
            tenant_condition("tenant", scope)
        ));
        push_alert_filters(&mut builder, query);
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

    /// One alert of `scope`'s tenants and its contributing events that are in this store and
    /// of the alert's tenant, oldest first (each looked up by the events index within the
    /// alert's first and last seen times). An alert of another tenant reads as absent.
    pub async fn alert(&self, id: EventId, scope: &TenantScope) -> Result<Option<(Alert, Vec<Event>)>, StoreError> {
        // Only the checked tenant condition is interpolated; the id is bound.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ? AND {}",
            tenant_condition("tenant", scope)
        )))
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE time_us BETWEEN ? AND ? AND id = ? AND tenant = ?"
            )))
            .bind(first_us)
            .bind(last_us)
            .bind(event_id.to_bytes().to_vec())
            .bind(alert.tenant.as_str())
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
        Ok(rows.iter().map(|row| id_from_bytes(row.try_get("event_id")?)).collect::<Result<_, sqlx::Error>>()?)
    }
}

/// An alert row of SQLite, whose times are integer ms columns.
fn row_to_alert(row: &SqliteRow) -> Result<Alert, StoreError> {
    rows::row_to_alert(row, |name| row.try_get(format!("{name}_ms").as_str()))
}

#[cfg(test)]
mod tests;
