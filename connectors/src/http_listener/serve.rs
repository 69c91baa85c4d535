//! The accept loop and the connection tasks of an HTTP listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::body::{AnswerBody, MinRateBody};
use super::registry::{ConnectionState, Registry};
use super::stall::WriteStallGuard;
use super::{HttpLimits, CONNECTIONS_CLOSED, CONNECTIONS_OPEN};
use crate::log_limit::{WarnLimiter, DEFAULT_INTERVAL, LOGS_SUPPRESSED};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Turns an accepted TCP stream into what HTTP is spoken over (the stream itself, or a TLS
/// session around it). Runs in the connection's task, within `header_read_timeout`.
pub trait StreamAcceptor: Send + Sync + 'static {
    /// The stream hyper reads and writes.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Wraps one accepted stream (a TLS acceptor does its handshake here).
    fn accept(&self, stream: TcpStream) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

/// Plain HTTP: the TCP stream as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl StreamAcceptor for PlainTcp {
    type Stream = TcpStream;

    async fn accept(&self, stream: TcpStream) -> std::io::Result<TcpStream> {
        Ok(stream)
    }
}

/// A bound HTTP listener with its limits; [`HttpListener::serve`] runs it until shutdown.
#[derive(Debug)]
pub struct HttpListener {
    listener: TcpListener,
    name: Arc<str>,
    limits: HttpLimits,
}

/// What every connection task of a listener shares.
struct Shared<A> {
    name: Arc<str>,
    limits: HttpLimits,
    acceptor: A,
    router: Router,
    http: http1::Builder,
}

impl HttpListener {
    /// A listener named `name` in logs and metrics (`listener` label), serving within `limits`.
    pub fn new(listener: TcpListener, name: &str, limits: HttpLimits) -> HttpListener {
        HttpListener { listener, name: Arc::from(name), limits }
    }

    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` over plain TCP until `shutdown`, then closes idle connections at once
    /// and gives requests in flight [`HttpLimits::shutdown_grace`] before closing theirs.
    pub async fn serve(self, router: Router, shutdown: CancellationToken) {
        self.serve_with(PlainTcp, router, shutdown).await
    }

    /// [`HttpListener::serve`] over the streams `acceptor` makes of the accepted ones.
    pub async fn serve_with<A: StreamAcceptor>(self, acceptor: A, router: Router, shutdown: CancellationToken) {
        let HttpListener { listener, name, limits } = self;
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
        let shared = Arc::new(Shared { name: Arc::clone(&name), limits, acceptor, router, http });
        let mut registry = Registry::new();
        let mut connections = JoinSet::new();
        let mut refusals = WarnLimiter::new(DEFAULT_INTERVAL);
        let mut accept_failures = WarnLimiter::new(DEFAULT_INTERVAL);
        let open = metrics::gauge!(CONNECTIONS_OPEN, "listener" => name.to_string());
        loop {
            open.set(connections.len() as f64);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(finished) = connections.join_next_with_id(), if !connections.is_empty() => match finished {
                    Ok((id, ())) => registry.remove(id),
                    Err(error) => {
                        registry.remove(error.id());
                        tracing::error!(listener = %name, %error, "HTTP connection task failed.");
                    }
                },
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if registry.live() >= limits.max_connections {
                            if !registry.close_idlest() {
                                refuse(&name, peer, limits.max_connections, &mut refusals);
                                continue;
                            }
                            count(&name, "idle_evicted", 1);
                        }
                        let state = registry.open();
                        let task = connections.spawn(connection(Arc::clone(&shared), stream, peer, Arc::clone(&state)));
                        registry.register(task.id(), state);
                    }
                    Err(error) => {
                        match accept_failures.admit(Instant::now()) {
                            Some(suppressed) => tracing::warn!(listener = %name, %error, suppressed, "HTTP accept failed (`suppressed`: failures not logged since the last line)."),
                            None => suppressed_warning(&name, "accept_failed"),
                        }
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
            }
        }
        drop(listener);
        registry.close_all();
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while let Some(finished) = connections.join_next().await {
                open.set(connections.len() as f64);
                if let Err(error) = finished {
                    tracing::error!(listener = %name, %error, "HTTP connection task failed.");
                }
            }
        })
        .await;
        if drained.is_err() {
            let left = connections.len();
            count(&name, "shutdown_grace", left as u64);
            tracing::warn!(listener = %name, connections = left, grace_ms = limits.shutdown_grace.as_millis() as u64, "HTTP requests still in flight after the shutdown grace; closing their connections.");
            connections.shutdown().await;
        }
        open.set(0.0);
    }
}

/// Serves one connection until the client closes it, a timeout ends it, or it is asked to
/// close: then at once when no request is in flight, else after the request's answer.
async fn connection<A: StreamAcceptor>(shared: Arc<Shared<A>>, stream: TcpStream, peer: SocketAddr, state: Arc<ConnectionState>) {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::select! {
        _ = state.close.cancelled() => return,
        handshake = tokio::time::timeout(shared.limits.header_read_timeout, shared.acceptor.accept(stream)) => handshake,
    };
    let io = match handshake {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            tracing::debug!(listener = %shared.name, %peer, %error, "HTTP connection refused by its acceptor.");
            return;
        }
        Err(_) => {
            count(&shared.name, "header_timeout", 1);
            return;
        }
    };
    let service = {
        let (shared, state) = (Arc::clone(&shared), Arc::clone(&state));
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let in_flight = state.request_started();
            let limits = &shared.limits;
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            let body = MinRateBody::new(body, limits.body_read_timeout, limits.body_min_bytes_per_sec, Arc::clone(&shared.name));
            let request = Request::from_parts(parts, Body::new(body));
            let mut router = shared.router.clone();
            async move {
                let answer = router.call(request).await.unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(answer.map(|body| AnswerBody::new(body, in_flight)))
            }
        })
    };
    let io = WriteStallGuard::new(io, shared.limits.header_read_timeout, Arc::clone(&shared.name));
    // Upgrades: the API's job WebSockets take the connection over once answered 101.
    let served = shared.http.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(served);
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    if error.is_timeout() {
                        count(&shared.name, "header_timeout", 1);
                    } else {
                        tracing::debug!(listener = %shared.name, %peer, %error, "HTTP connection ended with an error.");
                    }
                }
                return;
            }
            _ = state.close.cancelled(), if !closing => {
                // Nothing is polled meanwhile, so no request can start between the check and the drop.
                if state.is_idle() {
                    return;
                }
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Closes a connection over the limit with every connection busy; counts it and warns at most
/// once per [`DEFAULT_INTERVAL`].
fn refuse(name: &str, peer: SocketAddr, max_connections: usize, refusals: &mut WarnLimiter) {
    count(name, "connection_limit", 1);
    match refusals.admit(Instant::now()) {
        Some(suppressed) => tracing::warn!(
            listener = %name,
            %peer,
            max_connections,
            suppressed,
            "HTTP connection refused: every connection is busy (`suppressed`: refusals not logged since the last line)."
        ),
        None => suppressed_warning(name, "connection_refused"),
    }
}

fn count(name: &str, reason: &'static str, connections: u64) {
    metrics::counter!(CONNECTIONS_CLOSED, "listener" => name.to_string(), "reason" => reason).increment(connections);
}

fn suppressed_warning(name: &str, warning: &'static str) {
    metrics::counter!(LOGS_SUPPRESSED, "source" => name.to_string(), "kind" => "http", "warning" => warning).increment(1);
}
