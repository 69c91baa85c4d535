//! The shared TLS acceptor: handshakes counted by failure reason, client checks, and the certificate reload.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::config::TlsConfig;
use super::load::{server_config, FileSet, TlsError};
use super::peer::PeerPolicy;
use super::{HANDSHAKE_FAILURES, PEERS_REFUSED, RELOADS};
use crate::log_limit::{SharedWarnLimiter, DEFAULT_INTERVAL};

/// A TLS server for one listener, cheap to clone. New handshakes use the configuration last
/// loaded; [`TlsAcceptor::watch`] reloads it when the files change or on SIGHUP.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    listener: Arc<str>,
    config: TlsConfig,
    alpn: Vec<&'static [u8]>,
    policy: PeerPolicy,
    current: RwLock<Arc<ServerConfig>>,
    /// The files in use, and the last set refused (not logged again until it changes).
    files: Mutex<(FileSet, Option<FileSet>)>,
    /// The warning of a refused client, at most once per interval (a scan would flood the log).
    refusals: SharedWarnLimiter,
}

/// A TLS connection and the client's certificate subject (`None` without a certificate).
pub type Accepted = (TlsStream<TcpStream>, Option<String>);

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are as last loaded.
    Unchanged,
    /// New files are in use for new connections.
    Loaded,
    /// The new files are unusable; the previous ones stay in use.
    Failed,
}

impl TlsAcceptor {
    /// Loads `config`'s files for the listener named `listener` (metrics `listener` label),
    /// offering the ALPN protocols `alpn` (e.g. `http/1.1`; none for syslog).
    pub fn new(listener: &str, config: &TlsConfig, alpn: &[&'static [u8]]) -> Result<TlsAcceptor, TlsError> {
        let files = FileSet::read(config)?;
        let server = server_config(config, &files, alpn)?;
        let policy = PeerPolicy {
            mode: config.client_auth(),
            permitted_peers: config.permitted_peers.iter().map(|peer| peer.trim().to_ascii_lowercase()).collect(),
            fingerprints: config.fingerprint_bytes(),
        };
        let inner = Inner {
            listener: Arc::from(listener),
            config: config.clone(),
            alpn: alpn.to_vec(),
            policy,
            current: RwLock::new(server),
            files: Mutex::new((files, None)),
            refusals: SharedWarnLimiter::new("tls_client_refused", DEFAULT_INTERVAL),
        };
        Ok(TlsAcceptor { inner: Arc::new(inner) })
    }

    /// Reads the files again and, when they changed and are valid, serves new connections
    /// with them. A failure is logged once per broken set and counted.
    pub fn reload(&self) -> Reload {
        let inner = &self.inner;
        let mut files = inner.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = FileSet::read(&inner.config).and_then(|read| {
            if read == files.0 || files.1.as_ref() == Some(&read) {
                return Ok(None);
            }
            match server_config(&inner.config, &read, &inner.alpn) {
                Ok(server) => Ok(Some((read, server))),
                Err(error) => {
                    files.1 = Some(read);
                    Err(error)
                }
            }
        });
        let listener = inner.listener.to_string();
        match outcome {
            Ok(None) => Reload::Unchanged,
            Ok(Some((read, server))) => {
                let certificate = read.describe();
                *inner.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = server;
                *files = (read, None);
                metrics::counter!(RELOADS, "listener" => listener.clone(), "result" => "loaded").increment(1);
                tracing::info!(listener = %listener, cert_file = %inner.config.cert_file.display(), %certificate, "TLS certificate reloaded; new connections use it.");
                Reload::Loaded
            }
            Err(error) => {
                metrics::counter!(RELOADS, "listener" => listener.clone(), "result" => "failed").increment(1);
                tracing::error!(listener = %listener, %error, "TLS reload failed; the previous certificate stays in use.");
                Reload::Failed
            }
        }
    }

    /// Reloads every `reload_interval_ms` (unless 0) and on each SIGHUP, until `shutdown`.
    pub fn watch(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let acceptor = self.clone();
        tokio::spawn(async move {
            let every = acceptor.inner.config.reload_interval_ms;
            let mut ticks = tokio::time::interval(Duration::from_millis(every.max(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(listener = %acceptor.inner.listener, %error, "Cannot listen for SIGHUP; TLS files reload on their interval only.");
                    None
                }
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick(), if every > 0 => {}
                    Some(()) = async { match hangups.as_mut() { Some(signal) => signal.recv().await, None => None } } => {}
                }
                let files = acceptor.clone();
                // File reads and key parsing stay off the runtime's worker threads.
                let _ = tokio::task::spawn_blocking(move || files.reload()).await;
            }
        })
    }

    /// Runs the handshake on `stream` with the configuration in force and checks the client
    /// against the listener's `client_auth`; a failure or refusal is counted by reason.
    pub async fn handshake(&self, stream: TcpStream) -> std::io::Result<Accepted> {
        let server = Arc::clone(&self.inner.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let stream = match tokio_rustls::TlsAcceptor::from(server).accept(stream).await {
            Ok(stream) => stream,
            Err(error) => {
                self.count_failure(handshake_failure_reason(&error));
                return Err(error);
            }
        };
        let end_entity = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first());
        match self.inner.policy.check(end_entity) {
            Ok(identity) => Ok((stream, identity)),
            Err(refusal) => {
                let fingerprint = end_entity.map(|der| super::peer::fingerprint_text(der.as_ref())).unwrap_or_default();
                let peer = stream.get_ref().0.peer_addr().map(|address| address.to_string()).unwrap_or_default();
                metrics::counter!(PEERS_REFUSED, "listener" => self.inner.listener.to_string(), "reason" => refusal.reason()).increment(1);
                if let Some(suppressed) = self.inner.refusals.admit(&self.inner.listener, "tls") {
                    tracing::warn!(listener = %self.inner.listener, %peer, reason = refusal.reason(), %fingerprint, suppressed, "TLS client refused (`suppressed`: refusals not logged since the last line).");
                }
                Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, format!("TLS client refused: {}", refusal.reason())))
            }
        }
    }

    /// Counts a handshake that did not finish in time.
    pub fn count_timeout(&self) {
        self.count_failure("timeout");
    }

    fn count_failure(&self, reason: &'static str) {
        metrics::counter!(HANDSHAKE_FAILURES, "listener" => self.inner.listener.to_string(), "reason" => reason).increment(1);
    }

    /// The listener's client authentication mode.
    pub fn client_auth(&self) -> super::ClientAuth {
        self.inner.policy.mode
    }
}

/// The `reason` label of a failed handshake.
fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(E::NoCertificatesPresented) => "no_client_certificate",
        Some(E::InvalidCertificate(_)) => "bad_client_certificate",
        Some(E::PeerIncompatible(_)) => "incompatible_client",
        Some(E::AlertReceived(_)) => "alert_from_client",
        Some(E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. }) => "not_tls",
        Some(E::PeerMisbehaved(_)) => "protocol_violation",
        Some(_) => "other",
        None => match error.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => "closed",
            _ => "io_error",
        },
    }
}

impl crate::http_listener::StreamAcceptor for TlsAcceptor {
    type Stream = TlsStream<TcpStream>;

    async fn accept(&self, stream: TcpStream) -> std::io::Result<Self::Stream> {
        self.handshake(stream).await.map(|(stream, _)| stream)
    }
}
