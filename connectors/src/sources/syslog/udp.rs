//! Syslog over UDP: one datagram is one message; the socket is never blocked by the queue.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use securewatch_schemas::RawRecord;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::kernel_drops::KernelDrops;
use super::{ReceiveClock, SourceContext, KERNEL_DROPS};
use crate::log_limit::{SharedWarnLimiter, DEFAULT_INTERVAL};
use crate::queue::{IngestBatch, QueueError};

/// The largest UDP payload over IPv4/IPv6 without jumbograms is 65,507 bytes, so a buffer of
/// this size never truncates a datagram.
const LARGEST_DATAGRAM: usize = 65_536;

/// How often the kernel's drop count of the socket is read.
const DROP_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Trailing bytes some senders add to a datagram.
const TRAILER: [u8; 3] = [b'\n', b'\r', b'\0'];

/// Receives datagrams until `shutdown`; each wake-up takes every datagram already waiting (up
/// to a batch) and offers them to the queue without waiting.
pub(super) async fn receive(
    socket: UdpSocket,
    context: Arc<SourceContext>,
    shutdown: CancellationToken,
) {
    // One byte more than the limit, so an oversized datagram shows as longer than the limit.
    let mut buffer = vec![0u8; context.max_message_bytes.min(LARGEST_DATAGRAM - 1) + 1];
    let mut clock = ReceiveClock::default();
    let mut kernel_drops = KernelDrops::of(&socket);
    let (source, kind) = (context.labels.name.clone(), context.labels.kind.as_str());
    let dropped = metrics::counter!(KERNEL_DROPS, "source" => source, "kind" => kind);
    dropped.increment(0);
    let mut drop_check = tokio::time::interval(DROP_CHECK_INTERVAL);
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = drop_check.tick() => {
                dropped.increment(kernel_drops.new_drops());
                continue;
            }
            result = socket.recv_from(&mut buffer) => result,
        };
        let mut batch = DatagramBatch::default();
        match first {
            Ok((length, peer)) => batch.add(&context, &mut clock, &buffer[..length], peer),
            Err(error) => {
                receive_failed(&context, &error);
                continue;
            }
        }
        while batch.records.len() < context.batch_limit {
            match socket.try_recv_from(&mut buffer) {
                Ok((length, peer)) => batch.add(&context, &mut clock, &buffer[..length], peer),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => {
                    receive_failed(&context, &error);
                    break;
                }
            }
        }
        batch.offer(&context);
    }
}

/// Datagrams read in one wake-up.
#[derive(Default)]
struct DatagramBatch {
    records: Vec<RawRecord>,
    datagrams: u64,
    bytes: u64,
}

impl DatagramBatch {
    fn add(
        &mut self,
        context: &SourceContext,
        clock: &mut ReceiveClock,
        datagram: &[u8],
        peer: SocketAddr,
    ) {
        self.datagrams += 1;
        self.bytes += datagram.len() as u64;
        if datagram.len() > context.max_message_bytes {
            context.labels.rejected("too_large", 1);
            return;
        }
        let kept =
            datagram.iter().rposition(|byte| !TRAILER.contains(byte)).map_or(0, |last| last + 1);
        if kept == 0 {
            context.labels.rejected("empty", 1);
            return;
        }
        let record = context.record(&peer.to_string(), None, clock.now(), datagram[..kept].to_vec());
        self.records.push(record);
    }

    /// Counts what was received and enqueues without waiting; a full queue loses the batch,
    /// counted as `queue_full` (UDP has no way to push back on the sender).
    fn offer(self, context: &SourceContext) {
        context.labels.received(self.datagrams, self.bytes);
        if self.records.is_empty() {
            return;
        }
        let count = self.records.len() as u64;
        match context.queue.try_send(IngestBatch::new(self.records)) {
            Ok(()) => context.labels.accepted(count),
            Err(QueueError::Full(_) | QueueError::TooLarge(_)) => {
                tracing::debug!(source = %context.source_name, count, "Ingest queue full: syslog UDP batch dropped.");
                context.labels.rejected("queue_full", count);
            }
            Err(QueueError::Closed(_)) => context.labels.rejected("queue_closed", count),
        }
    }
}

/// Receive failures repeat as fast as datagrams come: one line per interval, the rest counted.
static RECEIVE_FAILURES: SharedWarnLimiter = SharedWarnLimiter::new("receive_failed", DEFAULT_INTERVAL);

fn receive_failed(context: &SourceContext, error: &std::io::Error) {
    if let Some(suppressed) = RECEIVE_FAILURES.admit(&context.source_name, context.labels.kind.as_str()) {
        tracing::warn!(source = %context.source_name, %error, suppressed, "Syslog UDP receive failed (`suppressed`: failures not logged since the last line).");
    }
}
