//! Detection alerts in PostgreSQL: upserts and deletes from the dataflow's alert diffs, and the queries behind `/api/v1/alerts`.

use chrono::{DateTime, Utc};
use securewatch_schemas::{Alert, Event, EventId, TenantScope};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row};

use super::query::row_to_event;
use super::rows::{storable_text, storable_time};
use super::sink::{PostgresError, PostgresSink};
use crate::sinks::rows::{self, id_from_bytes, push_alert_filters, sql_ms, tenant_condition, AlertValues};

/// The columns [`row_to_alert`] reads.
const ALERT_COLUMNS: &str = "id, rule_id, title, level, kind, tags::text AS tags, group_key::text AS group_key, \
                             window_start, window_end, fired_at, first_seen, last_seen, tenant";
use crate::sinks::read::AlertQuery;

/// Applies alert diffs in order: `+1` stores the alert (replacing its row and event list),
/// `-1` deletes it. Idempotent.
pub async fn apply_alert_changes(connection: &mut PgConnection, changes: &[(Alert, isize)]) -> Result<(), PostgresError> {
    let time = |ms: i64| storable_time(DateTime::from_timestamp_millis(ms).unwrap_or_default());
    for (alert, diff) in changes {
        let id = alert.id.to_bytes().to_vec();
        sqlx::query("DELETE FROM alert_events WHERE alert_id = $1").bind(&id).execute(&mut *connection).await?;
        if *diff <= 0 {
            sqlx::query("DELETE FROM alerts WHERE id = $1").bind(&id).execute(&mut *connection).await?;
            continue;
        }
        let values = AlertValues::of(alert)?;
        let mut upsert = sqlx::query(
            "INSERT INTO alerts (id, rule_id, title, level, kind, tags, group_key, window_start, window_end, \
             fired_at, first_seen, last_seen, tenant) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, rule_id = excluded.rule_id, title = excluded.title, \
             level = excluded.level, kind = excluded.kind, tags = excluded.tags, group_key = excluded.group_key, \
             window_start = excluded.window_start, window_end = excluded.window_end, fired_at = excluded.fired_at, \
             first_seen = excluded.first_seen, last_seen = excluded.last_seen",
        )
        .bind(&id)
        .bind(storable_text(values.rule_id).into_owned())
        .bind(storable_text(values.title).into_owned())
        .bind(values.level)
        .bind(values.kind)
        .bind(values.tags)
        .bind(values.group_key);
        for ms in values.times_ms {
            upsert = upsert.bind(time(ms));
        }
        upsert = upsert.bind(values.tenant);
        upsert.execute(&mut *connection).await?;
        if !values.event_ids.is_empty() {
            sqlx::query(
                "INSERT INTO alert_events (alert_id, event_id) SELECT $1, * FROM UNNEST($2::bytea[]) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(&values.event_ids)
            .execute(&mut *connection)
            .await?;
        }
    }
    Ok(())
}

impl PostgresSink {
    /// Alerts of `scope`'s tenants matching `query`, newest last-seen first, each with its
    /// contributing event keys.
    pub async fn alerts(&self, query: &AlertQuery, scope: &TenantScope) -> Result<Vec<Alert>, PostgresError> {
        let mut builder: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE {}",
            tenant_condition("tenant", scope)
        ));
        push_alert_filters(&mut builder, query);
        if let Some(from) = query.from {
            builder.push(" AND last_seen >= ").push_bind(from);
        }
        if let Some(to) = query.to {
            builder.push(" AND last_seen < ").push_bind(to);
        }
        builder.push(" ORDER BY last_seen DESC, id LIMIT ").push_bind(i64::from(query.limit));
        let rows = builder.build().fetch_all(&self.pool).await?;
        let mut alerts = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut alert = row_to_alert(row)?;
            let ids: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT event_id FROM alert_events WHERE alert_id = $1 ORDER BY event_id")
                .bind(alert.id.to_bytes().to_vec())
                .fetch_all(&self.pool)
                .await?;
            alert.event_ids = ids.into_iter().map(|(id,)| id_from_bytes(id)).collect::<Result<_, sqlx::Error>>()?;
            alerts.push(alert);
        }
        Ok(alerts)
    }

    /// One alert and its contributing events that are in this database, oldest first (each
    /// looked up by `(time, id)` within the alert's first and last seen times): the answer of
    /// `SqliteStore::alert`, with the same tenant rules.
    pub async fn alert(&self, id: EventId, scope: &TenantScope) -> Result<Option<(Alert, Vec<Event>)>, PostgresError> {
        // Only the checked tenant condition is interpolated; the id is bound.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1 AND {}",
            tenant_condition("tenant", scope)
        )))
        .bind(id.to_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut alert = row_to_alert(&row)?;
        let ids: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT event_id FROM alert_events WHERE alert_id = $1 ORDER BY event_id")
            .bind(id.to_bytes().to_vec())
            .fetch_all(&self.pool)
            .await?;
        alert.event_ids = ids.into_iter().map(|(id,)| id_from_bytes(id)).collect::<Result<_, sqlx::Error>>()?;
        let time = |ms: u64| DateTime::from_timestamp_millis(sql_ms(ms)).unwrap_or_default();
        // The stored times keep microseconds: the last seen millisecond is included whole.
        let (first, last) = (time(alert.first_seen_ms), time(alert.last_seen_ms) + chrono::TimeDelta::microseconds(999));
        let ids: Vec<Vec<u8>> = alert.event_ids.iter().map(|event| event.to_bytes().to_vec()).collect();
        let rows = sqlx::query(
            "SELECT id, time, received, source_kind, source_name, peer, host, severity, category, message, \
             fields::text AS fields, raw, tenant FROM events \
             WHERE time BETWEEN $1 AND $2 AND id = ANY($3::bytea[]) AND tenant = $4",
        )
        .bind(first)
        .bind(last)
        .bind(&ids)
        .bind(alert.tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows.iter().map(row_to_event).collect::<Result<Vec<Event>, PostgresError>>()?;
        events.sort_by_key(|event| (event.time, event.id));
        Ok(Some((alert, events)))
    }
}

/// An alert row of PostgreSQL, whose times are `timestamptz` columns.
fn row_to_alert(row: &PgRow) -> Result<Alert, PostgresError> {
    rows::row_to_alert(row, |name| Ok(row.try_get::<DateTime<Utc>, _>(name)?.timestamp_millis()))
}
