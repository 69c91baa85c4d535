//! `GET /api/v1/dashboards/timeseries` and `GET /api/v1/dashboards/top`: event counts from the rollups (PostgreSQL's when configured).

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use securewatch_connectors::sinks::read::{BucketWidth, Point, Series, SeriesBy, TimeseriesQuery, TopEntry, TopField, TopQuery};
use securewatch_schemas::TenantScope;
use serde::{Deserialize, Serialize};

use super::events::parse_time;
use super::{ApiError, ApiState};

/// Range used when `from` is not given: the hour before `to`.
const DEFAULT_RANGE: TimeDelta = TimeDelta::hours(1);
/// Most points per series: 7 days at `1m`, 420 days at `1h`.
const MAX_POINTS_PER_SERIES: u64 = 10_080;
/// Default and maximum `n` of the top query.
const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 1000;

/// Query string of `/api/v1/dashboards/timeseries`. Empty values count as absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeseriesParams {
    from: Option<String>,
    to: Option<String>,
    bucket: Option<String>,
    by: Option<String>,
}

/// Query string of `/api/v1/dashboards/top`. Empty values count as absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopParams {
    field: Option<String>,
    from: Option<String>,
    to: Option<String>,
    n: Option<String>,
}

/// Body of `/api/v1/dashboards/timeseries`.
#[derive(Debug, Serialize)]
pub struct TimeseriesBody {
    bucket: &'static str,
    by: &'static str,
    from: String,
    to: String,
    series: Vec<SeriesBody>,
}

/// One series: `{"key": {"host": "web-1"}, "points": [...]}`; a key value is null for events
/// that had no host or category.
#[derive(Debug, Serialize)]
pub struct SeriesBody {
    key: BTreeMap<String, Option<String>>,
    points: Vec<PointBody>,
}

/// One point: bucket start and event count.
#[derive(Debug, Serialize)]
pub struct PointBody {
    time: String,
    count: i64,
}

/// Body of `/api/v1/dashboards/top`.
#[derive(Debug, Serialize)]
pub struct TopBody {
    field: &'static str,
    from: String,
    to: String,
    entries: Vec<TopEntryBody>,
}

/// One ranked value and its event count.
#[derive(Debug, Serialize)]
pub struct TopEntryBody {
    value: String,
    count: i64,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

fn rfc3339(ms: u64) -> String {
    let time = i64::try_from(ms).ok().and_then(DateTime::from_timestamp_millis).unwrap_or_default();
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `from`/`to` in ms: `to` defaults to `now`, `from` to an hour before `to`; `from < to`, both
/// not before 1970.
fn time_range(from: Option<String>, to: Option<String>, now: DateTime<Utc>) -> Result<(u64, u64), ApiError> {
    let to = parse_time("to", &non_empty(to))?.unwrap_or(now);
    let from = parse_time("from", &non_empty(from))?
        .unwrap_or_else(|| to.checked_sub_signed(DEFAULT_RANGE).unwrap_or(DateTime::<Utc>::MIN_UTC));
    let millis = |name: &str, time: DateTime<Utc>| {
        u64::try_from(time.timestamp_millis())
            .map_err(|_| ApiError::bad_request(format!("{name}: must not be before 1970-01-01T00:00:00Z")))
    };
    let (from_ms, to_ms) = (millis("from", from)?, millis("to", to)?);
    if from_ms >= to_ms {
        return Err(ApiError::bad_request("from: must be before to"));
    }
    Ok((from_ms, to_ms))
}

/// Validates the time-series parameters; `now` is the default `to`.
fn timeseries_query(params: TimeseriesParams, now: DateTime<Utc>) -> Result<TimeseriesQuery, ApiError> {
    let bucket = match non_empty(params.bucket) {
        None => BucketWidth::Minute,
        Some(text) => BucketWidth::parse(&text)
            .ok_or_else(|| ApiError::bad_request(format!("bucket: expected 1m or 1h, got {text:?}")))?,
    };
    let by = match non_empty(params.by) {
        None => SeriesBy::Source,
        Some(text) => SeriesBy::parse(&text).ok_or_else(|| {
            ApiError::bad_request(format!("by: expected source, host, severity or category, got {text:?}"))
        })?,
    };
    let (from_ms, to_ms) = time_range(params.from, params.to, now)?;
    if (to_ms - from_ms).div_ceil(bucket.millis()) > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_request(format!(
            "from: the range may span at most {MAX_POINTS_PER_SERIES} buckets of {} (7 days at 1m, 420 days at 1h)",
            bucket.as_str()
        )));
    }
    Ok(TimeseriesQuery { from_ms, to_ms, bucket, by })
}

/// Validates the top-N parameters; `now` is the default `to`.
fn top_query(params: TopParams, now: DateTime<Utc>) -> Result<TopQuery, ApiError> {
    let field = match non_empty(params.field) {
        None => TopField::Host,
        Some(text) => TopField::parse(&text).ok_or_else(|| {
            ApiError::bad_request(format!("field: expected host, category, severity or source, got {text:?}"))
        })?,
    };
    let n = match non_empty(params.n) {
        None => DEFAULT_TOP,
        Some(text) => text.parse::<usize>().ok().filter(|n| (1..=MAX_TOP).contains(n)).ok_or_else(|| {
            ApiError::bad_request(format!("n: expected an integer from 1 to {MAX_TOP}, got {text:?}"))
        })?,
    };
    let (from_ms, to_ms) = time_range(params.from, params.to, now)?;
    Ok(TopQuery { field, from_ms, to_ms, n })
}

fn timeseries_body(query: &TimeseriesQuery, series: Vec<Series>) -> TimeseriesBody {
    let point = |point: Point| PointBody { time: rfc3339(point.bucket_start_ms), count: point.count };
    TimeseriesBody {
        bucket: query.bucket.as_str(),
        by: query.by.as_str(),
        from: rfc3339(query.from_ms),
        to: rfc3339(query.to_ms),
        series: series
            .into_iter()
            .map(|series| SeriesBody { key: series.key, points: series.points.into_iter().map(point).collect() })
            .collect(),
    }
}

fn top_body(query: &TopQuery, entries: Vec<TopEntry>) -> TopBody {
    TopBody {
        field: query.field.as_str(),
        from: rfc3339(query.from_ms),
        to: rfc3339(query.to_ms),
        entries: entries.into_iter().map(|entry| TopEntryBody { value: entry.value, count: entry.count }).collect(),
    }
}

/// Event counts per bucket, one series per source kind, host, severity or category.
pub async fn timeseries(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<TimeseriesParams>, QueryRejection>,
) -> Result<Json<TimeseriesBody>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let query = timeseries_query(params, Utc::now())?;
    let series = state.reader.timeseries(&query, &scope).await?;
    Ok(Json(timeseries_body(&query, series)))
}

/// The hosts, categories, severities or source kinds with the most events in a range.
pub async fn top(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<TopParams>, QueryRejection>,
) -> Result<Json<TopBody>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let query = top_query(params, Utc::now())?;
    let entries = state.reader.top(&query, &scope).await?;
    Ok(Json(top_body(&query, entries)))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;

    const NOW_MS: u64 = 1_767_268_800_000; // 2026-01-01T12:00:00Z
    const HOUR_MS: u64 = 3_600_000;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(NOW_MS as i64).unwrap()
    }

    fn text(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    /// The error's message, asserting it is a 400.
    fn bad_request<T: std::fmt::Debug>(result: Result<T, ApiError>) -> String {
        let error = result.expect_err("expected a 400");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        error.message
    }

    #[test]
    fn timeseries_defaults_to_the_last_hour_by_source_per_minute() {
        let query = timeseries_query(TimeseriesParams::default(), now()).unwrap();
        let expected = TimeseriesQuery {
            from_ms: NOW_MS - HOUR_MS,
            to_ms: NOW_MS,
            bucket: BucketWidth::Minute,
            by: SeriesBy::Source,
        };
        assert_eq!(query, expected);
        let empty = TimeseriesParams { from: text(""), to: text(""), bucket: text(""), by: text("") };
        assert_eq!(timeseries_query(empty, now()).unwrap(), expected, "empty values count as absent");
    }

    #[test]
    fn timeseries_accepts_rfc3339_and_epoch_seconds() {
        let params = TimeseriesParams {
            from: text("2026-01-01T10:00:00+01:00"),
            to: text("1767268800.5"),
            bucket: text("1h"),
            by: text("severity"),
        };
        let query = timeseries_query(params, now()).unwrap();
        assert_eq!(query.from_ms, NOW_MS - 3 * HOUR_MS);
        assert_eq!(query.to_ms, NOW_MS + 500);
        assert_eq!((query.bucket, query.by), (BucketWidth::Hour, SeriesBy::Severity));
        for (name, by) in [("host", SeriesBy::Host), ("category", SeriesBy::Category), ("source", SeriesBy::Source)] {
            let params = TimeseriesParams { by: text(name), ..Default::default() };
            assert_eq!(timeseries_query(params, now()).unwrap().by, by);
        }
        // Only `to` given: the hour before it.
        let params = TimeseriesParams { to: text("1767268800"), ..Default::default() };
        assert_eq!(timeseries_query(params, now()).unwrap().from_ms, NOW_MS - HOUR_MS);
    }

    #[test]
    fn timeseries_errors_name_the_parameter() {
        let with = |params: TimeseriesParams| bad_request(timeseries_query(params, now()));
        assert!(with(TimeseriesParams { by: text("hosts"), ..Default::default() }).starts_with("by: "));
        assert!(with(TimeseriesParams { bucket: text("5m"), ..Default::default() }).starts_with("bucket: "));
        assert!(with(TimeseriesParams { from: text("yesterday"), ..Default::default() }).starts_with("from: "));
        assert!(with(TimeseriesParams { to: text("soon"), ..Default::default() }).starts_with("to: "));
        let equal = TimeseriesParams { from: text("1767268800"), to: text("1767268800"), ..Default::default() };
        assert_eq!(with(equal), "from: must be before to");
        let reversed = TimeseriesParams { from: text("1767268900"), to: text("1767268800"), ..Default::default() };
        assert_eq!(with(reversed), "from: must be before to");
        let ancient = TimeseriesParams { from: text("-60"), to: text("60"), ..Default::default() };
        assert!(with(ancient).starts_with("from: must not be before 1970"));
    }

    #[test]
    fn timeseries_range_is_capped_per_bucket_width() {
        let week = |bucket: &str, extra_ms: u64| TimeseriesParams {
            from: text(&((NOW_MS - 7 * 24 * HOUR_MS - extra_ms) as f64 / 1000.0).to_string()),
            to: text(&(NOW_MS as f64 / 1000.0).to_string()),
            bucket: text(bucket),
            ..Default::default()
        };
        assert!(timeseries_query(week("1m", 0), now()).is_ok(), "7 days at 1m");
        assert!(bad_request(timeseries_query(week("1m", 1000), now())).contains("at most 10080 buckets of 1m"));
        assert!(timeseries_query(week("1h", 1000), now()).is_ok());
        let long = TimeseriesParams { from: text("0"), to: text("1767268800"), bucket: text("1h"), by: None };
        assert!(bad_request(timeseries_query(long, now())).starts_with("from: "));
    }

    #[test]
    fn top_defaults_and_limits() {
        let query = top_query(TopParams::default(), now()).unwrap();
        assert_eq!(query, TopQuery { field: TopField::Host, from_ms: NOW_MS - HOUR_MS, to_ms: NOW_MS, n: 10 });
        let with = |field: &str, n: &str| TopParams { field: text(field), n: text(n), ..Default::default() };
        assert_eq!(top_query(with("category", "1000"), now()).unwrap().n, 1000);
        assert_eq!(top_query(with("severity", "1"), now()).unwrap().field, TopField::Severity);
        assert_eq!(top_query(with("source", ""), now()).unwrap(), TopQuery { field: TopField::Source, ..query });
        for n in ["0", "1001", "-1", "ten"] {
            assert!(bad_request(top_query(with("host", n), now())).starts_with("n: "), "n={n}");
        }
        assert!(bad_request(top_query(with("hosts", "5"), now())).starts_with("field: "));
        let reversed = TopParams { from: text("1767268900"), to: text("1767268800"), ..Default::default() };
        assert_eq!(bad_request(top_query(reversed, now())), "from: must be before to");
    }

    #[test]
    fn unknown_parameters_are_rejected() {
        let parse = |query: &str| serde_urlencoded_query::<TimeseriesParams>(query);
        assert!(parse("by=host&bucket=1h&from=1&to=2").is_ok());
        assert!(parse("by=host&limit=3").is_err());
        assert!(serde_urlencoded_query::<TopParams>("field=host&n=5&from=&to=").is_ok());
        assert!(serde_urlencoded_query::<TopParams>("fields=host").is_err());
    }

    /// Parses a query string the way the handlers' `Query` extractor does.
    fn serde_urlencoded_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, String> {
        let uri: axum::http::Uri = format!("http://localhost/?{query}").parse().unwrap();
        Query::<T>::try_from_uri(&uri).map(|Query(params)| params).map_err(|rejection| rejection.body_text())
    }

    #[test]
    fn bodies_have_the_documented_shape() {
        let query = TimeseriesQuery {
            from_ms: NOW_MS - HOUR_MS,
            to_ms: NOW_MS,
            bucket: BucketWidth::Minute,
            by: SeriesBy::Host,
        };
        let series = vec![
            Series {
                key: BTreeMap::from([("host".to_string(), None)]),
                points: vec![Point { bucket_start_ms: NOW_MS - 60_000, count: 2 }],
            },
            Series {
                key: BTreeMap::from([("host".to_string(), Some("web-1".to_string()))]),
                points: vec![Point { bucket_start_ms: NOW_MS - HOUR_MS, count: 3 }],
            },
        ];
        assert_eq!(
            serde_json::to_value(timeseries_body(&query, series)).unwrap(),
            json!({
                "bucket": "1m", "by": "host", "from": "2026-01-01T11:00:00Z", "to": "2026-01-01T12:00:00Z",
                "series": [
                    {"key": {"host": null}, "points": [{"time": "2026-01-01T11:59:00Z", "count": 2}]},
                    {"key": {"host": "web-1"}, "points": [{"time": "2026-01-01T11:00:00Z", "count": 3}]},
                ]
            })
        );
        let query = TopQuery { field: TopField::Host, from_ms: NOW_MS - HOUR_MS, to_ms: NOW_MS + 250, n: 10 };
        let entries = vec![TopEntry { value: "web-1".into(), count: 42 }];
        assert_eq!(
            serde_json::to_value(top_body(&query, entries)).unwrap(),
            json!({
                "field": "host", "from": "2026-01-01T11:00:00Z", "to": "2026-01-01T12:00:00.250Z",
                "entries": [{"value": "web-1", "count": 42}]
            })
        );
    }
}
