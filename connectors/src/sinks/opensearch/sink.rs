//! The sink: connect (install template and policy), then write batches of events through `_bulk`.

use std::collections::VecDeque;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use securewatch_schemas::{Event, EventId};

use super::bulk::{self, Encoded, ItemResult};
use super::client::{Client, Request};
use super::config::OpenSearchConfig;
use super::{setup, OpenSearchError};
use crate::telemetry;

/// An event OpenSearch refused for good (a 4xx other than 409 and 429), with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's id.
    pub id: EventId,
    /// The index or data stream it was sent to.
    pub index: String,
    /// The item's HTTP status (400, 413 …).
    pub status: u16,
    /// `error type: reason` as OpenSearch gave it.
    pub reason: String,
}

/// What one [`OpenSearchSink::write`] did. `stored + already_stored + dead_letters.len()`
/// equals the number of events written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Documents newly created.
    pub stored: u64,
    /// Documents that existed already (409: same id stored by an earlier delivery).
    pub already_stored: u64,
    /// Documents refused for good; the caller stores or forwards them with their reason.
    pub dead_letters: Vec<DeadLetter>,
    /// Documents sent again (after 429 / 5xx items, failed or refused requests).
    pub retries: u64,
}

/// The OpenSearch sink. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct OpenSearchSink {
    client: Client,
    config: OpenSearchConfig,
}

impl OpenSearchSink {
    /// Validates `config`, resolves secrets from the process environment, and installs the
    /// index template and ISM policy (retrying while the cluster is unreachable).
    pub async fn connect(config: OpenSearchConfig) -> Result<OpenSearchSink, OpenSearchError> {
        OpenSearchSink::connect_with_env(config, |name| std::env::var(name).ok()).await
    }

    /// [`OpenSearchSink::connect`] reading `*_env` secrets through `env`.
    pub async fn connect_with_env(
        config: OpenSearchConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OpenSearchSink, OpenSearchError> {
        config.validate()?;
        let credentials = config.auth.resolve(env)?;
        let client = Client::new(&config, credentials)?;
        setup::install(&client, &config).await?;
        Ok(OpenSearchSink { client, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &OpenSearchConfig {
        &self.config
    }

    /// The index (daily mode) or data stream an event is written to.
    pub fn index_for(&self, event: &Event) -> String {
        bulk::index_for(&self.config, event)
    }

    /// One request without retries (`GET _index_template/<name>`), for health checks: `Ok` when
    /// a node answers with a status below 500, the error otherwise.
    pub async fn ping(&self) -> Result<(), OpenSearchError> {
        let path = format!("_index_template/{}", self.config.base_name());
        let request = Request { what: "ping", method: Method::GET, path: &path, body: None, documents: None };
        match self.client.send_once(&request).await {
            Ok(reply) if reply.status.as_u16() < 500 => Ok(()),
            Ok(reply) => Err(OpenSearchError::Rejected { what: "ping", status: reply.status.as_u16(), body: reply.excerpt() }),
            Err(error) => Err(OpenSearchError::Unavailable { what: "ping", attempts: 1, last: error.to_string() }),
        }
    }

    /// Indexes `events` (typically one epoch's): `Ok` once every event is stored, was stored
    /// already, or is returned as a dead letter. An `Err` means some events may not be
    /// stored: do not commit their source positions; writing them again is safe (409s).
    pub async fn write(&self, events: &[Event]) -> Result<BulkOutcome, OpenSearchError> {
        let encoded: Vec<Encoded> = events.iter().map(|event| bulk::encode(&self.config, event)).collect();
        let mut outcome = BulkOutcome::default();
        for range in bulk::batches(&encoded, self.config.max_bytes, self.config.max_docs) {
            self.write_batch(&encoded, range.collect(), &mut outcome).await?;
        }
        Ok(outcome)
    }

    /// Sends one batch until each of its documents is settled. A batch answered 413 is split
    /// in halves; a single document answered 413 is dead-lettered.
    async fn write_batch(
        &self,
        encoded: &[Encoded],
        batch: Vec<usize>,
        outcome: &mut BulkOutcome,
    ) -> Result<(), OpenSearchError> {
        let mut queue = VecDeque::from([batch]);
        while let Some(mut pending) = queue.pop_front() {
            let mut attempt = 1;
            loop {
                let request = Request {
                    what: "bulk",
                    method: Method::POST,
                    path: "_bulk",
                    body: Some((Bytes::from(bulk::body(encoded, &pending)), "application/x-ndjson")),
                    documents: Some(pending.len() as u64),
                };
                let (reply, resent) = self.client.send(&request).await?;
                outcome.retries += resent;
                if reply.status == StatusCode::PAYLOAD_TOO_LARGE {
                    if let [single] = pending[..] {
                        let reason = format!("request_too_large: {} bytes refused whole", encoded[single].lines.len());
                        self.dead_letter(&encoded[single], 413, reason, outcome);
                    } else {
                        let second = pending.split_off(pending.len() / 2);
                        tracing::info!(
                            documents = pending.len() + second.len(),
                            "OpenSearch answered 413; splitting the bulk request."
                        );
                        queue.push_front(second);
                        queue.push_front(pending);
                    }
                    break;
                }
                if !reply.status.is_success() {
                    return Err(OpenSearchError::Rejected {
                        what: "bulk",
                        status: reply.status.as_u16(),
                        body: reply.excerpt(),
                    });
                }
                let ids: Vec<EventId> = pending.iter().map(|&position| encoded[position].id).collect();
                let results = bulk::parse_response(&reply.body, &ids)?;
                let mut retry = Vec::new();
                let (mut stored, mut duplicates, mut throttled, mut last_refusal) = (0, 0, 0, None);
                for (&position, result) in pending.iter().zip(results) {
                    match result {
                        ItemResult::Stored => stored += 1,
                        ItemResult::Duplicate => duplicates += 1,
                        ItemResult::Reject { status, reason } => {
                            self.dead_letter(&encoded[position], status, reason, outcome)
                        }
                        ItemResult::Retry { status, reason } => {
                            retry.push(position);
                            throttled += u64::from(status == 429);
                            last_refusal = Some((status, reason));
                        }
                    }
                }
                outcome.stored += stored;
                outcome.already_stored += duplicates;
                metrics::counter!(telemetry::OPENSEARCH_DOCUMENTS, "outcome" => "stored").increment(stored);
                metrics::counter!(telemetry::OPENSEARCH_DOCUMENTS, "outcome" => "duplicate").increment(duplicates);
                let Some((last_status, last_reason)) = last_refusal else { break };
                if attempt >= self.client.retry.max_attempts {
                    tracing::error!(pending = retry.len(), attempt, last_status, %last_reason, "OpenSearch kept refusing documents; the write fails.");
                    return Err(OpenSearchError::NotStored {
                        pending: retry.len(),
                        attempts: attempt,
                        last_status,
                        last_reason,
                    });
                }
                metrics::counter!(telemetry::OPENSEARCH_RETRIES, "reason" => "item_429").increment(throttled);
                metrics::counter!(telemetry::OPENSEARCH_RETRIES, "reason" => "item_5xx")
                    .increment(retry.len() as u64 - throttled);
                outcome.retries += retry.len() as u64;
                let wait = self.client.retry.backoff(attempt);
                tracing::debug!(
                    documents = retry.len(),
                    attempt,
                    last_status,
                    ?wait,
                    "OpenSearch refused documents for now; retrying them."
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                pending = retry;
            }
        }
        Ok(())
    }

    fn dead_letter(&self, encoded: &Encoded, status: u16, reason: String, outcome: &mut BulkOutcome) {
        tracing::warn!(id = %encoded.id, index = %encoded.index, status, %reason, "OpenSearch refused a document; dead-lettered.");
        metrics::counter!(telemetry::OPENSEARCH_DOCUMENTS, "outcome" => "dead_letter").increment(1);
        metrics::counter!(telemetry::OPENSEARCH_DEAD_LETTERS, "error" => bulk::reason_kind(&reason).to_string())
            .increment(1);
        outcome.dead_letters.push(DeadLetter { id: encoded.id, index: encoded.index.clone(), status, reason });
    }
}
