//! The store-independent half of SQLite's and PostgreSQL's rows: values encoded for and decoded from either dialect.

use std::collections::BTreeMap;

use securewatch_schemas::{Alert, AlertLevel, EventId, RollupChange, RollupKey, Severity, SourceKind, Tenant, TenantScope};
use sqlx::{Database, Encode, QueryBuilder, Row, Type};

use super::progress::SourceProgress;
use super::read::{AlertQuery, Point, Series, SeriesBy, TopEntry, TopField};

/// Milliseconds as a SQL bigint (saturating; no real time comes near the limit).
pub(crate) fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored '' back to "none" (the rollup tables store a missing host or category as '').
pub(crate) fn none_if_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// A decoding failure, as sqlx reports one.
fn decode_error(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

/// A stored severity code (0 to 7).
pub(crate) fn severity_of(code: i64) -> Result<Severity, sqlx::Error> {
    u8::try_from(code)
        .ok()
        .filter(|code| *code <= 7)
        .map(Severity::from_code)
        .ok_or_else(|| decode_error(format!("severity code {code} out of range")))
}

/// A stored rollup bucket start (ms, never negative).
pub(crate) fn bucket_of(ms: i64) -> Result<u64, sqlx::Error> {
    u64::try_from(ms).map_err(|_| decode_error(format!("negative rollup bucket {ms}")))
}

/// A stored 16-byte event or alert id.
pub(crate) fn id_from_bytes(bytes: Vec<u8>) -> Result<EventId, sqlx::Error> {
    <[u8; 16]>::try_from(bytes.as_slice()).map(EventId::from_bytes).map_err(|_| decode_error("id is not 16 bytes".into()))
}

/// Each changed rollup row's count after `changes` (the last change of a row wins).
pub(crate) fn latest_counts(changes: &[RollupChange]) -> BTreeMap<(&Tenant, &RollupKey, u64), i64> {
    changes.iter().map(|change| ((&change.tenant, &change.key, change.bucket_start_ms), change.count)).collect()
}

/// The SQL condition that keeps the rows of `scope`'s tenants in `column`, alike for both
/// stores: `1 = 1` for every tenant, `column IN ('a', 'b')` for some, `1 = 0` for none.
///
/// The names are written into the SQL text, which is safe because only names of the tenant
/// charset (`a-z 0-9 - _`, [`Tenant::parse`]) are kept: a name outside it cannot have been
/// stored, so leaving it out changes no answer. A literal list (rather than bound values)
/// lets every read, whichever way it binds its other values, take the same condition.
pub(crate) fn tenant_condition(column: &str, scope: &TenantScope) -> String {
    let Some(tenants) = scope.tenants() else { return "1 = 1".to_string() };
    let names: Vec<String> =
        tenants.iter().filter(|name| Tenant::parse(name).is_ok()).map(|name| format!("'{name}'")).collect();
    if names.is_empty() {
        "1 = 0".to_string()
    } else {
        format!("{column} IN ({})", names.join(", "))
    }
}

/// A stored source kind (`hec`, `syslog`, …).
pub(crate) fn source_kind_of(kind: &str) -> Result<SourceKind, sqlx::Error> {
    SourceKind::parse(kind).ok_or_else(|| decode_error(format!("unknown source kind {kind:?}")))
}

/// Stored source positions, read as `(source, partition, position, epoch)` rows.
pub(crate) fn progress_of(rows: Vec<(String, String, String, i64)>) -> Vec<SourceProgress> {
    rows.into_iter()
        .map(|(source, partition, position, epoch)| SourceProgress {
            source,
            partition,
            position,
            epoch: u64::try_from(epoch).unwrap_or(0),
        })
        .collect()
}

/// A row of either store, read by column name.
pub(crate) trait StoredRow {
    /// A text column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A text column that may be NULL.
    fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A bigint column.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A blob / bytea column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
}

macro_rules! stored_row {
    ($($row:ty),*) => {$(
        impl StoredRow for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn optional_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(column)
            }
        }
    )*};
}

stored_row!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// Adds the filters of an alert list that both stores spell alike (rule, level, kind), each as
/// ` AND column = value`; the time filters differ by store.
pub(crate) fn push_alert_filters<DB: Database>(builder: &mut QueryBuilder<DB>, query: &AlertQuery)
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    for (column, value) in [("rule_id", &query.rule_id), ("level", &query.level), ("kind", &query.kind)] {
        if let Some(value) = value {
            builder.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
}

/// The times of an alert row, in the order of [`AlertValues::times_ms`] (SQLite's columns add `_ms`).
pub(crate) const ALERT_TIMES: [&str; 5] = ["window_start", "window_end", "fired_at", "first_seen", "last_seen"];

/// The values an alert change writes besides its id, alike for both stores.
pub(crate) struct AlertValues<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The rule's id.
    pub rule_id: &'a str,
    /// The rule's title.
    pub title: &'a str,
    /// The alert kind.
    pub kind: &'a str,
    /// The level's name, if any.
    pub level: Option<&'static str>,
    /// The tags as JSON text.
    pub tags: String,
    /// The group key as JSON text.
    pub group_key: String,
    /// The times of [`ALERT_TIMES`], in ms since the Unix epoch.
    pub times_ms: [i64; 5],
    /// The contributing events' ids, as stored.
    pub event_ids: Vec<Vec<u8>>,
}

impl<'a> AlertValues<'a> {
    /// The values of `alert`.
    pub(crate) fn of(alert: &'a Alert) -> Result<Self, serde_json::Error> {
        Ok(AlertValues {
            tenant: alert.tenant.as_str(),
            rule_id: &alert.rule_id,
            title: &alert.rule_title,
            kind: &alert.kind,
            level: alert.level.map(AlertLevel::as_str),
            tags: serde_json::to_string(&alert.tags)?,
            group_key: serde_json::to_string(&alert.group_key)?,
            times_ms: [alert.window_start_ms, alert.window_end_ms, alert.fired_at_ms, alert.first_seen_ms, alert.last_seen_ms]
                .map(sql_ms),
            event_ids: alert.event_ids.iter().map(|event| event.to_bytes().to_vec()).collect(),
        })
    }
}

/// An alert row (without its events) of either store; `ms` reads a time of [`ALERT_TIMES`] in
/// ms since the Unix epoch.
pub(crate) fn row_to_alert<R: StoredRow, E>(row: &R, ms: impl Fn(&str) -> Result<i64, sqlx::Error>) -> Result<Alert, E>
where
    E: From<sqlx::Error> + From<serde_json::Error>,
{
    let tags = row.text("tags")?;
    let group = row.text("group_key")?;
    let level = row.optional_text("level")?;
    let time = |index: usize| -> Result<u64, sqlx::Error> { Ok(ms(ALERT_TIMES[index])?.max(0) as u64) };
    Ok(Alert {
        id: id_from_bytes(row.bytes("id")?)?,
        tenant: Tenant::from_stored(&row.text("tenant")?),
        rule_id: row.text("rule_id")?,
        rule_title: row.text("title")?,
        level: level.as_deref().and_then(AlertLevel::parse),
        kind: row.text("kind")?,
        tags: serde_json::from_str(&tags)?,
        group_key: serde_json::from_str(&group)?,
        window_start_ms: time(0)?,
        window_end_ms: time(1)?,
        fired_at_ms: time(2)?,
        first_seen_ms: time(3)?,
        last_seen_ms: time(4)?,
        event_ids: Vec::new(),
    })
}

/// Dashboard rows `(value, point_start_ms, total)` of either store, ordered by value and point,
/// folded into one [`Series`] per value; `severity_code` reads a severity's `value` as its code.
pub(crate) fn rows_to_series<R: StoredRow, E>(
    by: SeriesBy,
    rows: &[R],
    severity_code: impl Fn(&R) -> Result<i64, sqlx::Error>,
) -> Result<Vec<Series>, E>
where
    E: From<sqlx::Error>,
{
    let mut series: Vec<Series> = Vec::new();
    for row in rows {
        let value = match by {
            SeriesBy::Severity => Some(severity_of(severity_code(row)?)?.name().to_string()),
            _ => none_if_empty(row.text("value")?),
        };
        let point = Point { bucket_start_ms: bucket_of(row.int("point_start_ms")?)?, count: row.int("total")? };
        match series.last_mut() {
            Some(last) if last.key.values().next() == Some(&value) => last.points.push(point),
            _ => series.push(Series { key: BTreeMap::from([(by.key_name().to_string(), value)]), points: vec![point] }),
        }
    }
    Ok(series)
}

/// Top-N rows `(value, total)` of either store as entries; `severity_code` reads a severity's
/// `value` as its code.
pub(crate) fn rows_to_top<R: StoredRow, E>(
    field: TopField,
    rows: &[R],
    severity_code: impl Fn(&R) -> Result<i64, sqlx::Error>,
) -> Result<Vec<TopEntry>, E>
where
    E: From<sqlx::Error>,
{
    rows.iter()
        .map(|row| {
            let value = match field {
                TopField::Severity => severity_of(severity_code(row)?)?.name().to_string(),
                _ => row.text("value")?,
            };
            Ok(TopEntry { value, count: row.int("total")? })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_condition_keeps_only_safe_names() {
        assert_eq!(tenant_condition("tenant", &TenantScope::All), "1 = 1");
        assert_eq!(tenant_condition("tenant", &TenantScope::Only(vec![])), "1 = 0");
        let scope = TenantScope::Only(vec!["acme".into(), "x' OR '1'='1".into(), "globex".into()]);
        assert_eq!(tenant_condition("e.tenant", &scope), "e.tenant IN ('acme', 'globex')");
        assert_eq!(tenant_condition("tenant", &TenantScope::Only(vec!["'".into()])), "1 = 0");
    }
}
