//! The HEC HTTP server: routes, the request flow from body to durable answer (or to the journal
//! and an `ackId`), the indexer-acknowledgement poll, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use securewatch_schemas::parse_epoch_seconds;

use super::split::{split_events, split_raw, HecBodyErrorKind};
use securewatch_schemas::{HecDefaults, HecMeta, RawRecord, RecordMeta};
use securewatch_schemas::{SourceKind, Tenant};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::acks::{AckRegistry, ChannelKey};
use super::request::{self, Encoding, HecQuery};
use super::response::{HecReply, Refusal};
use super::{HecConfig, HecError};
use crate::http_listener::HttpListener;
use crate::tls::TlsAcceptor;
use crate::log_limit::{SharedWarnLimiter, DEFAULT_INTERVAL};
use crate::queue::{BatchOutcome, IngestBatch, IngestSender, QueueError};
use crate::telemetry::SourceLabels;

/// A bound, not yet running, HEC listener. [`HecSource::run`] serves it until shutdown.
#[derive(Debug)]
pub struct HecSource {
    listener: HttpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    state: Arc<HecState>,
}

/// How long HEC requests in flight at shutdown get to be answered (their batches made
/// durable) before their connections close; below the pipeline's 30 s source drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// What every request handler shares.
#[derive(Debug)]
struct HecState {
    labels: SourceLabels,
    source_name: Arc<str>,
    tokens: Vec<TokenEntry>,
    max_body_bytes: usize,
    max_events_per_request: usize,
    queue: IngestSender,
    /// Turns to inflate a gzip body: each may grow to `max_body_bytes`, so at most
    /// [`INFLATING_AT_ONCE`] do at once and the rest wait.
    inflating: Arc<Semaphore>,
    /// The warning of a batch the store failed, at most once per interval.
    store_failures: SharedWarnLimiter,
    /// The warning of a batch the bus refused, at most once per interval.
    bus_failures: SharedWarnLimiter,
    /// Indexer-acknowledgement ids of the tokens with `ack = true`.
    acks: Arc<AckRegistry>,
}

/// Gzip bodies inflated at once; peak memory for inflation is this many times `max_body_bytes`.
pub const INFLATING_AT_ONCE: usize = 2;

/// Counter: gzip requests that waited for a turn to inflate their body.
pub const INFLATION_WAITS: &str = "securewatch_hec_inflation_waits_total";

/// One configured token: the secret, its name and its default metadata.
struct TokenEntry {
    secret: Vec<u8>,
    name: String,
    tenant: Tenant,
    defaults: HecDefaults,
    /// Indexer acknowledgement on.
    ack: bool,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TokenEntry").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Which of the two ingest endpoints a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Event,
    Raw,
}

impl HecSource {
    /// Validates `config` and binds its listen address, so configuration and port errors
    /// surface at start-up. Accepted requests go to `queue`.
    pub async fn bind(config: HecConfig, queue: IngestSender) -> Result<HecSource, HecError> {
        config.validate()?;
        let addr = config.listen;
        let listener =
            TcpListener::bind(addr).await.map_err(|source| HecError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| HecError::Bind { addr, source })?;
        let listener = HttpListener::new(listener, &config.name, config.http_settings().limits(SHUTDOWN_GRACE));
        let tls = config.tls.as_ref().map(|tls| TlsAcceptor::new(&config.name, tls, &[b"http/1.1"])).transpose()?;
        let tokens = config
            .tokens
            .into_iter()
            .map(|token| TokenEntry {
                secret: token.token.into_bytes(),
                name: token.name,
                tenant: token.tenant,
                ack: token.ack,
                defaults: HecDefaults {
                    host: token.host,
                    source: token.source,
                    sourcetype: token.sourcetype,
                    index: token.index,
                    time: None,
                },
            })
            .collect();
        let state = HecState {
            labels: SourceLabels::new(SourceKind::Hec, config.name.as_str()),
            source_name: Arc::from(config.name.as_str()),
            tokens,
            max_body_bytes: config.max_body_bytes,
            max_events_per_request: config.max_events_per_request,
            queue,
            inflating: Arc::new(Semaphore::new(INFLATING_AT_ONCE)),
            store_failures: SharedWarnLimiter::new("batch_not_stored", DEFAULT_INTERVAL),
            bus_failures: SharedWarnLimiter::new("batch_not_published", DEFAULT_INTERVAL),
            acks: AckRegistry::new(config.acks.clone(), &config.name),
        };
        Ok(HecSource { listener, local_addr, tls, state: Arc::new(state) })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The turns to inflate gzip bodies (tests hold them to see requests wait).
    #[cfg(test)]
    pub(super) fn inflation_turns(&self) -> Arc<Semaphore> {
        Arc::clone(&self.state.inflating)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting connections, closes the idle
    /// ones and waits up to [`SHUTDOWN_GRACE`] for requests in flight to be answered (which
    /// waits for their batches to be durable).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), HecError> {
        tracing::info!(source = %self.state.source_name, listen = %self.local_addr, tls = self.tls.is_some(), "HEC source listening.");
        if self.state.tokens.iter().any(|token| token.ack) {
            tokio::spawn(sweep_idle_channels(Arc::clone(&self.state.acks), shutdown.clone()));
        }
        match self.tls {
            Some(tls) => {
                let watcher = tls.watch(shutdown.clone());
                self.listener.serve_with(tls, router(self.state), shutdown).await;
                watcher.abort();
            }
            None => self.listener.serve(router(self.state), shutdown).await,
        }
        Ok(())
    }
}

fn router(state: Arc<HecState>) -> Router {
    Router::new()
        .route("/services/collector", post(event_endpoint))
        .route("/services/collector/event", post(event_endpoint))
        .route("/services/collector/event/1.0", post(event_endpoint))
        .route("/services/collector/raw", post(raw_endpoint))
        .route("/services/collector/raw/1.0", post(raw_endpoint))
        .route("/services/collector/health", get(health))
        .route("/services/collector/health/1.0", get(health))
        .route("/services/collector/ack", post(ack))
        .fallback(|| async { HecReply::NOT_FOUND })
        .with_state(state)
}

async fn event_endpoint(
    State(state): State<Arc<HecState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> HecReply {
    state.accept(Endpoint::Event, peer, &headers, &uri, body).await
}

async fn raw_endpoint(
    State(state): State<Arc<HecState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> HecReply {
    state.accept(Endpoint::Raw, peer, &headers, &uri, body).await
}

/// Healthy unless the ingest queue is more than 90% full. No token needed, as in Splunk.
async fn health(State(state): State<Arc<HecState>>) -> HecReply {
    let depth = state.queue.depth() as u128;
    let capacity = state.queue.capacity() as u128;
    if depth * 10 > capacity * 9 {
        HecReply::QUEUES_FULL
    } else {
        HecReply::HEALTHY
    }
}

/// Removes idle ack channels now and then, until shutdown.
async fn sweep_idle_channels(acks: Arc<AckRegistry>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(acks.sweep_interval());
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                acks.remove_idle(Instant::now());
            }
            () = shutdown.cancelled() => return,
        }
    }
}

/// `{"acks":[0,1,2]}`, the body of an ack poll.
#[derive(serde::Deserialize)]
struct AckQuery {
    acks: Vec<u64>,
}

/// `{"acks":{"0":true,"1":false}}`, the answer to an ack poll.
#[derive(serde::Serialize)]
struct AckStatus {
    acks: std::collections::BTreeMap<u64, bool>,
}

/// Most ids one poll may ask about.
const MAX_IDS_PER_POLL: usize = 100_000;

/// `POST /services/collector/ack`: which of the channel's ack ids are durable. Code 14 for a
/// token without acks, 10 without a channel, 6 for a body that is not `{"acks":[ids]}`. Polls
/// carry no records, so they are not counted as records.
async fn ack(State(state): State<Arc<HecState>>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    match state.poll_acks(&headers, &uri, &body) {
        Ok(status) => Json(status).into_response(),
        Err(refusal) => refusal.reply.into_response(),
    }
}

impl HecState {
    fn secrets(&self) -> impl Iterator<Item = &[u8]> {
        self.tokens.iter().map(|token| token.secret.as_slice())
    }

    fn poll_acks(&self, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Result<AckStatus, Refusal> {
        let query = HecQuery::from_uri(uri);
        let fallback = HecQuery::default();
        let position = request::authorise(headers, query.as_ref().unwrap_or(&fallback), self.secrets())?;
        let query = query?;
        if !self.tokens.get(position).is_some_and(|token| token.ack) {
            return Err(Refusal::request(HecReply::ACK_DISABLED, "ack_disabled"));
        }
        let channel = request::channel(headers, &query)?
            .ok_or_else(|| Refusal::request(HecReply::CHANNEL_MISSING, "no_channel"))?;
        let invalid = || Refusal::request(HecReply::INVALID_DATA_FORMAT, "invalid_ack_query");
        let asked: AckQuery = serde_json::from_slice(body).map_err(|_| invalid())?;
        if asked.acks.len() > MAX_IDS_PER_POLL {
            return Err(invalid());
        }
        let answers = self.acks.query(&(position, channel), &asked.acks, Instant::now());
        Ok(AckStatus { acks: answers.into_iter().collect() })
    }

    /// Counts a refused request and gives its answer.
    fn refuse(&self, refusal: Refusal) -> HecReply {
        self.labels.received(refusal.records, refusal.bytes);
        self.labels.rejected(refusal.reason, refusal.records);
        tracing::debug!(source = %self.source_name, reason = refusal.reason, records = refusal.records, "HEC request refused.");
        refusal.reply
    }

    /// The whole flow of an ingest request; the answer comes once the batch is durable, or —
    /// on a token with acks — once it is journaled, with an `ackId` that turns `true` once the
    /// batch is durable.
    async fn accept(
        &self,
        endpoint: Endpoint,
        peer: SocketAddr,
        headers: &HeaderMap,
        uri: &Uri,
        body: Body,
    ) -> HecReply {
        let (records, bytes, ack_channel) = match self.prepare(endpoint, peer, headers, uri, body).await {
            Ok(prepared) => prepared,
            Err(refusal) => return self.refuse(refusal),
        };
        let count = records.len() as u64;
        let reservation = match ack_channel.map(|key| self.acks.reserve(key, Instant::now())) {
            None => None,
            Some(Ok(reservation)) => Some(reservation),
            Some(Err(refusal)) => {
                let reply = HecReply::SERVER_BUSY;
                return self.refuse(Refusal { reply, reason: refusal.reason(), records: count, bytes: bytes as u64 });
            }
        };
        self.labels.received(count, bytes as u64);
        let (mut batch, mut ack) = IngestBatch::with_ack(records);
        let journaled = reservation.as_ref().map(|_| batch.when_journaled());
        if let Err(error) = self.queue.try_send(batch) {
            let reason = match error {
                QueueError::Closed(_) => "shutting_down",
                QueueError::Full(_) | QueueError::TooLarge(_) => "queue_full",
            };
            self.labels.rejected(reason, count);
            tracing::debug!(source = %self.source_name, reason, records = count, "HEC request refused.");
            return HecReply::SERVER_BUSY;
        }
        self.labels.accepted(count);
        let (Some(reservation), Some(journaled)) = (reservation, journaled) else {
            return self.answer(ack.await, count);
        };
        tokio::select! {
            biased;
            outcome = &mut ack => {
                // Durable (or failed) before any journal told: no journal here (`ingest`,
                // `[journal] enabled = false`), so the answer waited for the bus or the store.
                let reply = self.answer(outcome, count);
                if reply != HecReply::SUCCESS {
                    return reply; // the reservation's room is given back
                }
                reservation.issue(true).map_or(reply, HecReply::success_with_ack)
            }
            Ok(()) = journaled => match reservation.key().cloned().zip(reservation.issue(false)) {
                Some((key, id)) => {
                    tokio::spawn(settle_when_done(Arc::clone(&self.acks), key, id, ack));
                    HecReply::success_with_ack(id)
                }
                None => HecReply::SUCCESS,
            },
        }
    }

    /// The answer for a batch's outcome. A failing store or bus fails every request: one line
    /// per interval, the rest counted.
    fn answer(&self, outcome: Result<BatchOutcome, tokio::sync::oneshot::error::RecvError>, count: u64) -> HecReply {
        let kind = self.labels.kind.as_str();
        match outcome {
            Ok(BatchOutcome::Durable) => HecReply::SUCCESS,
            Ok(BatchOutcome::Failed(error)) => {
                if let Some(suppressed) = self.store_failures.admit(&self.source_name, kind) {
                    tracing::warn!(source = %self.source_name, %error, records = count, suppressed, "HEC batch not stored; the client is told to retry (`suppressed`: lines held back since the last).");
                }
                HecReply::INTERNAL_ERROR
            }
            Ok(BatchOutcome::Unavailable(error)) => {
                if let Some(suppressed) = self.bus_failures.admit(&self.source_name, kind) {
                    tracing::warn!(source = %self.source_name, %error, records = count, suppressed, "HEC batch not accepted by the bus; the client is told to retry (`suppressed`: lines held back since the last).");
                }
                HecReply::SERVER_BUSY
            }
            // The batch was dropped unfinished (shutdown): the client should send it again.
            Err(_) => HecReply::SERVER_BUSY,
        }
    }

    /// A turn to inflate a gzip body, waiting (and counting the wait) while every turn is taken.
    async fn inflation_turn(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Ok(turn) = Arc::clone(&self.inflating).try_acquire_owned() {
            return Ok(turn);
        }
        let (source, kind) = (self.labels.name.clone(), self.labels.kind.as_str());
        metrics::counter!(INFLATION_WAITS, "source" => source, "kind" => kind).increment(1);
        Arc::clone(&self.inflating)
            .acquire_owned()
            .await
            .map_err(|_| Refusal::request(HecReply::INTERNAL_ERROR, "internal_error"))
    }

    /// Authorises the request, reads and decodes its body and cuts it into records.
    async fn prepare(
        &self,
        endpoint: Endpoint,
        peer: SocketAddr,
        headers: &HeaderMap,
        uri: &Uri,
        body: Body,
    ) -> Result<(Vec<RawRecord>, usize, Option<ChannelKey>), Refusal> {
        let query = HecQuery::from_uri(uri);
        // The token is checked first, so a stranger learns nothing about the rest.
        let fallback = HecQuery::default();
        let position =
            request::authorise(headers, query.as_ref().unwrap_or(&fallback), self.secrets())?;
        let query = query?;
        let token = self
            .tokens
            .get(position)
            .ok_or_else(|| Refusal::request(HecReply::INTERNAL_ERROR, "internal_error"))?;
        let channel = request::channel(headers, &query)?;
        let ack_channel = match (&channel, token.ack) {
            (_, false) => None,
            (Some(channel), true) => Some((position, channel.clone())),
            (None, true) => return Err(Refusal::request(HecReply::CHANNEL_MISSING, "no_channel")),
        };
        let encoding = request::content_encoding(headers)?;
        let defaults = match endpoint {
            Endpoint::Event => token.defaults.clone(),
            Endpoint::Raw => raw_defaults(&token.defaults, &query)?,
        };
        let wire = request::read_wire_body(headers, body, self.max_body_bytes).await?;
        let bytes = wire.len();
        let cutter = RecordCutter {
            endpoint,
            encoding,
            meta: Arc::new(HecMeta { token_name: token.name.clone(), channel, defaults }),
            tenant: token.tenant.clone(),
            source_name: Arc::clone(&self.source_name),
            peer: peer.to_string(),
            received: Utc::now(),
            max_body_bytes: self.max_body_bytes,
            max_events: self.max_events_per_request,
        };
        // A gzip body inflates only in its turn; the turn is held until its records are cut.
        let _turn = match encoding {
            Encoding::Gzip => Some(self.inflation_turn().await?),
            Encoding::Identity => None,
        };
        let records = tokio::task::spawn_blocking(move || cutter.cut(wire))
            .await
            .map_err(|_| Refusal::request(HecReply::INTERNAL_ERROR, "internal_error"))?
            .map_err(|refusal| refusal.with_bytes(bytes))?;
        Ok((records, bytes, ack_channel))
    }
}

/// Waits for the outcome of an acknowledged batch and records it against its id.
async fn settle_when_done(
    acks: Arc<AckRegistry>,
    key: ChannelKey,
    id: u64,
    outcome: tokio::sync::oneshot::Receiver<BatchOutcome>,
) {
    let durable = matches!(outcome.await, Ok(BatchOutcome::Durable));
    if !durable {
        tracing::debug!(ack_id = id, "An acknowledged HEC batch failed; its ackId reads false.");
    }
    acks.settle(&key, id, durable);
}

/// Raw requests: the query string's `host`, `source`, `sourcetype`, `index` override the
/// token's defaults; `time` (epoch seconds) sets the event time of every line.
fn raw_defaults(token: &HecDefaults, query: &HecQuery) -> Result<HecDefaults, Refusal> {
    let pick = |given: &Option<String>, default: &Option<String>| {
        given.clone().filter(|value| !value.is_empty()).or_else(|| default.clone())
    };
    let time = match query.time.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            parse_epoch_seconds(text)
                .ok_or_else(|| Refusal::request(HecReply::INVALID_DATA_FORMAT, "invalid_time"))?,
        ),
    };
    Ok(HecDefaults {
        host: pick(&query.host, &token.host),
        source: pick(&query.source, &token.source),
        sourcetype: pick(&query.sourcetype, &token.sourcetype),
        index: pick(&query.index, &token.index),
        time,
    })
}

/// Everything needed to turn a request body into records, moved to a blocking thread.
struct RecordCutter {
    endpoint: Endpoint,
    encoding: Encoding,
    meta: Arc<HecMeta>,
    tenant: Tenant,
    source_name: Arc<str>,
    peer: String,
    received: DateTime<Utc>,
    max_body_bytes: usize,
    max_events: usize,
}

impl RecordCutter {
    fn cut(self, wire: Vec<u8>) -> Result<Vec<RawRecord>, Refusal> {
        let body = request::decode(self.encoding, wire, self.max_body_bytes)?;
        let ranges = match self.endpoint {
            Endpoint::Event => split_events(&body).map_err(|error| Refusal {
                reply: HecReply::body_error(&error),
                reason: body_error_reason(error.kind),
                records: error.index as u64 + 1,
                bytes: 0,
            })?,
            Endpoint::Raw => split_raw(&body),
        };
        if ranges.is_empty() {
            return Err(Refusal::request(HecReply::NO_DATA, "no_data"));
        }
        if ranges.len() > self.max_events {
            let records = ranges.len() as u64;
            return Err(Refusal {
                reply: HecReply::TOO_LARGE,
                reason: "too_many_events",
                records,
                bytes: 0,
            });
        }
        let records = ranges
            .into_iter()
            .enumerate()
            .map(|(position, range)| {
                // `max_events` fits a u32 (checked by `HecConfig::validate`).
                let index = u32::try_from(position).unwrap_or(u32::MAX);
                let meta = Arc::clone(&self.meta);
                RawRecord {
                    kind: SourceKind::Hec,
                    source_name: Arc::clone(&self.source_name),
                    tenant: self.tenant.clone(),
                    peer: Some(self.peer.clone()),
                    received: self.received,
                    body: body[range].to_vec(),
                    meta: match self.endpoint {
                        Endpoint::Event => RecordMeta::HecEvent { meta, index },
                        Endpoint::Raw => RecordMeta::HecRaw { meta, index },
                    },
                }
            })
            .collect();
        Ok(records)
    }
}

/// The metrics reason for a refused body.
fn body_error_reason(kind: HecBodyErrorKind) -> &'static str {
    match kind {
        HecBodyErrorKind::NoData => "no_data",
        HecBodyErrorKind::EventMissing => "event_missing",
        HecBodyErrorKind::EventBlank => "event_blank",
        HecBodyErrorKind::InvalidFields => "invalid_fields",
        HecBodyErrorKind::TooDeep => "too_deep",
        HecBodyErrorKind::NumberOutOfRange => "number_out_of_range",
        HecBodyErrorKind::InvalidJson
        | HecBodyErrorKind::NotAnObject
        | HecBodyErrorKind::InvalidTime
        | HecBodyErrorKind::InvalidMetadata => "invalid_data",
    }
}
