//! HTTP transport to the cluster: node fail-over, authentication, TLS, whole-request retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode, Url};

use super::config::{Credentials, OpenSearchConfig, RetryConfig};
use super::OpenSearchError;
use crate::telemetry;

/// An answer with its status (any status: the caller decides what it means).
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body's start as text, for error messages.
    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }
}

/// The first 512 bytes of a body as text.
pub(super) fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(512)];
    String::from_utf8_lossy(cut).trim().to_string()
}

/// A request to send: what it is (for errors), method, path relative to the node URL, body.
pub(super) struct Request<'a> {
    pub what: &'static str,
    pub method: Method,
    pub path: &'a str,
    pub body: Option<(Bytes, &'static str)>,
    /// Documents in a `_bulk` body: retries are counted per document re-sent. `None` for
    /// set-up requests, which are not counted.
    pub documents: Option<u64>,
}

/// The transport. Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Client {
    http: reqwest::Client,
    nodes: Arc<[Url]>,
    /// Index of the node that answered last; requests start there.
    current: Arc<AtomicUsize>,
    credentials: Credentials,
    pub retry: RetryConfig,
}

impl Client {
    pub fn new(config: &OpenSearchConfig, credentials: Credentials) -> Result<Client, OpenSearchError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(config.request_timeout_secs.min(10)));
        if let Some(path) = &config.tls.ca_file {
            let pem = std::fs::read(path)
                .map_err(|error| OpenSearchError::Tls(format!("cannot read ca_file {}: {error}", path.display())))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| OpenSearchError::Tls(format!("ca_file {}: {error}", path.display())))?;
            if certificates.is_empty() {
                return Err(OpenSearchError::Tls(format!("ca_file {} holds no PEM certificate", path.display())));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if config.tls.accept_invalid_certs {
            tracing::warn!("OpenSearch TLS certificates are not verified (tls.accept_invalid_certs).");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(OpenSearchError::Client)?;
        let nodes = config
            .urls
            .iter()
            .map(|url| {
                // A trailing slash makes `join` append to a path prefix instead of replacing it.
                let with_slash = if url.ends_with('/') { url.clone() } else { format!("{url}/") };
                Url::parse(&with_slash).map_err(|error| OpenSearchError::InvalidConfig(format!("url `{url}`: {error}")))
            })
            .collect::<Result<Arc<[Url]>, _>>()?;
        Ok(Client { http, nodes, current: Arc::new(AtomicUsize::new(0)), credentials, retry: config.retry.clone() })
    }

    /// Sends `request` to one node after another until one answers (connection failures and
    /// timeouts move to the next node). Returns the last transport error when none answers.
    pub async fn send_once(&self, request: &Request<'_>) -> Result<Reply, reqwest::Error> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last_error = None;
        for step in 0..self.nodes.len() {
            let node = (start + step) % self.nodes.len();
            let url = self.nodes[node].join(request.path).expect("relative paths join");
            let mut builder = self.http.request(request.method.clone(), url);
            builder = match &self.credentials {
                Credentials::None => builder,
                Credentials::Basic { user, password } => builder.basic_auth(user, Some(password)),
                Credentials::Bearer(token) => builder.bearer_auth(token),
            };
            if let Some((body, content_type)) = &request.body {
                builder = builder.header(reqwest::header::CONTENT_TYPE, *content_type).body(body.clone());
            }
            let answer = async {
                let response = builder.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>(Reply { status, body })
            };
            match answer.await {
                Ok(reply) => {
                    self.current.store(node, Ordering::Relaxed);
                    return Ok(reply);
                }
                Err(error) if error.is_connect() || error.is_timeout() => {
                    tracing::debug!(node = %self.nodes[node], %error, "OpenSearch node did not answer.");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.expect("at least one node"))
    }

    /// Sends `request`, retrying with backoff while no node answers or the answer is 429 or
    /// 5xx for the whole request. Any other answer is returned, whatever its status. Returns
    /// the reply and the number of documents re-sent.
    pub async fn send(&self, request: &Request<'_>) -> Result<(Reply, u64), OpenSearchError> {
        let mut resent = 0;
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.send_once(request).await;
            if request.documents.is_some() {
                metrics::histogram!(telemetry::OPENSEARCH_BULK_SECONDS).record(started.elapsed().as_secs_f64());
                let bytes = request.body.as_ref().map_or(0, |(body, _)| body.len());
                metrics::histogram!(telemetry::OPENSEARCH_BULK_BYTES).record(bytes as f64);
            }
            let (reason, last) = match result {
                Ok(reply) if reply.status == StatusCode::TOO_MANY_REQUESTS => ("request_429", reply_text(&reply)),
                Ok(reply) if reply.status.is_server_error() => ("request_5xx", reply_text(&reply)),
                Ok(reply) => return Ok((reply, resent)),
                Err(error) if error.is_timeout() => ("timeout", error.to_string()),
                Err(error) if error.is_connect() => ("connection", error.to_string()),
                Err(error) => ("transport", error.to_string()),
            };
            if attempt >= self.retry.max_attempts {
                return Err(OpenSearchError::Unavailable { what: request.what, attempts: attempt, last });
            }
            let wait = self.retry.backoff(attempt);
            tracing::warn!(what = request.what, attempt, reason, %last, ?wait, "OpenSearch request failed; retrying.");
            if let Some(documents) = request.documents {
                metrics::counter!(telemetry::OPENSEARCH_RETRIES, "reason" => reason).increment(documents);
                resent += documents;
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

fn reply_text(reply: &Reply) -> String {
    format!("status {}: {}", reply.status.as_u16(), reply.excerpt())
}
