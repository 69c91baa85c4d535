//! `GET /api/v1/events` (newest first, filtered, with their enrichment tags) and `GET /api/v1/dead-letters`.

use axum::extract::{Query, State};
use axum::Extension;
use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use chrono::{DateTime, Utc};
use securewatch_connectors::sinks::read::{
    EnrichmentLookup, EventCursor, EventEnrichment, EventPage, EventQuery, StoredDeadLetter, StoredEvent,
};
use securewatch_schemas::{lookup_keys, parse_epoch_seconds, TenantScope};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};

/// Default and maximum page sizes.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 10_000;

/// Query string of `/api/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    limit: Option<u32>,
    source: Option<String>,
    host: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The cursor of an earlier, byte-capped answer (its `X-SecureWatch-Next` header).
    after: Option<String>,
}

/// Most bytes of message, fields and raw text in one `/api/v1/events` answer; a larger one
/// ends early with `X-SecureWatch-Truncated: true` and the cursor to continue in
/// `X-SecureWatch-Next` (at least one event is always sent).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

pub(super) fn parse_time(name: &str, text: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    // As HEC reads `time`: digits with an optional fraction or exponent, never `NaN` or `inf`
    // (a float cast read `NaN` as 1970).
    if let Some(time) = parse_epoch_seconds(text) {
        return Ok(Some(time));
    }
    Err(ApiError::bad_request(format!("{name}: expected RFC 3339 or epoch seconds, got {text:?}")))
}

pub(super) fn limit(value: Option<u32>) -> Result<u32, ApiError> {
    match value.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::bad_request("limit must be at least 1")),
        value if value > MAX_LIMIT => Err(ApiError::bad_request(format!("limit must be at most {MAX_LIMIT}"))),
        value => Ok(value),
    }
}

pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

/// An event as `/api/v1/events` returns it: the stored event plus, when it has tags,
/// `"enrichment"` (assets and networks found for its bucket and lookup keys).
#[derive(Debug, Serialize)]
pub struct EnrichedEvent {
    #[serde(flatten)]
    event: StoredEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrichment: Option<EventEnrichment>,
}

/// Longest `q` substring filter, in bytes (SQLite refuses LIKE patterns over 50,000 bytes, and
/// a long pattern costs every row it is matched against).
pub const MAX_SEARCH_BYTES: usize = 1024;

/// Events newest first; `source` matches the source kind or the configured source name.
pub async fn list_events(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<EventsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<(HeaderMap, Json<Vec<EnrichedEvent>>), ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    if let Some(q) = params.q.as_deref().filter(|q| q.len() > MAX_SEARCH_BYTES) {
        return Err(ApiError::bad_request(format!("q: at most {MAX_SEARCH_BYTES} bytes (got {})", q.len())));
    }
    let query = EventQuery {
        limit: limit(params.limit)?,
        from: parse_time("from", &params.from)?,
        to: parse_time("to", &params.to)?,
        source: non_empty(params.source),
        host: non_empty(params.host),
        q: non_empty(params.q),
        after: non_empty(params.after)
            .map(|text| text.parse::<EventCursor>().map_err(|error| ApiError::bad_request(format!("after: {error}"))))
            .transpose()?,
        max_bytes: Some(state.max_answer_bytes),
    };
    let EventPage { events, next } = state.reader.event_page(&query, &scope).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = next {
        headers.insert("x-securewatch-truncated", HeaderValue::from_static("true"));
        headers.insert("x-securewatch-next", HeaderValue::from_str(&next.to_string()).expect("digits and a dot"));
    }
    let ip_fields = &state.ip_fields;
    let lookups: Vec<EnrichmentLookup> = events
        .iter()
        .map(|event| EnrichmentLookup { time: event.time, keys: lookup_keys(event, ip_fields) })
        .collect();
    let enrichments = state.reader.event_enrichment(&lookups).await?;
    let enriched = events
        .into_iter()
        .zip(enrichments)
        .map(|(event, enrichment)| EnrichedEvent { event, enrichment: (!enrichment.is_empty()).then_some(enrichment) })
        .collect();
    Ok((headers, Json(enriched)))
}

/// Query string of `/api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    limit: Option<u32>,
}

/// The most recent dead letters with their reasons.
pub async fn list_dead_letters(
    State(state): State<ApiState>,
    Extension(scope): Extension<TenantScope>,
    params: Result<Query<DeadLetterParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StoredDeadLetter>>, ApiError> {
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    state.reader.dead_letters(limit(params.limit)?, &scope).await.map(Json).map_err(ApiError::from)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use securewatch_connectors::sinks::sqlite::{SqliteConfig, SqliteStore};
    use securewatch_connectors::sinks::read::ReadError;
    use securewatch_connectors::sinks::EpochWrite;
    use securewatch_schemas::{Asset, EnrichmentRow, LookupKey, Tag};
    use securewatch_schemas::{Event, EventId, FieldValue, Fields, Severity, Source, SourceKind};

    use super::*;

    fn event(seed: &str, ms: i64, host: &str, fields: Fields) -> Event {
        Event {
            tenant: Default::default(),
            id: EventId::from_parts([seed.as_bytes()]),
            time: DateTime::from_timestamp_millis(ms).unwrap(),
            received: DateTime::from_timestamp_millis(ms + 1).unwrap(),
            source: Source { kind: SourceKind::Syslog, name: "syslog".into(), peer: Some("192.0.2.1:514".into()) },
            host: Some(host.into()),
            severity: Severity::Warning,
            category: None,
            message: seed.into(),
            fields,
            raw: None,
        }
    }

    #[test]
    fn times_are_rfc3339_or_finite_epoch_seconds() {
        let parse = |text: &str| parse_time("from", &Some(text.to_string()));
        let at = |text: &str| parse(text).unwrap().unwrap().to_rfc3339();
        assert_eq!(at("1700000000.5"), "2023-11-14T22:13:20.500+00:00");
        assert_eq!(at("1.7e9"), "2023-11-14T22:13:20+00:00");
        assert_eq!(at("2023-11-14T22:13:20Z"), "2023-11-14T22:13:20+00:00");
        assert!(parse_time("from", &None).unwrap().is_none());
        // Issue 24 finding 6: `NaN` was read as 1970-01-01.
        for bad in ["NaN", "nan", "inf", "-inf", "infinity", "1e400", "-1e400", "1e300", "yesterday", ""] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(error.message.starts_with("from: expected RFC 3339 or epoch seconds"), "{bad}: {}", error.message);
        }
    }

    #[tokio::test]
    async fn events_carry_their_enrichment_when_they_have_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let mut fields = Fields::new();
        fields.insert("data.srcip".into(), FieldValue::Str("10.1.2.3".into()));
        fields.insert("custom_ip".into(), FieldValue::Str("198.51.100.1".into()));
        let tagged = event("tagged", 61_000, "Web-1", fields);
        let plain = event("plain", 62_000, "db-9", Fields::new());
        let other_bucket = event("other", 125_000, "web-1", Fields::new());
        let web = Asset { owner: Some("web-team".into()), criticality: Some("high".into()), tags: vec!["pci".into()] };
        let rows = vec![
            (EnrichmentRow { bucket_start_ms: 60_000, key: LookupKey::Host("web-1".into()), tag: Tag::Asset(web) }, 1),
            (
                EnrichmentRow {
                    bucket_start_ms: 60_000,
                    key: "ip:10.1.2.3".parse().unwrap(),
                    tag: Tag::Network { list: "internal".into(), net: "10.0.0.0/8".parse().unwrap() },
                },
                1,
            ),
            (
                EnrichmentRow {
                    bucket_start_ms: 60_000,
                    key: "ip:198.51.100.1".parse().unwrap(),
                    tag: Tag::Network { list: "threat".into(), net: "198.51.100.0/24".parse().unwrap() },
                },
                1,
            ),
        ];
        let write = EpochWrite { events: vec![tagged, plain, other_bucket], enrichment: rows, ..EpochWrite::default() };
        store.write_epochs(&write).await.unwrap();

        let auth = crate::access::config::AuthConfig { mode: crate::access::AuthMode::Off, ..Default::default() };
        let access = crate::api::access_tests::access(&auth, &crate::config::ApiConfig::default(), dir.path(), &store).await;
        let state = ApiState {
            ip_fields: securewatch_schemas::DEFAULT_IP_FIELDS.iter().map(|field| field.to_string()).collect(),
            ..crate::api::access_tests::state(&store, access, dir.path(), None)
        };
        let params = EventsParams { limit: None, source: None, host: None, q: None, from: None, to: None, after: None };
        let (headers, Json(events)) = list_events(State(state.clone()), Extension(TenantScope::All), Ok(Query(params))).await.unwrap();
        assert!(headers.is_empty(), "a small answer is whole: {headers:?}");
        let json = serde_json::to_value(&events).unwrap();
        let by_message = |message: &str| json.as_array().unwrap().iter().find(|event| event["message"] == message).unwrap().clone();
        assert_eq!(
            by_message("tagged")["enrichment"],
            serde_json::json!({
                "assets": [{"key": "host:web-1", "owner": "web-team", "criticality": "high", "tags": ["pci"]}],
                "networks": [{"ip": "10.1.2.3", "list": "internal", "cidr": "10.0.0.0/8"}]
            }),
            "custom_ip is not a configured field"
        );
        assert_eq!(by_message("tagged")["host"], "Web-1", "the event itself is unchanged");
        assert!(by_message("plain").get("enrichment").is_none());
        assert!(by_message("other").get("enrichment").is_none(), "tags are per bucket");

        // Configured fields replace the defaults.
        let state = ApiState { ip_fields: Arc::from(vec!["custom_ip".to_string()]), ..state };
        let params = EventsParams { limit: None, source: None, host: None, q: None, from: None, to: None, after: None };
        let (_, Json(events)) = list_events(State(state.clone()), Extension(TenantScope::All), Ok(Query(params))).await.unwrap();
        let json = serde_json::to_value(&events).unwrap();
        let tagged = json.as_array().unwrap().iter().find(|event| event["message"] == "tagged").unwrap();
        assert_eq!(tagged["enrichment"]["networks"], serde_json::json!([{"ip": "198.51.100.1", "list": "threat", "cidr": "198.51.100.0/24"}]));

        // Issue 24 finding 3: a 60 KB `q` answered 500 with SQLite's "LIKE or GLOB pattern too
        // complex"; a filter over the limit is a clear 400 before anything runs.
        let search = |q: String| EventsParams { limit: None, source: None, host: None, q: Some(q), from: None, to: None, after: None };
        let Err(error) = list_events(State(state.clone()), Extension(TenantScope::All), Ok(Query(search("z".repeat(60_000))))).await else {
            panic!("a 60 KB filter was accepted");
        };
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(error.message, "q: at most 1024 bytes (got 60000)");
        assert!(list_events(State(state.clone()), Extension(TenantScope::All), Ok(Query(search("t".repeat(MAX_SEARCH_BYTES))))).await.is_ok());

        // Issue 24 finding 2: an answer over its byte cap ends early, says so, and the cursor
        // continues where it ended.
        let capped = ApiState { max_answer_bytes: 1, ..state.clone() };
        let page = |after: Option<String>| EventsParams { limit: None, source: None, host: None, q: None, from: None, to: None, after };
        let (headers, Json(first)) = list_events(State(capped.clone()), Extension(TenantScope::All), Ok(Query(page(None)))).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(headers["x-securewatch-truncated"], "true");
        let next = headers["x-securewatch-next"].to_str().unwrap().to_string();
        let (_, Json(second)) = list_events(State(capped.clone()), Extension(TenantScope::All), Ok(Query(page(Some(next))))).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_ne!(serde_json::to_value(&first).unwrap(), serde_json::to_value(&second).unwrap(), "the next page moves on");
        let Err(error) = list_events(State(capped), Extension(TenantScope::All), Ok(Query(page(Some("nope".into()))))).await else { panic!("a bad cursor") };
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);

        // A read over its budget is 503 with the reason, not 500.
        let busy: ApiError = ReadError::OverBudget { seconds: 10 }.into();
        assert_eq!(busy.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.message.contains("longer than 10 s"), "{}", busy.message);
        store.close().await;
    }
}
