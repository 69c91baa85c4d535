//! Request and answer bodies as the listener sees them: a request body that must keep arriving, an answer that marks its request done when sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::registry::InFlight;
use super::CONNECTIONS_CLOSED;

/// The boxed error type of request bodies.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body ended early: the client sent it too slowly.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time ({received} bytes after {elapsed_ms} ms)")]
pub(super) struct BodyTimeout {
    received: u64,
    elapsed_ms: u128,
}

/// A request body with a deadline: `timeout` after the headers, plus one second for every
/// `bytes_per_sec` bytes received. A body that misses it ends with [`BodyTimeout`], counted.
pub(super) struct MinRateBody<B> {
    inner: B,
    started: Instant,
    timeout: Duration,
    bytes_per_sec: u64,
    received: u64,
    deadline: Pin<Box<Sleep>>,
    listener: Arc<str>,
    ended: bool,
}

impl<B> MinRateBody<B> {
    /// Wraps `inner`; the deadline starts now.
    pub(super) fn new(inner: B, timeout: Duration, bytes_per_sec: u64, listener: Arc<str>) -> MinRateBody<B> {
        let started = Instant::now();
        MinRateBody {
            inner,
            started,
            timeout,
            bytes_per_sec: bytes_per_sec.max(1),
            received: 0,
            deadline: Box::pin(tokio::time::sleep_until(started + timeout)),
            listener,
            ended: false,
        }
    }

    fn deadline(&self) -> Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / self.bytes_per_sec as f64);
        self.started + self.timeout + earned
    }
}

impl<B> Body for MinRateBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let deadline = this.deadline();
                    this.deadline.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(context).is_pending() {
                    return Poll::Pending;
                }
                this.ended = true;
                let listener = this.listener.to_string();
                metrics::counter!(CONNECTIONS_CLOSED, "listener" => listener, "reason" => "body_timeout").increment(1);
                let elapsed_ms = this.started.elapsed().as_millis();
                Poll::Ready(Some(Err(Box::new(BodyTimeout { received: this.received, elapsed_ms }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that keeps its request counted in flight until it is sent (or dropped).
pub(super) struct AnswerBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> AnswerBody<B> {
    /// Wraps `inner`, holding `in_flight` as long as it lives.
    pub(super) fn new(inner: B, in_flight: InFlight) -> AnswerBody<B> {
        AnswerBody { inner, _in_flight: in_flight }
    }
}

impl<B: Body + Unpin> Body for AnswerBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
