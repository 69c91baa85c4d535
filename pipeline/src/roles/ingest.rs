//! `securewatch ingest`: the sources publish to the bus; a small API serves health and metrics.
//!
//! Shutdown on SIGINT/SIGTERM: sources stop accepting and flush, the publisher settles every
//! batch it holds (confirmed by the bus, or its sender told), then the API stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use securewatch_connectors::bus::kafka::{self, KafkaProducer};
use securewatch_connectors::bus::redis::RedisProducer;
use securewatch_connectors::queue::{IngestReceiver, QueueMonitor};
use securewatch_connectors::CancellationToken;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::lifecycle::{drain_sources, flatten, serve_api, shutdown_signal};
use super::publish;
use crate::access::Access;
use crate::api::health::{Phase, Readiness};
use crate::config::Config;
use crate::intake::BusKind;

/// What the ingest API shows.
#[derive(Clone)]
struct IngestState {
    queue: QueueMonitor,
    metrics: PrometheusHandle,
    started: Instant,
    bus: &'static str,
    listeners: Arc<Vec<(String, SocketAddr)>>,
    /// Ready once the bus is connected, stopping from the shutdown signal on.
    readiness: Readiness,
}

/// Runs the ingest role until SIGINT/SIGTERM or a source failure.
#[allow(clippy::too_many_arguments)] // the parts `run::run` bound and started, handed over
pub async fn run(
    config: Config,
    receiver: IngestReceiver,
    queue: QueueMonitor,
    metrics: PrometheusHandle,
    mut sources: JoinSet<anyhow::Result<()>>,
    api_listener: tokio::net::TcpListener,
    mut listeners: Vec<(String, SocketAddr)>,
    shutdown: CancellationToken,
    access: Arc<Access>,
) -> anyhow::Result<()> {
    let bus = &config.bus;
    let in_flight = bus.publishers;
    let (publisher, bus_name) = match bus.kind {
        BusKind::Kafka => {
            kafka::ensure_topic(&bus.kafka).await.context("[bus.kafka]")?;
            let producer = Arc::new(KafkaProducer::new(&bus.kafka).context("[bus.kafka]")?);
            tracing::info!(brokers = %bus.kafka.brokers, topic = %bus.kafka.topic, "Publishing to Kafka.");
            (tokio::spawn(publish::run(producer, receiver, in_flight)), "kafka")
        }
        BusKind::Redis => {
            let producer = Arc::new(RedisProducer::connect(&bus.redis).await.context("[bus.redis]")?);
            tracing::info!(stream = %bus.redis.stream, "Publishing to Redis Streams.");
            (tokio::spawn(publish::run(producer, receiver, in_flight)), "redis")
        }
        BusKind::None => unreachable!("checked by the caller"),
    };
    let started = Instant::now();
    let readiness = Readiness::ready();
    let api = serve_api(api_listener, config.api.http_settings(), config.api.tls.as_ref(), &mut listeners, |listeners| {
        let listeners = Arc::new(listeners);
        let state = IngestState { queue, metrics, started, bus: bus_name, listeners, readiness: readiness.clone() };
        let routes = Router::new()
            .route("/api/v1/health/live", get(crate::api::health::live))
            .route("/api/v1/health/ready", get(|State(state): State<IngestState>| async move { state.readiness.status() }))
            .route("/api/v1/health", get(health))
            .route("/metrics", get(|State(state): State<IngestState>| async move { state.metrics.render() }))
            .with_state(state);
        crate::api::protect(routes, &access, config.api.max_body_bytes)
    })
    .await?;
    tracing::info!("SecureWatch ingest is running; Ctrl-C stops it.");
    let mut failure = None;
    tokio::select! {
        signal = shutdown_signal() => tracing::info!(signal, "Shutting down: draining sources."),
        Some(result) = sources.join_next() => {
            failure = Some(flatten(result).err().unwrap_or_else(|| anyhow::anyhow!("a source stopped")));
        }
    }
    readiness.set(Phase::Stopping);
    shutdown.cancel();
    drain_sources(&mut sources).await;
    publisher.await.context("publisher task")?;
    api.stop().await?;
    tracing::info!("Stopped; everything acknowledged is on the bus.");
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// `GET /api/v1/health` of the ingest role: the queue, the bus and the listeners.
async fn health(State(state): State<IngestState>) -> Json<Value> {
    let listeners: serde_json::Map<String, Value> = state
        .listeners
        .iter()
        .map(|(name, address)| (name.clone(), Value::String(address.to_string())))
        .collect();
    let phase = state.readiness.phase();
    Json(json!({
        "status": if phase == Phase::Stopping { "degraded" } else { "ok" },
        "phase": phase.as_str(),
        "role": "ingest",
        "bus": state.bus,
        "queue": {"depth": state.queue.depth(), "capacity": state.queue.capacity()},
        "uptime_seconds": state.started.elapsed().as_secs(),
        "listeners": listeners,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
