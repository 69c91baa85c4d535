//! Syslog source: RFC 5424 / RFC 3164 messages over UDP (one per datagram), TCP (RFC 6587) and TLS (RFC 5425).
//!
//! Both sockets are bound by [`SyslogSource::bind`], so a busy port fails at start-up with its
//! address. Messages become one [`RawRecord`] each (peer `ip:port`, receive time, the bytes) and
//! are enqueued in batches; parsing happens after the queue. UDP never blocks the socket: a
//! batch that does not fit the queue is counted as rejected (`queue_full`). TCP waits for room
//! instead, so a full queue stops reading and the sender's TCP window closes (backpressure).
//! TLS is TCP after a handshake ([`crate::tls`]): same framing (octet counting, or LF as many
//! senders use), and the subject of a client certificate kept on each record
//! ([`RecordMeta::TlsPeer`]).

mod config;
mod framing;
mod idle;
mod kernel_drops;
pub mod splitter;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use securewatch_schemas::{RawRecord, RecordMeta};
use securewatch_schemas::{SourceKind, Tenant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::queue::IngestSender;
use crate::telemetry::SourceLabels;
use crate::tls::TlsAcceptor;

pub use config::{SyslogConfig, SyslogListenerConfig};
pub use framing::{SyslogDecoder, SyslogFrame};

/// TCP connections closed at once because `max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "securewatch_source_connections_refused_total";
/// UDP datagrams the kernel dropped because the socket's receive buffer was full.
pub const KERNEL_DROPS: &str = "securewatch_source_kernel_drops_total";
/// Idle TCP connections closed to admit a new one while `max_connections` were open.
pub const IDLE_CONNECTIONS_CLOSED: &str = "securewatch_source_idle_connections_closed_total";

/// Why the syslog source could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    /// The configuration is unusable (empty name, zero limits).
    #[error("invalid syslog configuration: {0}")]
    InvalidConfig(#[from] crate::settings::SettingError),
    /// A listen address could not be bound.
    #[error("syslog cannot listen on {protocol} {addr}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        protocol: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA file is unusable.
    #[error("syslog {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listener task ended abnormally (a bug: it panicked).
    #[error("syslog {protocol} listener failed: {detail}")]
    Listener {
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// What the task reported.
        detail: String,
    },
}

/// The bound syslog listeners, ready to [`run`](SyslogSource::run).
#[derive(Debug)]
pub struct SyslogSource {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
    max_connections: usize,
    evict_idle_after: Duration,
    context: Arc<SourceContext>,
}

/// What every listener task shares.
#[derive(Debug)]
struct SourceContext {
    source_name: Arc<str>,
    tenant: Tenant,
    labels: SourceLabels,
    queue: IngestSender,
    /// Records per batch: the configured size capped by the queue capacity, so a batch always fits.
    batch_limit: usize,
    max_message_bytes: usize,
}

impl SyslogSource {
    /// Validates the config and binds the configured sockets (none when `enabled` is false).
    pub async fn bind(
        config: SyslogConfig,
        queue: IngestSender,
    ) -> Result<SyslogSource, SyslogError> {
        config.validate().map_err(SyslogError::InvalidConfig)?;
        let (udp_listen, tcp_listen, tls_listen) = match config.enabled {
            true => (config.udp_listen, config.tcp_listen, config.tls_listen),
            false => (None, None, None),
        };
        let udp = match udp_listen {
            Some(addr) => {
                let bind_error = |source| SyslogError::Bind { protocol: "udp", addr, source };
                let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
                if config.udp_receive_buffer_bytes > 0 {
                    let socket_ref = socket2::SockRef::from(&socket);
                    socket_ref.set_recv_buffer_size(config.udp_receive_buffer_bytes).map_err(bind_error)?;
                }
                Some(socket)
            }
            None => None,
        };
        let tcp = match tcp_listen {
            Some(addr) => {
                Some(TcpListener::bind(addr).await.map_err(|source| SyslogError::Bind {
                    protocol: "tcp",
                    addr,
                    source,
                })?)
            }
            None => None,
        };
        let tls = match (tls_listen, &config.tls) {
            (Some(addr), Some(tls)) => {
                let acceptor = TlsAcceptor::new(&config.name, tls, &[])?;
                let listener = TcpListener::bind(addr).await.map_err(|source| SyslogError::Bind { protocol: "tls", addr, source })?;
                Some((listener, acceptor))
            }
            _ => None,
        };
        let batch_limit = config.batch_size.min(queue.capacity()).max(1);
        let context = SourceContext {
            source_name: Arc::from(config.name.as_str()),
            tenant: config.tenant.clone(),
            labels: SourceLabels::new(SourceKind::Syslog, config.name),
            queue,
            batch_limit,
            max_message_bytes: config.max_message_bytes,
        };
        Ok(SyslogSource {
            udp,
            tcp,
            tls,
            max_connections: config.max_connections,
            evict_idle_after: Duration::from_millis(config.evict_idle_after_ms),
            context: Arc::new(context),
        })
    }

    /// The bound UDP address (with the actual port when 0 was configured).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|socket| socket.local_addr().ok())
    }

    /// The bound TCP address (with the actual port when 0 was configured).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// The bound TLS address (with the actual port when 0 was configured).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Receives until `shutdown` is cancelled, then returns once every TCP connection has
    /// enqueued what it had read. Returns at once when no socket is bound.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SyslogError> {
        let mut listeners = JoinSet::new();
        let mut udp_task = None;
        if let Some(socket) = self.udp {
            let context = Arc::clone(&self.context);
            let shutdown = shutdown.clone();
            let task = listeners.spawn(udp::receive(socket, context, shutdown));
            udp_task = Some(task.id());
        }
        let limits = tcp::Limits { max_connections: self.max_connections, evict_idle_after: self.evict_idle_after };
        if let Some(listener) = self.tcp {
            let context = Arc::clone(&self.context);
            listeners.spawn(tcp::accept(listener, None, context, limits, shutdown.clone()));
        }
        let mut watcher = None;
        if let Some((listener, acceptor)) = self.tls {
            let context = Arc::clone(&self.context);
            watcher = Some(acceptor.watch(shutdown.clone()));
            listeners.spawn(tcp::accept(listener, Some(acceptor), context, limits, shutdown));
        }
        drop(self.context);
        while let Some(result) = listeners.join_next().await {
            if let Err(error) = result {
                let protocol = if Some(error.id()) == udp_task { "udp" } else { "tcp" };
                return Err(SyslogError::Listener { protocol, detail: error.to_string() });
            }
        }
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        Ok(())
    }
}

impl SourceContext {
    fn record(&self, peer: &str, identity: Option<&Arc<str>>, received: DateTime<Utc>, body: Vec<u8>) -> RawRecord {
        RawRecord {
            kind: SourceKind::Syslog,
            source_name: Arc::clone(&self.source_name),
            tenant: self.tenant.clone(),
            peer: Some(peer.to_string()),
            received,
            body,
            meta: identity.map_or(RecordMeta::None, |identity| RecordMeta::TlsPeer { identity: Arc::clone(identity) }),
        }
    }
}

/// Receive times that strictly increase within one socket or connection, in microsecond steps.
///
/// A syslog event id hashes the peer, the receive time in microseconds and the body; two
/// identical messages from one peer within the same microsecond (a burst of repeated lines)
/// would otherwise get the same id and collapse into one event downstream.
#[derive(Debug, Default)]
struct ReceiveClock {
    last_micros: i64,
}

impl ReceiveClock {
    fn now(&mut self) -> DateTime<Utc> {
        let micros = Utc::now().timestamp_micros().max(self.last_micros.saturating_add(1));
        self.last_micros = micros;
        DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now)
    }
}
