//! The API behind its guard, over real HTTP: the route × role matrix, 401/403 answers, and the audit entries of mutating calls and refused credentials.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use reqwest::{Method, StatusCode};
use securewatch_connectors::queue::ingest_queue;
use securewatch_connectors::sinks::sqlite::{SqliteConfig, SqliteStore};
use securewatch_connectors::sinks::{AuditLog, StoreReader};
use serde_json::{json, Value};

use super::{router, ApiState};
use crate::access::config::AuthConfig;
use crate::access::roles::{Need, BUILT_IN_ROLES, ROUTES};
use crate::access::{tokens, Access, AccessSettings, AuthMode};
use crate::rules::{DetectionConfig, RulesReloader};

/// A running API on loopback with a store, a rules directory and tokens per role.
pub(crate) struct TestApi {
    pub base: String,
    pub admin: String,
    pub data_dir: tempfile::TempDir,
    pub store: SqliteStore,
    pub client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

/// Access control over `data_dir` as `auth` and `api` say, auditing to `store`.
pub(crate) async fn access(auth: &AuthConfig, api: &crate::config::ApiConfig, data_dir: &std::path::Path, store: &SqliteStore) -> Arc<Access> {
    let settings = AccessSettings {
        auth,
        listen: api.listen,
        allowed_hosts: &api.allowed_hosts,
        cors_origins: &api.cors_origins,
        max_header_bytes: api.max_header_bytes,
    };
    Access::start(settings, data_dir, Some(AuditLog::new(store.clone(), None))).await.unwrap()
}

/// The state of an API over `store` (rules from `rules_dir` when given).
pub(crate) fn state(store: &SqliteStore, access: Arc<Access>, data_dir: &std::path::Path, rules: Option<Arc<RulesReloader>>) -> ApiState {
    let (queue, _receiver) = ingest_queue(10);
    ApiState {
        reader: StoreReader::new(store.clone(), None, None),
        queue: queue.monitor(),
        metrics: metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle(),
        started: Instant::now(),
        listeners: Arc::new(Vec::new()),
        ip_fields: Arc::from(Vec::<String>::new()),
        max_answer_bytes: super::events::MAX_ANSWER_BYTES,
        rules,
        access,
        data_dir: Arc::new(data_dir.to_path_buf()),
        max_body_bytes: 64 * 1024,
        readiness: super::health::Readiness::ready(),
        jobs: crate::jobs::Jobs::start(data_dir, crate::jobs::JobLimits::default()).unwrap(),
        backtest: Arc::new(crate::jobs::backtest::BacktestSettings {
            detection: crate::rules::DetectionConfig::default(),
            correlation: securewatch_dataflow::CorrelationConfig::default(),
        }),
    }
}

impl TestApi {
    /// Starts the API with `tweak` applied to the default `[api]` (auth on).
    pub(crate) async fn start(tweak: impl FnOnce(&mut crate::config::ApiConfig)) -> TestApi {
        let data_dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(data_dir.path(), &SqliteConfig::default()).await.unwrap();
        let admin = tokens::ensure_admin_token(data_dir.path()).unwrap().unwrap();
        let rules_dir = data_dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).unwrap();
        let detection = DetectionConfig { rules_dir: Some(rules_dir), ..DetectionConfig::default() };
        let (reloader, _) = RulesReloader::start(&detection).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut api = crate::config::ApiConfig { listen: listener.local_addr().unwrap(), ..Default::default() };
        tweak(&mut api);
        let access = access(&api.auth, &api, data_dir.path(), &store).await;
        let app = router(ApiState { max_body_bytes: api.max_body_bytes, ..state(&store, access, data_dir.path(), Some(reloader)) });
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap()
        });
        TestApi { base, admin, data_dir, store, client: reqwest::Client::new(), task }
    }

    /// A new token of the tokens file with `roles` and `tenants`.
    pub(crate) fn token(&self, name: &str, roles: &[&str], tenants: &[&str]) -> String {
        let strings = |items: &[&str]| items.iter().map(|item| item.to_string()).collect();
        tokens::create(self.data_dir.path(), name, strings(roles), strings(tenants), None).unwrap()
    }

    /// `method path` with the bearer `token` (none when `None`) and an optional JSON body.
    pub(crate) async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// The audit log as the admin reads it.
    pub(crate) async fn audit(&self) -> Vec<Value> {
        let (status, _, body) = self.call(Method::GET, "/api/v1/audit?limit=10000", Some(&self.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().clone()
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A concrete request for a route of the table.
fn request_for(method: &Method, path: &str, caller: &str) -> (String, Option<Value>) {
    let path = path
        .replace("{id}", "00000000000000000000000000000001")
        .replace("{name}", &format!("no-such-token-{caller}"))
        .replace("{file}", "app.js");
    let body = (method == Method::POST && path == "/api/v1/tokens")
        .then(|| json!({"name": format!("made-by-{caller}"), "roles": ["viewer"], "tenants": ["default"]}));
    (path, body)
}

fn role_allows(role: &str, permission: &str) -> bool {
    let (_, permissions) = BUILT_IN_ROLES.iter().find(|(name, _)| *name == role).unwrap();
    permissions.contains(&"*") || permissions.contains(&permission)
}

/// Every route of the table, called by every built-in role, by a custom role, without a
/// credential and with a wrong one: a role either passes the guard or gets 403 naming the
/// permission; no credential is 401 with `WWW-Authenticate`, except on the open routes.
#[tokio::test]
async fn every_route_answers_each_role_by_its_permission() {
    let api = TestApi::start(|api| {
        api.auth.roles.insert("auditor".into(), vec!["audit:read".into()]);
        api.auth.failed_per_minute = 0;
    })
    .await;
    let mut callers: Vec<(String, String)> = BUILT_IN_ROLES
        .iter()
        .map(|(role, _)| (role.to_string(), api.token(&format!("{role}-token"), &[role], &["*"])))
        .collect();
    callers.push(("auditor".into(), api.token("auditor-token", &["auditor"], &["*"])));
    let mut checked = 0;
    for route in ROUTES {
        for (role, token) in &callers {
            let (path, body) = request_for(&route.method, route.path, role);
            let (status, _, answer) = api.call(route.method.clone(), &path, Some(token), body).await;
            let permission = match route.need {
                Need::Open | Need::Console | Need::SignedIn => None,
                Need::HealthDetail => Some("health:read"),
                Need::Metrics => Some("metrics:read"),
                Need::Permission(permission) => Some(permission),
            };
            let allowed = match (role.as_str(), permission) {
                (_, None) => true,
                ("auditor", Some(permission)) => permission == "audit:read",
                (role, Some(permission)) => role_allows(role, permission),
            };
            let place = format!("{} {} as {role}", route.method, route.path);
            if allowed {
                assert!(status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED, "{place}: {status} {answer}");
                assert!(status.as_u16() < 500, "{place}: {status} {answer}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{place}: {answer}");
                let error: Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(error["error"], format!("missing permission {}", permission.unwrap()), "{place}");
            }
            checked += 1;
        }
        let (path, body) = request_for(&route.method, route.path, "anonymous");
        for credential in [None, Some("swt_0000000000000000000000000000000000000000000000000000000000000000")] {
            let (status, headers, answer) = api.call(route.method.clone(), &path, credential, body.clone()).await;
            if route.need == Need::Open {
                assert!(status.is_success() && answer.is_empty(), "{} {}: {status} {answer:?}", route.method, route.path);
            } else if route.need == Need::Console {
                assert!(status.is_success() && !answer.is_empty(), "{} {}: {status}", route.method, route.path);
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {}: {answer}", route.method, route.path);
                let challenge = headers[reqwest::header::WWW_AUTHENTICATE].to_str().unwrap();
                assert!(challenge.starts_with("Bearer realm=\"securewatch\""), "{challenge}");
                assert_eq!(challenge.contains("invalid_token"), credential.is_some(), "{challenge}");
            }
        }
    }
    assert_eq!(checked, ROUTES.len() * 5);

    // The reload itself ran for the roles holding rules:write, and was refused for the others.
    let audit = api.audit().await;
    let reloads: Vec<(&str, &str)> = audit
        .iter()
        .filter(|entry| entry["resource"] == "POST /api/v1/rules/reload")
        .map(|entry| (entry["identity"].as_str().unwrap(), entry["outcome"].as_str().unwrap()))
        .collect();
    for (identity, outcome) in [("engineer-token", "ok"), ("admin-token", "ok"), ("viewer-token", "refused"), ("analyst-token", "refused"), ("auditor-token", "refused"), ("-", "refused")] {
        assert!(reloads.contains(&(identity, outcome)), "{identity} {outcome} not in {reloads:?}");
    }
    // Every token call by the admin is in the log with its outcome and detail.
    let by_admin = |resource: &str| audit.iter().find(|entry| entry["identity"] == "admin-token" && entry["resource"] == resource).cloned();
    let created = by_admin("POST /api/v1/tokens").expect("token creation audited");
    assert_eq!((created["outcome"].as_str(), created["action"].as_str()), (Some("ok"), Some("tokens:write")));
    assert!(created["detail"].as_str().unwrap().contains("token made-by-admin created"), "{created}");
    let revoked = by_admin("DELETE /api/v1/tokens/no-such-token-admin").expect("revocation audited");
    assert_eq!(revoked["outcome"], "failed", "404: nothing revoked");
    // Refused credentials: a missing and an invalid one per protected route, with the peer.
    let refused: Vec<&Value> = audit.iter().filter(|entry| entry["action"] == "authenticate").collect();
    let protected = ROUTES.iter().filter(|route| !matches!(route.need, Need::Open | Need::Console)).count();
    assert_eq!(refused.len(), protected * 2, "{refused:#?}");
    assert!(refused.iter().all(|entry| entry["outcome"] == "refused" && entry["tenant"] == "*"));
    assert!(refused.iter().all(|entry| entry["peer"].as_str().unwrap().starts_with("127.0.0.1:")));
    assert!(refused.iter().any(|entry| entry["detail"] == "unknown API token"));
    api.store.close().await;
}

/// A created token works at once, a revoked one stops; a caller limited to a tenant reads only
/// that tenant's audit entries and cannot hand out other tenants.
#[tokio::test]
async fn tokens_made_over_the_api_work_and_tenants_bound_what_a_caller_sees() {
    let api = TestApi::start(|_| {}).await;
    let (status, _, body) = api
        .call(Method::POST, "/api/v1/tokens", Some(&api.admin), Some(json!({"name": "acme-admin", "roles": ["admin"], "tenants": ["acme"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let acme_admin = serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
    let (status, _, listed) = api.call(Method::GET, "/api/v1/tokens", Some(&acme_admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed.contains("acme-admin") && !listed.contains(&acme_admin) && !listed.contains("sha256"), "{listed}");

    let (status, _, body) = api
        .call(Method::POST, "/api/v1/tokens", Some(&acme_admin), Some(json!({"name": "sneaky", "roles": ["viewer"], "tenants": ["globex"]})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = api
        .call(Method::POST, "/api/v1/tokens", Some(&acme_admin), Some(json!({"name": "acme-viewer", "roles": ["viewer"], "tenants": ["acme"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // acme's admin sees acme's entries only; the global admin sees all.
    let (_, _, body) = api.call(Method::GET, "/api/v1/audit", Some(&acme_admin), None).await;
    let acme_view: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(!acme_view.is_empty() && acme_view.iter().all(|entry| entry["tenant"] == "acme"), "{acme_view:#?}");
    assert!(api.audit().await.iter().any(|entry| entry["tenant"] == "*"));

    let (status, _, _) = api.call(Method::DELETE, "/api/v1/tokens/acme-admin", Some(&api.admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, _) = api.call(Method::GET, "/api/v1/tokens", Some(&acme_admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    let (status, _, body) = api.call(Method::POST, "/api/v1/tokens", Some(&api.admin), Some(json!({"name": "x", "roles": ["root"]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    api.store.close().await;
}

/// With `mode = "off"` everyone is served everything (the handlers see every tenant); on a
/// non-loopback address that is refused at start.
#[tokio::test]
async fn auth_off_serves_everyone_on_loopback_only() {
    let api = TestApi::start(|api| api.auth.mode = AuthMode::Off).await;
    for path in ["/api/v1/events", "/api/v1/audit", "/metrics", "/api/v1/health"] {
        let (status, _, body) = api.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _, _) = api.call(Method::POST, "/api/v1/rules/reload", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.audit().await.iter().any(|entry| entry["identity"] == "anonymous" && entry["action"] == "rules:write"));

    let auth = AuthConfig { mode: AuthMode::Off, ..AuthConfig::default() };
    let settings = AccessSettings {
        auth: &auth,
        listen: "0.0.0.0:8080".parse().unwrap(),
        allowed_hosts: &[],
        cors_origins: &[],
        max_header_bytes: 16384,
    };
    let error = Access::start(settings, api.data_dir.path(), None).await.unwrap_err().to_string();
    assert!(error.contains("non-loopback"), "{error}");
    api.store.close().await;
}
