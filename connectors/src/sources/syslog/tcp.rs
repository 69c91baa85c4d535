//! Syslog over TCP and TLS: RFC 6587 / RFC 5425 framing per connection, waiting for queue room (backpressure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use securewatch_schemas::RawRecord;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::idle::{Activity, IdleRegistry};
use super::{ReceiveClock, SourceContext, SyslogDecoder, SyslogFrame, CONNECTIONS_REFUSED, IDLE_CONNECTIONS_CLOSED};
use crate::log_limit::{count_suppressed, WarnLimiter, DEFAULT_INTERVAL, LOGS_SUPPRESSED};
use crate::queue::{IngestBatch, QueueError};
use crate::tls::TlsAcceptor;

/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How long a TLS client has to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection admitted by closing an idle one waits for that one's slot.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

/// How many connections a listener serves, and when an idle one makes room for a new one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// A connection silent this long is closed when a new one finds every slot taken
    /// (`Duration::ZERO`: never; the new one is refused).
    pub evict_idle_after: Duration,
}

/// Accepts connections (TLS ones when `tls` is set) until `shutdown`, then waits for every
/// connection to finish.
pub(super) async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    context: Arc<SourceContext>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut registry = IdleRegistry::new();
    let mut refusals = WarnLimiter::new(DEFAULT_INTERVAL);
    let mut accept_failures = WarnLimiter::new(DEFAULT_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(finished) = connections.join_next_with_id(), if !connections.is_empty() => match finished {
                Ok((id, ())) => registry.remove(id),
                Err(error) => {
                    registry.remove(error.id());
                    tracing::error!(source = %context.source_name, %error, "Syslog TCP connection task failed.");
                }
            },
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let slot = match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => Some(slot),
                        Err(_) if registry.close_idlest(limits.evict_idle_after) => {
                            let (source, kind) = (context.labels.name.clone(), context.labels.kind.as_str());
                            metrics::counter!(IDLE_CONNECTIONS_CLOSED, "source" => source, "kind" => kind).increment(1);
                            None
                        }
                        Err(_) => {
                            refuse(&context, stream, peer, limits.max_connections, &mut refusals);
                            continue;
                        }
                    };
                    let (activity, close) = registry.open(&shutdown);
                    let context = Arc::clone(&context);
                    let slots = Arc::clone(&slots);
                    let tls = tls.clone();
                    let task = connections.spawn({
                        let close = close.clone();
                        let activity = activity.clone();
                        async move {
                            // Admitted by closing an idle connection: its slot frees once it flushed.
                            let slot = match slot {
                                Some(slot) => slot,
                                None => match tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()).await {
                                    Ok(Ok(slot)) => slot,
                                    _ => return,
                                },
                            };
                            let Some(tls) = tls else {
                                return serve(stream, peer, None, context, close, activity, slot).await;
                            };
                            let handshake = tokio::select! {
                                _ = close.cancelled() => return,
                                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.handshake(stream)) => handshake,
                            };
                            match handshake {
                                Ok(Ok((stream, identity))) => {
                                    let identity = identity.map(Arc::from);
                                    serve(stream, peer, identity, context, close, activity, slot).await
                                }
                                Ok(Err(error)) => {
                                    tracing::debug!(source = %context.source_name, %peer, %error, "Syslog TLS handshake failed.");
                                }
                                Err(_) => tls.count_timeout(),
                            }
                        }
                    });
                    registry.register(task.id(), activity, close);
                }
                Err(error) => {
                    // Out of descriptors, accept fails for every waiting connection: one line per interval.
                    match accept_failures.admit(Instant::now()) {
                        Some(suppressed) => tracing::warn!(source = %context.source_name, %error, suppressed, "Syslog TCP accept failed (`suppressed`: failures not logged since the last line)."),
                        None => count_suppressed(&context.source_name, context.labels.kind.as_str(), "accept_failed"),
                    }
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            },
        }
    }
    // Stop accepting before waiting for the open connections to flush.
    drop(listener);
    while let Some(finished) = connections.join_next().await {
        if let Err(error) = finished {
            tracing::error!(source = %context.source_name, %error, "Syslog TCP connection task failed.");
        }
    }
}

/// Closes a connection over `max_connections` and counts it; the warning is written at most once
/// per [`DEFAULT_INTERVAL`] (a flood of connections would flood the log), the lines held back
/// counted in [`LOGS_SUPPRESSED`] and their number given in the next line.
fn refuse(context: &SourceContext, stream: TcpStream, peer: SocketAddr, max_connections: usize, refusals: &mut WarnLimiter) {
    drop(stream);
    let (source, kind) = (context.labels.name.clone(), context.labels.kind.as_str());
    metrics::counter!(CONNECTIONS_REFUSED, "source" => source.clone(), "kind" => kind).increment(1);
    match refusals.admit(Instant::now()) {
        Some(suppressed) => tracing::warn!(
            source = %context.source_name,
            %peer,
            max_connections,
            suppressed,
            "Syslog TCP connection refused: too many connections (`suppressed`: refusals not logged since the last line)."
        ),
        None => {
            metrics::counter!(LOGS_SUPPRESSED, "source" => source, "kind" => kind, "warning" => "connection_refused").increment(1);
        }
    }
}

/// Reads one connection until EOF, an error or `shutdown` (the listener's, or its own when it is
/// closed for being idle); what was read by then is framed and enqueued (an incomplete last
/// frame included) before the connection closes.
async fn serve<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    identity: Option<Arc<str>>,
    context: Arc<SourceContext>,
    shutdown: CancellationToken,
    activity: Activity,
    _slot: OwnedSemaphorePermit,
) {
    let mut connection = Connection {
        peer: peer.to_string(),
        identity,
        decoder: SyslogDecoder::new(context.max_message_bytes),
        buffer: BytesMut::with_capacity(READ_CHUNK),
        clock: ReceiveClock::default(),
        context,
    };
    loop {
        connection.buffer.reserve(READ_CHUNK);
        let read = tokio::select! {
            _ = shutdown.cancelled() => None,
            result = stream.read_buf(&mut connection.buffer) => Some(result),
        };
        let (bytes_read, at_eof) = match read {
            Some(Ok(0)) | None => (0, true),
            Some(Ok(bytes_read)) => {
                activity.touch();
                (bytes_read, false)
            }
            Some(Err(error)) => {
                tracing::debug!(source = %connection.context.source_name, peer = %connection.peer, %error, "Syslog TCP read failed.");
                (0, true)
            }
        };
        let queue_open = connection.forward(bytes_read, at_eof).await;
        if at_eof || !queue_open {
            return;
        }
    }
}

/// One connection's framing state.
struct Connection {
    peer: String,
    /// The TLS client certificate's subject.
    identity: Option<Arc<str>>,
    decoder: SyslogDecoder,
    buffer: BytesMut,
    clock: ReceiveClock,
    context: Arc<SourceContext>,
}

impl Connection {
    /// Frames what is buffered and enqueues it in batches, waiting for room; false once the
    /// queue is closed.
    async fn forward(&mut self, bytes_read: usize, at_eof: bool) -> bool {
        let context = Arc::clone(&self.context);
        let mut frames = 0u64;
        let mut records = Vec::new();
        let mut queue_open = true;
        loop {
            let frame = match at_eof {
                true => self.decoder.decode_eof(&mut self.buffer),
                false => self.decoder.decode(&mut self.buffer),
            };
            match frame {
                Ok(Some(SyslogFrame::Message(body))) => {
                    frames += 1;
                    records.push(context.record(&self.peer, self.identity.as_ref(), self.clock.now(), body));
                    if records.len() >= context.batch_limit {
                        queue_open = enqueue(&context, std::mem::take(&mut records)).await;
                        if !queue_open {
                            break;
                        }
                    }
                }
                Ok(Some(SyslogFrame::TooLarge)) => {
                    frames += 1;
                    context.labels.rejected("too_large", 1);
                }
                Ok(None) | Err(_) => break,
            }
        }
        context.labels.received(frames, bytes_read as u64);
        if queue_open {
            queue_open = enqueue(&context, records).await;
        }
        queue_open
    }
}

/// Enqueues, waiting while the queue is full; false when the queue is closed (shutting down).
async fn enqueue(context: &SourceContext, records: Vec<RawRecord>) -> bool {
    if records.is_empty() {
        return true;
    }
    let count = records.len() as u64;
    match context.queue.send(IngestBatch::new(records)).await {
        Ok(()) => {
            context.labels.accepted(count);
            true
        }
        Err(QueueError::Closed(_)) => {
            context.labels.rejected("queue_closed", count);
            false
        }
        // `batch_limit` keeps batches within the capacity, so this does not happen.
        Err(QueueError::Full(_) | QueueError::TooLarge(_)) => {
            context.labels.rejected("queue_full", count);
            true
        }
    }
}
