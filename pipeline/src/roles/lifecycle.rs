//! What every role shares: binding and serving the API, the shutdown signal, draining sources.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use securewatch_connectors::CancellationToken;
use tokio::task::JoinSet;

use crate::errors;

/// How long sources get to finish in-flight work after the shutdown signal.
const SOURCE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the API gets to answer requests in flight once everything else has stopped; a
/// client that never finishes its request does not hold the process.
const API_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The API server of a role, stopped by [`RunningApi::stop`].
pub struct RunningApi {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningApi {
    /// Stops accepting, lets requests in flight finish for up to [`API_DRAIN_TIMEOUT`], then
    /// closes what is still open (a half-sent request, an idle keep-alive connection).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match tokio::time::timeout(API_DRAIN_TIMEOUT, &mut self.task).await {
            Ok(finished) => finished.context("API task")?.context("API server"),
            Err(_) => {
                tracing::warn!(seconds = API_DRAIN_TIMEOUT.as_secs(), "API connections still open after the shutdown grace; closing them.");
                self.task.abort();
                Ok(())
            }
        }
    }
}

/// Binds the API's address; the first thing a role does, so a taken port stops it before
/// anything else starts.
pub async fn bind_api(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await.with_context(|| format!("API: cannot listen on {listen}"))
}

/// Adds the bound API to `listeners`, logs every listener and serves the router `router`
/// builds from them.
pub async fn serve_api(
    api_listener: tokio::net::TcpListener,
    listeners: &mut Vec<(String, SocketAddr)>,
    router: impl FnOnce(Vec<(String, SocketAddr)>) -> axum::Router,
) -> anyhow::Result<RunningApi> {
    listeners.push(("api".into(), api_listener.local_addr()?));
    for (name, address) in listeners.iter() {
        tracing::info!(listener = %name, %address, "Listening.");
    }
    let app = router(listeners.clone());
    let stop = CancellationToken::new();
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(api_listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
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
