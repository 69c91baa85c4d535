//! Stored rows as result values: each column read as the type the plan gives it, times as
//! RFC 3339 text, severities by name, the `fields` column as JSON.

use chrono::{DateTime, Utc};
use securewatch_schemas::query::Type;
use securewatch_schemas::Severity;
use serde_json::Value as Json;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A time as results show it: RFC 3339, UTC, microseconds when there are any.
fn time_json(time: DateTime<Utc>) -> Json {
    Json::String(time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn severity_json(code: Option<i64>) -> Json {
    code.map_or(Json::Null, |code| Json::String(Severity::from_code(code.clamp(0, 7) as u8).name().to_owned()))
}

fn float_json(number: Option<f64>) -> Json {
    number.and_then(serde_json::Number::from_f64).map_or(Json::Null, Json::Number)
}

/// The `fields` column (a JSON object) as JSON; any other text as a string.
fn text_json(name: &str, text: Option<String>) -> Json {
    match text {
        Some(text) if name == "fields" => serde_json::from_str(&text).unwrap_or(Json::String(text)),
        Some(text) => Json::String(text),
        None => Json::Null,
    }
}

pub(super) fn sqlite_values(row: &SqliteRow, columns: &[(String, Type)]) -> Result<Vec<Json>, sqlx::Error> {
    let mut values = Vec::with_capacity(columns.len());
    for (index, (name, ty)) in columns.iter().enumerate() {
        values.push(match ty {
            Type::Text | Type::Dynamic => text_json(name, row.try_get::<Option<String>, _>(index)?),
            Type::Int | Type::Timespan => row.try_get::<Option<i64>, _>(index)?.map_or(Json::Null, Json::from),
            Type::Float => float_json(row.try_get(index)?),
            Type::Bool => row.try_get::<Option<bool>, _>(index)?.map_or(Json::Null, Json::Bool),
            Type::Time => row
                .try_get::<Option<i64>, _>(index)?
                .and_then(DateTime::from_timestamp_micros)
                .map_or(Json::Null, time_json),
            Type::Severity => severity_json(row.try_get(index)?),
        });
    }
    Ok(values)
}

pub(super) fn postgres_values(row: &PgRow, columns: &[(String, Type)]) -> Result<Vec<Json>, sqlx::Error> {
    let mut values = Vec::with_capacity(columns.len());
    for (index, (name, ty)) in columns.iter().enumerate() {
        values.push(match ty {
            Type::Text | Type::Dynamic => text_json(name, row.try_get::<Option<String>, _>(index)?),
            Type::Int | Type::Timespan => row.try_get::<Option<i64>, _>(index)?.map_or(Json::Null, Json::from),
            Type::Float => float_json(row.try_get(index)?),
            Type::Bool => row.try_get::<Option<bool>, _>(index)?.map_or(Json::Null, Json::Bool),
            Type::Time => row.try_get::<Option<DateTime<Utc>>, _>(index)?.map_or(Json::Null, time_json),
            Type::Severity => severity_json(row.try_get(index)?),
        });
    }
    Ok(values)
}
