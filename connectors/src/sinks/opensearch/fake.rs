//! A protocol-level fake OpenSearch for the sink's tests: `_bulk`, templates, ISM, scripted faults.
//!
//! It speaks HTTP (or HTTPS) on a free loopback port and answers as OpenSearch does for what the sink
//! uses: `PUT/GET _index_template/<name>`, `GET/PUT _plugins/_ism/policies/<id>` (with the
//! `if_seq_no`/`if_primary_term` rules of updates), `POST _bulk` (NDJSON parsed pair by pair,
//! documents kept by index and `_id`, `create` on an existing id answered 409, `strict`
//! template mappings and `date` fields enforced), `GET <index>/_count`. Faults are scripted per
//! document id (429 / 5xx / 4xx answers) or per request (whole-request status), and every
//! request is recorded for the tests to inspect.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The HTTP method.
    pub method: Method,
    /// The request path, e.g. `/_bulk`.
    pub path: String,
    /// The `Authorization` header, if the request carried one.
    pub authorization: Option<String>,
    /// Size of the request body, in bytes.
    pub body_bytes: usize,
    /// Documents in a `_bulk` body (action lines).
    pub documents: usize,
}

/// An installed ISM policy with its optimistic-concurrency numbers.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy document as stored.
    pub body: Value,
    /// Its `_seq_no`, checked against `if_seq_no` on updates.
    pub seq_no: u64,
    /// Its `_primary_term`, checked against `if_primary_term` on updates.
    pub primary_term: u64,
}

/// Everything the fake holds; tests read and script it through [`FakeOpenSearch::state`].
#[derive(Debug, Default)]
pub struct FakeState {
    /// Stored documents by (index, `_id`).
    pub documents: BTreeMap<(String, String), Value>,
    /// Index templates by name.
    pub templates: BTreeMap<String, Value>,
    /// ISM policies by id.
    pub policies: BTreeMap<String, Policy>,
    /// Every request, in arrival order.
    pub requests: Vec<Recorded>,
    /// Statuses to answer for the next deliveries of a document id, one per delivery.
    pub item_faults: HashMap<String, VecDeque<u16>>,
    /// Statuses answered for a document id on every delivery.
    pub item_rejections: HashMap<String, u16>,
    /// Statuses to answer for the next `_bulk` requests as a whole.
    pub request_faults: VecDeque<u16>,
    /// Bodies above this size get 413 (OpenSearch's `http.max_content_length`).
    pub max_body_bytes: Option<usize>,
    /// The `Authorization` header every request must carry, when set.
    pub required_authorization: Option<String>,
    next_seq_no: u64,
}

impl FakeState {
    /// The `_bulk` requests received.
    pub fn bulk_requests(&self) -> Vec<Recorded> {
        self.requests.iter().filter(|request| request.path == "/_bulk").cloned().collect()
    }

    /// Whether a document with this id is stored in any index.
    pub fn holds(&self, id: &str) -> bool {
        self.documents.keys().any(|(_, stored)| stored == id)
    }
}

type Shared = Arc<Mutex<FakeState>>;

/// A running fake; stops when dropped.
pub struct FakeOpenSearch {
    /// The base URL to reach the fake at (`http://` or `https://`, then `ip:port`).
    pub url: String,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenSearch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenSearch {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeOpenSearch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        FakeOpenSearch::serve(listener, url)
    }

    /// Starts the fake on a free loopback port, speaking HTTPS with `certificate_chain` and `key`.
    pub async fn start_tls(certificate_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> FakeOpenSearch {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificate_chain, key)
            .unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", tcp.local_addr().unwrap());
        FakeOpenSearch::serve(TlsListener { tcp, acceptor: TlsAcceptor::from(Arc::new(config)) }, url)
    }

    fn serve(listener: impl axum::serve::Listener<Addr = std::net::SocketAddr>, url: String) -> FakeOpenSearch {
        let state = Shared::default();
        let router = Router::new().fallback(handle).layer(DefaultBodyLimit::disable()).with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeOpenSearch { url, state, task }
    }

    /// The fake's state, to script faults or inspect what arrived.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Answers the next deliveries of document `id` with `statuses`, one each, then stores it.
    pub fn fail_item(&self, id: &str, statuses: &[u16]) {
        self.state().item_faults.entry(id.to_string()).or_default().extend(statuses);
    }

    /// Answers every delivery of document `id` with `status`.
    pub fn reject_item(&self, id: &str, status: u16) {
        self.state().item_rejections.insert(id.to_string(), status);
    }

    /// Answers the next `_bulk` requests with `statuses` for the whole request.
    pub fn fail_requests(&self, statuses: &[u16]) {
        self.state().request_faults.extend(statuses);
    }
}

/// Accepts TCP connections and completes the TLS handshake; failed handshakes (a client that
/// does not trust the certificate) are dropped.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn error_body(status: StatusCode, kind: &str, reason: &str) -> Response {
    let body = json!({ "error": { "type": kind, "reason": reason }, "status": status.as_u16() });
    (status, axum::Json(body)).into_response()
}

/// The error type OpenSearch gives for an item status.
fn item_error(status: u16) -> Value {
    let (kind, reason) = match status {
        409 => ("version_conflict_engine_exception", "version conflict, document already exists (current version [1])"),
        429 => ("es_rejected_execution_exception", "rejected execution: write queue is full"),
        400 => ("mapper_parsing_exception", "failed to parse field [time] of type [date]"),
        500..=599 => ("unavailable_shards_exception", "primary shard is not active"),
        _ => ("illegal_argument_exception", "refused"),
    };
    json!({ "type": kind, "reason": reason })
}

async fn handle(State(state): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = state.lock().unwrap();
    let path = uri.path().to_string();
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).map(str::to_string);
    let documents = if path == "/_bulk" { body.split(|&byte| byte == b'\n').count() / 2 } else { 0 };
    state.requests.push(Recorded {
        method: method.clone(),
        path: path.clone(),
        authorization: authorization.clone(),
        body_bytes: body.len(),
        documents,
    });
    if let Some(required) = &state.required_authorization {
        if authorization.as_ref() != Some(required) {
            return error_body(StatusCode::UNAUTHORIZED, "security_exception", "missing or wrong authentication");
        }
    }
    if let Some(limit) = state.max_body_bytes {
        if body.len() > limit {
            return error_body(StatusCode::PAYLOAD_TOO_LARGE, "content_too_long", "request body too large");
        }
    }
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["_bulk"]) => bulk(&mut state, &headers, &body),
        ("PUT", ["_index_template", name]) => match serde_json::from_slice::<Value>(&body) {
            Ok(template) if template["index_patterns"].is_array() => {
                state.templates.insert(name.to_string(), template);
                axum::Json(json!({ "acknowledged": true })).into_response()
            }
            _ => error_body(StatusCode::BAD_REQUEST, "parse_exception", "index template needs index_patterns"),
        },
        ("GET", ["_index_template", name]) => match state.templates.get(*name) {
            Some(template) => {
                axum::Json(json!({ "index_templates": [{ "name": name, "index_template": template }] })).into_response()
            }
            None => error_body(StatusCode::NOT_FOUND, "resource_not_found_exception", "index template missing"),
        },
        ("GET", ["_plugins", "_ism", "policies", id]) => match state.policies.get(*id) {
            Some(policy) => axum::Json(json!({
                "_id": id, "_version": policy.seq_no + 1, "_seq_no": policy.seq_no,
                "_primary_term": policy.primary_term, "policy": policy.body["policy"],
            }))
            .into_response(),
            None => error_body(StatusCode::NOT_FOUND, "status_exception", "Policy not found"),
        },
        ("PUT", ["_plugins", "_ism", "policies", id]) => put_policy(&mut state, id, &query, &body),
        ("GET", [index, "_count"]) => {
            let count = state.documents.keys().filter(|(stored, _)| index_matches(index, stored)).count();
            axum::Json(json!({ "count": count })).into_response()
        }
        _ => error_body(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            &format!("no handler for {method} {path}"),
        ),
    }
}

fn index_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

fn put_policy(state: &mut FakeState, id: &str, query: &HashMap<String, String>, body: &[u8]) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error_body(StatusCode::BAD_REQUEST, "parse_exception", "policy is not JSON");
    };
    let policy = &body["policy"];
    let states = policy["states"].as_array().cloned().unwrap_or_default();
    let default_state = policy["default_state"].as_str().unwrap_or("");
    if !states.iter().any(|state| state["name"] == default_state) {
        return error_body(StatusCode::BAD_REQUEST, "illegal_argument_exception", "default_state is not a state");
    }
    let conditional = (query.get("if_seq_no"), query.get("if_primary_term"));
    state.next_seq_no += 1;
    let seq_no = state.next_seq_no;
    match (state.policies.get(id), conditional) {
        (Some(_), (None, None)) => {
            return error_body(StatusCode::CONFLICT, "version_conflict_engine_exception", "policy exists");
        }
        (Some(current), (Some(seq), Some(term)))
            if *seq == current.seq_no.to_string() && *term == current.primary_term.to_string() => {}
        (_, (Some(_), _) | (_, Some(_))) => {
            return error_body(StatusCode::CONFLICT, "version_conflict_engine_exception", "seq_no mismatch");
        }
        (None, (None, None)) => {}
    }
    let created = !state.policies.contains_key(id);
    state.policies.insert(id.to_string(), Policy { body, seq_no, primary_term: 1 });
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    (status, axum::Json(json!({ "_id": id, "_seq_no": seq_no, "_primary_term": 1 }))).into_response()
}

fn bulk(state: &mut FakeState, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(status) = state.request_faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap();
        return error_body(status, "scripted_failure", "scripted whole-request failure");
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-ndjson") && !content_type.starts_with("application/json") {
        return error_body(StatusCode::NOT_ACCEPTABLE, "illegal_argument_exception", "unsupported Content-Type");
    }
    if !body.ends_with(b"\n") {
        return error_body(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let mut lines = body[..body.len() - 1].split(|&byte| byte == b'\n');
    let mut items = Vec::new();
    while let Some(action_line) = lines.next() {
        let Ok(action) = serde_json::from_slice::<Value>(action_line) else {
            return error_body(StatusCode::BAD_REQUEST, "json_parse_exception", "action line is not JSON");
        };
        let Some(target) = action.get("create") else {
            return error_body(StatusCode::BAD_REQUEST, "illegal_argument_exception", "only create is expected");
        };
        let (Some(index), Some(id)) = (target["_index"].as_str(), target["_id"].as_str()) else {
            return error_body(StatusCode::BAD_REQUEST, "action_request_validation_exception", "index and id required");
        };
        let Some(source_line) = lines.next() else {
            return error_body(StatusCode::BAD_REQUEST, "illegal_argument_exception", "action without source");
        };
        let status = create(state, index, id, source_line);
        let mut item = json!({ "_index": index, "_id": id, "status": status });
        if status == 201 {
            item["result"] = json!("created");
            item["_version"] = json!(1);
        } else {
            item["error"] = item_error(status);
        }
        items.push(json!({ "create": item }));
    }
    let errors = items.iter().any(|item| item["create"]["status"] != 201);
    axum::Json(json!({ "took": 1, "errors": errors, "items": items })).into_response()
}

/// Creates one document; returns the item status.
fn create(state: &mut FakeState, index: &str, id: &str, source_line: &[u8]) -> u16 {
    if let Some(&status) = state.item_rejections.get(id) {
        return status;
    }
    if let Some(status) = state.item_faults.get_mut(id).and_then(VecDeque::pop_front) {
        return status;
    }
    let Ok(source) = serde_json::from_slice::<Value>(source_line) else { return 400 };
    if !conforms(state, index, &source) {
        return 400;
    }
    let key = (index.to_string(), id.to_string());
    if state.documents.contains_key(&key) {
        return 409;
    }
    state.documents.insert(key, source);
    201
}

/// Whether `source` fits the mappings of the template matching `index`: with `strict`
/// mappings every top-level field must be mapped, `date` fields must hold RFC 3339 times, and a
/// data stream's documents need its timestamp field.
fn conforms(state: &FakeState, index: &str, source: &Value) -> bool {
    let template = state.templates.values().filter(|template| {
        template["index_patterns"].as_array().is_some_and(|patterns| {
            patterns.iter().filter_map(Value::as_str).any(|pattern| index_matches(pattern, index))
        })
    });
    let Some(template) = template.max_by_key(|template| template["priority"].as_i64().unwrap_or(0)) else {
        return true; // no template: dynamic mapping takes anything
    };
    let mappings = &template["template"]["mappings"];
    let properties = &mappings["properties"];
    let Some(fields) = source.as_object() else { return false };
    for (name, value) in fields {
        let mapping = &properties[name.as_str()];
        if mapping.is_null() && mappings["dynamic"] == "strict" {
            return false;
        }
        let date = |text: &str| chrono::DateTime::parse_from_rfc3339(text).is_ok();
        if mapping["type"] == "date" && !value.as_str().is_some_and(date) {
            return false;
        }
    }
    let timestamp = &template["data_stream"]["timestamp_field"]["name"];
    !(template.get("data_stream").is_some() && timestamp.as_str().is_some_and(|field| source.get(field).is_none()))
}
