//! What probing the running API found (issue 17 §5): cross-origin form posts, foreign `Host` names, guessing tokens, oversized requests, CORS; and the console's own calls.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::access_tests::TestApi;

/// A form POST from another origin reloaded the rules before: now it needs the bearer header
/// (cookies are never read) and a JSON body or none, and a foreign `Origin` is refused.
#[tokio::test]
async fn a_cross_origin_form_post_cannot_reload_the_rules() {
    let api = TestApi::start(|_| {}).await;
    let reload = format!("{}/api/v1/rules/reload", api.base);
    let form = || {
        api.client
            .post(&reload)
            .header("Origin", "http://evil.example")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("a=b")
    };
    assert_eq!(form().send().await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(form().bearer_auth(&api.admin).send().await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let cookie_only = api.client.post(&reload).header("Cookie", format!("token={}", api.admin)).send().await.unwrap();
    assert_eq!(cookie_only.status(), StatusCode::UNAUTHORIZED);
    let foreign_json =
        api.client.post(&reload).bearer_auth(&api.admin).header("Origin", "http://evil.example").json(&Value::Null).send().await.unwrap();
    assert_eq!(foreign_json.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.client.post(&reload).bearer_auth(&api.admin).send().await.unwrap().status(), StatusCode::OK);
    let refused: Vec<Value> = api.audit().await.into_iter().filter(|entry| entry["outcome"] == "refused").collect();
    assert!(refused.len() >= 3, "each refused reload is audited: {refused:#?}");
    api.store.close().await;
}

/// DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1 sends
/// `Host: evil.example`; a loopback API serves loopback names and the allow-list only.
#[tokio::test]
async fn a_loopback_api_serves_only_loopback_host_names_unless_allowed() {
    let api = TestApi::start(|api| api.allowed_hosts = vec!["securewatch.internal".into()]).await;
    let port = api.base.rsplit(':').next().unwrap().to_string();
    for (host, expected) in [
        ("evil.example".to_string(), StatusCode::MISDIRECTED_REQUEST),
        (format!("evil.example:{port}"), StatusCode::MISDIRECTED_REQUEST),
        (format!("localhost:{port}"), StatusCode::OK),
        (format!("127.0.0.1:{port}"), StatusCode::OK),
        (format!("[::1]:{port}"), StatusCode::OK),
        ("securewatch.internal".to_string(), StatusCode::OK),
    ] {
        let response =
            api.client.get(format!("{}/api/v1/events", api.base)).bearer_auth(&api.admin).header("Host", &host).send().await.unwrap();
        assert_eq!(response.status(), expected, "Host: {host}");
    }
    api.store.close().await;
}

/// Guessing tokens: after `failed_per_minute` refused credentials a peer gets 429 (even with
/// a valid token) until the minute is over; the refusals are counted.
#[tokio::test]
async fn refused_credentials_are_rate_limited_per_peer() {
    let api = TestApi::start(|api| api.auth.failed_per_minute = 3).await;
    for attempt in 0..3 {
        let (status, _, _) = api.call(Method::GET, "/api/v1/events", Some(&format!("swt_guess{attempt:060}")), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = api.call(Method::GET, "/api/v1/events", Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Open routes stay open to probes.
    let (status, _, _) = api.call(Method::GET, "/api/v1/health/live", None, None).await;
    assert_eq!(status, StatusCode::OK);
    api.store.close().await;
}

/// Oversized headers are 431 and oversized bodies 413; CORS answers only configured origins.
#[tokio::test]
async fn limits_and_cors_are_applied() {
    let api = TestApi::start(|api| {
        api.max_header_bytes = 2048;
        api.max_body_bytes = 1024;
        api.cors_origins = vec!["https://grafana.example".into()];
    })
    .await;
    let big_header = api.client.get(format!("{}/api/v1/events", api.base)).bearer_auth(&api.admin).header("X-Pad", "p".repeat(4096));
    assert_eq!(big_header.send().await.unwrap().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let big_body = serde_json::json!({"name": "n".repeat(4096), "roles": ["viewer"]});
    let (status, _, _) = api.call(Method::POST, "/api/v1/tokens", Some(&api.admin), Some(big_body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let preflight = |origin: &str| {
        api.client
            .request(Method::OPTIONS, format!("{}/api/v1/events", api.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
    };
    let allowed = preflight("https://grafana.example").send().await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://grafana.example");
    let other = preflight("http://evil.example").send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    api.store.close().await;

    // Without an allow-list no CORS header is ever sent.
    let api = TestApi::start(|_| {}).await;
    let response =
        api.client.get(format!("{}/api/v1/events", api.base)).bearer_auth(&api.admin).header("Origin", "https://grafana.example").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("access-control-allow-origin").is_none());
    api.store.close().await;
}

/// The console's calls: a POST from the API's own origin passes (another origin still does
/// not), the tenant header narrows a caller to one of its tenants and no further, and a
/// WebSocket upgrade may carry its credential as the second offered subprotocol.
#[tokio::test]
async fn the_consoles_own_origin_tenant_header_and_websocket_credential() {
    let api = TestApi::start(|_| {}).await;
    let reload = format!("{}/api/v1/rules/reload", api.base);
    let post_from = |origin: String| api.client.post(&reload).bearer_auth(&api.admin).header("Origin", origin).json(&Value::Null).send();
    assert_eq!(post_from(api.base.clone()).await.unwrap().status(), StatusCode::OK);
    let port = api.base.rsplit(':').next().unwrap();
    assert_eq!(post_from(format!("http://localhost:{port}")).await.unwrap().status(), StatusCode::FORBIDDEN, "another origin");
    assert_eq!(post_from(format!("{}.evil.example", api.base)).await.unwrap().status(), StatusCode::FORBIDDEN);

    let two = api.token("two-tenants", &["viewer"], &["acme", "globex"]);
    let whoami = |tenant: Option<&str>| {
        let mut request = api.client.get(format!("{}/api/v1/whoami", api.base)).bearer_auth(&two);
        if let Some(tenant) = tenant {
            request = request.header(crate::access::TENANT_HEADER, tenant);
        }
        request.send()
    };
    let me: Value = serde_json::from_str(&whoami(None).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!((me["tenants"].clone(), me["all_tenants"].clone()), (serde_json::json!(["acme", "globex"]), Value::Bool(false)));
    assert_eq!(me["permissions"], serde_json::json!(["events:read", "dashboards:read", "alerts:read"]));
    let narrowed: Value = serde_json::from_str(&whoami(Some("globex")).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(narrowed["tenants"], serde_json::json!(["globex"]));
    assert_eq!(whoami(Some("initech")).await.unwrap().status(), StatusCode::FORBIDDEN, "a tenant it does not see");

    // A WebSocket upgrade with the credential as a subprotocol reaches the job routes (404: no
    // such job) instead of 401; without the marker protocol first it is not read.
    let socket = |protocols: String| {
        api.client
            .get(format!("{}/api/v1/jobs/nosuchjob/ws", api.base))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Protocol", protocols)
            .send()
    };
    assert_eq!(socket(format!("securewatch.bearer, {}", api.admin)).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(socket(format!("chat, {}", api.admin)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    api.store.close().await;
}
