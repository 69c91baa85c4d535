//! What every role shares: binding and serving the API, the shutdown signal, draining sources.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use securewatch_connectors::fd_limit;
use securewatch_connectors::http_listener::{HttpListener, HttpSettings};
use securewatch_connectors::tls::{TlsAcceptor, TlsConfig};
use securewatch_connectors::CancellationToken;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::errors;

/// How long sources get to finish in-flight work after the shutdown signal.
const SOURCE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the API gets to answer requests in flight once everything else has stopped; a
/// client that never finishes its request does not hold the process.
const API_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server of a role, stopped by [`RunningApi::stop`].
pub struct RunningApi {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningApi {
    /// Stops accepting and closes idle connections (a half-sent request, an idle keep-alive
    /// one) at once; requests in flight get [`API_DRAIN_TIMEOUT`] to finish, then their
    /// connections close too.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        // The listener closes what is left after the grace; this only guards against a stuck task.
        match tokio::time::timeout(API_DRAIN_TIMEOUT + Duration::from_secs(1), &mut self.task).await {
            Ok(finished) => finished.context("API task"),
            Err(_) => {
                tracing::warn!(seconds = API_DRAIN_TIMEOUT.as_secs(), "API connections still open after the shutdown grace; closing them.");
                self.task.abort();
                Ok(())
            }
        }
    }
}

/// Raises the open-files limit and fits the listeners' connection limits under it (each
/// scaled down in proportion when their sum leaves fewer than
/// [`fd_limit::RESERVED_DESCRIPTORS`], or half the limit, for the rest); logs what was chosen,
/// warns when lowered.
/// `with_sources`: whether this role serves HEC and syslog (not `worker`).
pub fn fit_connections_to_open_files(config: &mut Config, with_sources: bool) {
    let limit = fd_limit::raise_open_files_limit();
    let mut listeners: Vec<(&str, &mut usize)> = vec![("api", &mut config.api.max_connections)];
    if with_sources && config.sources.hec.enabled {
        listeners.push(("sources.hec", &mut config.sources.hec.max_connections));
    }
    if with_sources && config.sources.syslog.enabled
        && (config.sources.syslog.tcp_listen.is_some() || config.sources.syslog.tls_listen.is_some())
    {
        listeners.push(("sources.syslog", &mut config.sources.syslog.max_connections));
    }
    let lowered = fd_limit::fit_connection_limits(&mut listeners, limit.connection_budget());
    let chosen: Vec<String> = listeners.iter().map(|(name, limit)| format!("{name}={limit}")).collect();
    tracing::info!(open_files = limit.soft, was = limit.was, hard = limit.hard, max_connections = %chosen.join(" "), "Open-files limit and connection limits.");
    for (name, asked) in lowered {
        tracing::warn!(listener = %name, asked, open_files = limit.soft, budget = limit.connection_budget(), "max_connections lowered to fit the open-files limit (`ulimit -n`); raise the hard limit to serve more.");
    }
}

/// Binds the API's address; the first thing a role does, so a taken port stops it before
/// anything else starts.
pub async fn bind_api(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("API: cannot listen on {listen}"))
}

/// Adds the bound API to `listeners`, logs every listener and serves the router `router`
/// builds from them, within the `[api]` limits `http`, over HTTPS when `tls` is set.
pub async fn serve_api(
    api_listener: tokio::net::TcpListener,
    http: HttpSettings,
    tls: Option<&TlsConfig>,
    listeners: &mut Vec<(String, SocketAddr)>,
    router: impl FnOnce(Vec<(String, SocketAddr)>) -> axum::Router,
) -> anyhow::Result<RunningApi> {
    listeners.push(("api".into(), api_listener.local_addr()?));
    for (name, address) in listeners.iter() {
        tracing::info!(listener = %name, %address, "Listening.");
    }
    let tls = tls.map(|tls| TlsAcceptor::new("api", tls, &[b"http/1.1"])).transpose().context("[api.tls]")?;
    let app = router(listeners.clone());
    let stop = CancellationToken::new();
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let listener = HttpListener::new(api_listener, "api", http.limits(API_DRAIN_TIMEOUT));
            match tls {
                Some(tls) => {
                    let watcher = tls.watch(stop.clone());
                    listener.serve_with(tls, app, stop).await;
                    watcher.abort();
                }
                None => listener.serve(app, stop).await,
            }
        })
    };
    Ok(RunningApi { stop, task })
}

/// Creates the data directory private to its user (0700) and makes what an older version left
/// in it private too: files 0600, directories 0700, one level down (the journal).
pub fn private_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tighten = |path: &std::path::Path, mode: u32| {
            if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                tracing::warn!(path = %path.display(), %error, "Cannot make it private to this user.");
            }
        };
        tighten(data_dir, 0o700);
        let entries = |dir: &std::path::Path| std::fs::read_dir(dir).into_iter().flatten().flatten();
        for entry in entries(data_dir) {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                tighten(&entry.path(), 0o700);
                for inner in entries(&entry.path()) {
                    if inner.file_type().is_ok_and(|kind| kind.is_file()) {
                        tighten(&inner.path(), 0o600);
                    }
                }
            } else if kind.is_file() {
                tighten(&entry.path(), 0o600);
            }
        }
    }
    Ok(())
}

/// Waits up to [`SOURCE_DRAIN_TIMEOUT`] for the sources to stop after the shutdown signal.
pub async fn drain_sources(sources: &mut JoinSet<anyhow::Result<()>>) {
    let drained = tokio::time::timeout(SOURCE_DRAIN_TIMEOUT, async {
        while let Some(result) = sources.join_next().await {
            if let Err(error) = flatten(result) {
                tracing::error!(error = %errors::error_chain(&error), "Source failed while stopping.");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("Sources did not stop in time; aborting them.");
        sources.abort_all();
    }
}

pub fn flatten(result: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result.map_err(anyhow::Error::from).and_then(|inner| inner)
}

pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(stream) => stream,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
