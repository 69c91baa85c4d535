//! The route guard: header limit, `Host` check, the route table's permission, credentials, the cross-origin rules of state-changing calls, and their audit entries.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use securewatch_connectors::sinks::AuditOutcome;
use securewatch_schemas::TenantScope;
use serde_json::json;

use super::roles::{is_state_changing, route_need, Need};
use super::{entry, Access, AuthMode, Identity};

/// What a handler adds to the audit entry of its call (e.g. the name of a token it made),
/// as a response extension.
#[derive(Debug, Clone)]
pub struct AuditDetail(pub String);

/// What the guard checks for a route that needs a credential and no permission.
const SIGNED_IN: &str = "signed_in";

/// The request header that narrows a caller who sees several tenants to one of them (the
/// console's tenant picker).
pub const TENANT_HEADER: &str = "x-securewatch-tenant";

/// Host names a loopback API serves without an allow-list.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The middleware of every API route (installed with `route_layer`, so it sees the matched
/// route). Inserts the caller's [`Identity`] and `TenantScope` into the request extensions.
pub async fn guard(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let peer_text = peer.map(|peer| peer.to_string());
    let method = request.method().clone();
    let resource = format!("{method} {}", request.uri().path());
    let refuse = |reason: &'static str, status: StatusCode, message: String| {
        metrics::counter!("securewatch_api_refused_total", "reason" => reason).increment(1);
        (status, Json(json!({ "error": message }))).into_response()
    };

    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if header_bytes > access.max_header_bytes {
        let message = format!("request headers of {header_bytes} bytes; at most {} accepted", access.max_header_bytes);
        return refuse("headers_too_large", StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, message);
    }
    if let Err(host) = host_allowed(&access, request.headers()) {
        let message = format!("Host {host:?} is not served here (add it to [api] allowed_hosts)");
        return refuse("host", StatusCode::MISDIRECTED_REQUEST, message);
    }
    let Some(matched) = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_string()) else {
        return next.run(request).await;
    };
    let permission = match route_need(&method, &matched) {
        None => {
            return refuse("unlisted_route", StatusCode::FORBIDDEN, format!("{method} {matched} is not in the route table"))
        }
        Some(Need::Open | Need::Console) => None,
        Some(Need::SignedIn) => Some(SIGNED_IN),
        Some(Need::HealthDetail) => (!access.config.open_health).then_some("health:read"),
        Some(Need::Metrics) => (!access.config.open_metrics).then_some("metrics:read"),
        Some(Need::Permission(permission)) => Some(permission),
    };
    let changing = is_state_changing(&method);
    let audit_refusal = |identity: &Identity, action: &str, detail: String| {
        let identity = (identity.name.clone(), identity.tenant_label());
        let entry = entry(&identity.0, &identity.1, action, resource.clone(), AuditOutcome::Refused, peer_text.clone(), detail);
        let access = Arc::clone(&access);
        async move { access.audit(entry).await }
    };
    let nobody = || Identity { name: "-".into(), roles: Vec::new(), scope: TenantScope::Only(Vec::new()), grants: Default::default() };
    if changing {
        if let Err(problem) = cross_origin_safe(&access, request.headers()) {
            audit_refusal(&nobody(), permission.unwrap_or("request"), problem.to_string()).await;
            let status = if problem.starts_with("Content-Type") { StatusCode::UNSUPPORTED_MEDIA_TYPE } else { StatusCode::FORBIDDEN };
            return refuse("cross_origin", status, problem.to_string());
        }
    }
    let Some(permission) = permission else {
        request.extensions_mut().insert(TenantScope::Only(Vec::new()));
        return next.run(request).await;
    };

    let identity = if access.config.mode == AuthMode::Off {
        Identity::anonymous()
    } else {
        if let Some(retry) = peer.and_then(|peer| access.limiter.blocked(peer.ip())) {
            let mut response = refuse("rate_limited", StatusCode::TOO_MANY_REQUESTS, "too many refused credentials from this address; try again later".into());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry));
            return response;
        }
        let credential = bearer(request.headers());
        let refused = match credential {
            None => Err(("missing", "missing credential: send Authorization: Bearer <token>".to_string())),
            Some(credential) => access.identify(credential).await.map_err(|reason| ("invalid", reason)),
        };
        match refused {
            Ok(identity) => identity,
            Err((reason, detail)) => {
                if let (Some(peer), "invalid") = (peer, reason) {
                    access.limiter.failed(peer.ip());
                }
                metrics::counter!("securewatch_api_auth_failures_total", "reason" => reason).increment(1);
                tracing::warn!(peer = peer_text.as_deref().unwrap_or("-"), %resource, reason = %detail, "API credential refused.");
                audit_refusal(&nobody(), "authenticate", detail).await;
                let challenge = match reason {
                    "missing" => "Bearer realm=\"securewatch\"",
                    _ => "Bearer realm=\"securewatch\", error=\"invalid_token\"",
                };
                let message = if reason == "missing" { "missing credential: send Authorization: Bearer <token>" } else { "invalid credential" };
                let mut response = refuse("unauthenticated", StatusCode::UNAUTHORIZED, message.into());
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
                return response;
            }
        }
    };
    let mut identity = identity;
    if let Some(tenant) = request.headers().get(TENANT_HEADER) {
        let tenant = tenant.to_str().unwrap_or_default().trim().to_string();
        if tenant.is_empty() || !identity.scope.allows(&tenant) {
            return refuse("tenant", StatusCode::FORBIDDEN, format!("tenant {tenant:?} is not one this credential sees"));
        }
        identity.scope = TenantScope::Only(vec![tenant]);
    }
    if permission != SIGNED_IN && !identity.allows(permission) {
        let roles = if identity.roles.is_empty() { "none".to_string() } else { identity.roles.join(",") };
        audit_refusal(&identity, permission, format!("missing permission {permission} (roles: {roles})")).await;
        return refuse("forbidden", StatusCode::FORBIDDEN, format!("missing permission {permission}"));
    }
    request.extensions_mut().insert(identity.scope.clone());
    request.extensions_mut().insert(identity.clone());
    let response = next.run(request).await;
    if changing {
        let status = response.status();
        let outcome = if status.is_success() { AuditOutcome::Ok } else { AuditOutcome::Failed };
        let detail = match response.extensions().get::<AuditDetail>() {
            Some(AuditDetail(detail)) => format!("{}: {detail}", status.as_u16()),
            None => status.as_u16().to_string(),
        };
        let tenant = identity.tenant_label();
        access.audit(entry(&identity.name, &tenant, permission, resource, outcome, peer_text, detail)).await;
    }
    response
}

/// The WebSocket subprotocol a browser offers, followed by its credential, since a browser's
/// WebSocket cannot send an `Authorization` header: `Sec-WebSocket-Protocol: securewatch.bearer, <token>`.
pub const WEBSOCKET_BEARER: &str = "securewatch.bearer";

/// The bearer credential of the `Authorization` header, or on a WebSocket upgrade the one
/// offered after [`WEBSOCKET_BEARER`] (cookies are never read).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return websocket_bearer(headers) };
    let (scheme, credential) = value.to_str().ok()?.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty()).then(|| credential.trim())
}

fn websocket_bearer(headers: &HeaderMap) -> Option<&str> {
    let upgrade = headers.get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    let mut offered = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?.split(',').map(str::trim);
    (offered.next()? == WEBSOCKET_BEARER).then(|| offered.next()).flatten().filter(|credential| !credential.is_empty())
}

/// `Err(host)` when the API listens on loopback and the `Host` header names neither a loopback
/// name nor one of `allowed_hosts` (DNS rebinding: a web page's own name resolving to 127.0.0.1).
fn host_allowed(access: &Access, headers: &HeaderMap) -> Result<(), String> {
    if !access.loopback && access.allowed_hosts.is_empty() {
        return Ok(());
    }
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else { return Ok(()) };
    let name = match host.strip_prefix('[') {
        Some(rest) => format!("[{}]", rest.split(']').next().unwrap_or_default()),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name).to_string(),
    }
    .to_ascii_lowercase();
    let listed = access.allowed_hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(&name) || allowed.eq_ignore_ascii_case(host));
    let loopback = access.loopback && LOOPBACK_HOSTS.contains(&name.as_str());
    if listed || loopback {
        Ok(())
    } else {
        Err(host.to_string())
    }
}

/// Whether `origin` is this server's own (the console's calls): `http(s)://` and the `Host`
/// the request was sent to, which the Host check has already vetted.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else { return false };
    let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// A state-changing call must not be one a web page can make on a visitor's behalf: a body is
/// JSON (a form cannot send that without CORS), and an `Origin` is this server's own or one of
/// `cors_origins`.
fn cross_origin_safe(access: &Access, headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let json = content_type.to_str().is_ok_and(|value| {
            value.split(';').next().is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err("Content-Type: state-changing calls take application/json bodies (or none)");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|origin| same_origin(origin, headers) || access.cors_origins.iter().any(|allowed| allowed == origin));
        if !allowed {
            return Err("Origin: cross-origin state-changing calls are refused (see [api] cors_origins)");
        }
    }
    if headers.get("sec-fetch-site").is_some_and(|site| site == "cross-site") && headers.get(header::ORIGIN).is_none() {
        return Err("Origin: cross-site state-changing calls are refused");
    }
    Ok(())
}
