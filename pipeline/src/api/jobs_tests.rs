//! Search jobs over real HTTP: a job runs to done and pages its rows as JSON, NDJSON and CSV;
//! a bad query fails with its position; an unread job answers 410; the inline search; tenant
//! A cannot see, read or cancel B's jobs; creation and cancellation are audited.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use securewatch_connectors::sinks::EpochWrite;
use securewatch_schemas::{Event, EventId, Fields, Severity, Source, SourceKind, Tenant};
use serde_json::{json, Value};

use super::access_tests::TestApi;

fn event(tenant: &str, n: i64, now: DateTime<Utc>) -> Event {
    Event {
        id: EventId::from_parts([tenant.as_bytes(), &n.to_be_bytes()]),
        time: now - chrono::Duration::seconds(n + 1),
        received: now,
        source: Source { kind: SourceKind::Hec, name: "main".into(), peer: None },
        tenant: Tenant::parse(tenant).unwrap(),
        host: Some(format!("web-{}", n % 3)),
        severity: Severity::Warning,
        category: None,
        message: format!("login failed for user-{n}"),
        fields: Fields::new(),
        raw: None,
    }
}

async fn api_with_events() -> TestApi {
    let api = TestApi::start(|_| {}).await;
    let now = Utc::now();
    let events = (0..30).map(|n| event("acme", n, now)).chain((0..5).map(|n| event("globex", n, now))).collect();
    api.store.write_epochs(&EpochWrite { events, ..EpochWrite::default() }).await.unwrap();
    api
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

/// Polls the job until it is no longer queued or running.
async fn finished(api: &TestApi, token: &str, id: &str) -> Value {
    for _ in 0..200 {
        let (status, _, body) = api.call(Method::GET, &format!("/api/v1/jobs/{id}"), Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let job = parse(&body);
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never finished");
}

#[tokio::test]
async fn a_job_runs_to_done_and_pages_its_rows_in_every_format() {
    let api = api_with_events().await;
    let analyst = api.token("ana", &["analyst"], &["acme"]);
    let query = json!({"query": "events | where message has \"failed\" | project time, host, message", "from": "-1h"});
    let (status, _, body) = api.call(Method::POST, "/api/v1/jobs", Some(&analyst), Some(query)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = parse(&body)["id"].as_str().unwrap().to_owned();
    let job = finished(&api, &analyst, &id).await;
    assert_eq!((job["state"].as_str(), job["rows_matched"].as_u64(), job["progress"].as_f64()), (Some("done"), Some(30), Some(1.0)));
    assert_eq!(job["path"], "sliced_scan");
    assert_eq!(job["rows_scanned"], 30, "acme's events in the hour, every slice read: {job}");
    assert_eq!(job["columns"], json!(["time", "host", "message"]));

    // JSON pages of 7 follow the cursor to every row, newest first.
    let mut messages = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/jobs/{id}/results?limit=7{}", if cursor.is_empty() { String::new() } else { format!("&cursor={cursor}") });
        let (status, _, body) = api.call(Method::GET, &path, Some(&analyst), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = parse(&body);
        messages.extend(page["rows"].as_array().unwrap().iter().map(|row| row["message"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                assert_eq!(page["complete"], true);
                break;
            }
        }
    }
    assert_eq!(messages, (0..30).map(|n| format!("login failed for user-{n}")).collect::<Vec<_>>());

    let (_, headers, body) = api.call(Method::GET, &format!("/api/v1/jobs/{id}/results?format=ndjson&limit=5"), Some(&analyst), None).await;
    assert_eq!(body.lines().count(), 5);
    assert_eq!(parse(body.lines().next().unwrap())["message"], "login failed for user-0");
    let next = headers["x-securewatch-next"].to_str().unwrap().to_owned();
    let (_, _, body) = api.call(Method::GET, &format!("/api/v1/jobs/{id}/results?format=ndjson&cursor={next}"), Some(&analyst), None).await;
    assert_eq!(body.lines().count(), 25);
    let (_, headers, body) = api.call(Method::GET, &format!("/api/v1/jobs/{id}/results?format=csv&limit=2"), Some(&analyst), None).await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "time,host,message");
    assert!(lines[1].ends_with(",web-0,login failed for user-0"), "{body}");

    // The list shows it; the audit log has its creation.
    let (_, _, body) = api.call(Method::GET, "/api/v1/jobs", Some(&analyst), None).await;
    assert_eq!(parse(&body)[0]["id"], id.as_str());
    let audit = api.audit().await;
    assert!(audit.iter().any(|entry| entry["identity"] == "ana" && entry["action"] == "jobs:run"
        && entry["detail"].as_str().unwrap().starts_with(&format!("202: job {id} created"))), "{audit:?}");
}

#[tokio::test]
async fn a_bad_query_fails_with_its_position() {
    let api = api_with_events().await;
    let analyst = api.token("ana", &["analyst"], &["acme"]);
    let (status, _, body) = api.call(Method::POST, "/api/v1/jobs", Some(&analyst), Some(json!({"query": "events | where hots == 'a'"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let job = parse(&body);
    assert_eq!(job["state"], "failed");
    let error = &job["error"];
    assert_eq!((error["position"].as_u64(), error["line"].as_u64(), error["column"].as_u64()), (Some(15), Some(1), Some(16)));
    assert!(error["message"].as_str().unwrap().contains("unknown column `hots`"), "{error}");
    assert_eq!(error["pointer"], "events | where hots == 'a'\n               ^");
    let (_, _, body) = api.call(Method::GET, &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), Some(&analyst), None).await;
    assert_eq!(parse(&body)["error"], *error, "the job's status keeps the error");
    let (status, _, body) = api.call(Method::POST, "/api/v1/search", Some(&analyst), Some(json!({"query": "events | take"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(parse(&body)["error"]["message"].as_str().unwrap().contains("expected a whole number"), "{body}");
}

#[tokio::test]
async fn search_answers_inline_and_explains() {
    let api = api_with_events().await;
    let analyst = api.token("ana", &["analyst"], &["acme"]);
    let query = json!({"query": "events | where message has \"failed\" | summarize n = count() by host | sort by host asc", "from": "-1h", "wait_ms": 10000});
    let (status, _, body) = api.call(Method::POST, "/api/v1/search", Some(&analyst), Some(query)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = parse(&body);
    assert_eq!(answer["rows"], json!([{"host": "web-0", "n": 10}, {"host": "web-1", "n": 10}, {"host": "web-2", "n": 10}]));
    assert_eq!(answer["job"]["state"], "done");
    let explain = json!({"query": "events | summarize count() by bin(time, 1m), host", "explain": true});
    let (status, _, body) = api.call(Method::POST, "/api/v1/search", Some(&analyst), Some(explain)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let explain = parse(&body);
    assert_eq!(explain["path"], "rollup");
    assert!(explain["sql"].as_str().unwrap().contains("FROM rollup_source"), "{explain}");
    assert!(explain["sql"].as_str().unwrap().contains("tenant IN (?3)"), "the tenant filter is always there: {explain}");
}

#[tokio::test]
async fn an_unread_job_expires_and_answers_410_with_its_state() {
    let api = api_with_events().await;
    let analyst = api.token("ana", &["analyst"], &["acme"]);
    let (_, _, body) = api.call(Method::POST, "/api/v1/jobs", Some(&analyst), Some(json!({"query": "events | count", "keep_alive": 1}))).await;
    let id = parse(&body)["id"].as_str().unwrap().to_owned();
    finished(&api, &analyst, &id).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for path in [format!("/api/v1/jobs/{id}"), format!("/api/v1/jobs/{id}/results")] {
        let (status, _, body) = api.call(Method::GET, &path, Some(&analyst), None).await;
        assert_eq!(status, StatusCode::GONE, "{path}: {body}");
        assert_eq!(parse(&body)["state"], "expired");
    }
}

#[tokio::test]
async fn a_tenant_cannot_see_read_or_cancel_another_tenants_job() {
    let api = api_with_events().await;
    let acme = api.token("acme-analyst", &["analyst"], &["acme"]);
    let globex = api.token("globex-analyst", &["analyst"], &["globex"]);
    let (_, _, body) = api.call(Method::POST, "/api/v1/jobs", Some(&acme), Some(json!({"query": "events | count"}))).await;
    let id = parse(&body)["id"].as_str().unwrap().to_owned();
    let job = finished(&api, &acme, &id).await;
    assert_eq!(job["tenants"], json!(["acme"]));
    assert_eq!((job["rows_scanned"].as_u64(), job["rows_matched"].as_u64()), (Some(30), Some(1)), "a count scans acme's 30 events: {job}");
    for (method, path) in [
        (Method::GET, format!("/api/v1/jobs/{id}")),
        (Method::GET, format!("/api/v1/jobs/{id}/results")),
        (Method::DELETE, format!("/api/v1/jobs/{id}")),
        (Method::GET, format!("/api/v1/jobs/{id}/ws")),
    ] {
        let (status, _, body) = api.call(method.clone(), &path, Some(&globex), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    let (_, _, body) = api.call(Method::GET, "/api/v1/jobs", Some(&globex), None).await;
    assert_eq!(parse(&body), json!([]));
    // globex's own count sees only globex's five events.
    let (_, _, body) = api.call(Method::POST, "/api/v1/search", Some(&globex), Some(json!({"query": "events | count", "wait_ms": 10000}))).await;
    assert_eq!(parse(&body)["rows"], json!([{"count_": 5}]));
    // A viewer has no jobs:run.
    let viewer = api.token("viewer", &["viewer"], &["acme"]);
    let (status, _, _) = api.call(Method::GET, "/api/v1/jobs", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The owner cancels (a finished job stays as it was) and the cancellation is audited.
    let (status, _, body) = api.call(Method::DELETE, &format!("/api/v1/jobs/{id}"), Some(&acme), None).await;
    assert_eq!((status, parse(&body)["state"].as_str()), (StatusCode::OK, Some("done")));
    let audit = api.audit().await;
    assert!(audit.iter().any(|entry| entry["identity"] == "acme-analyst"
        && entry["detail"].as_str().unwrap().starts_with(&format!("200: job {id} cancelled"))), "{audit:?}");
}
