//! `securewatch run` (sources → bounded queue → dataflow workers → sinks, plus the API) and
//! `securewatch worker` (the same with the bus as the only source).
//!
//! Shutdown order on SIGINT/SIGTERM: sources stop accepting (in-flight HEC requests finish,
//! TCP connections flush what they read), the queue drains through the dataflow into the
//! store, the workers finish, the store checkpoints, the API stops last, and the process exits
//! 0. In a cluster, the workers finish once every process closed its inputs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use securewatch_connectors::bus::kafka;
use securewatch_connectors::queue::{ingest_queue, IngestSender};
use securewatch_connectors::sinks::Sinks;
use securewatch_connectors::sources::hec::token::{self, TokenOrigin};
use securewatch_connectors::sources::hec::HecSource;
use securewatch_connectors::sources::syslog::SyslogSource;
use securewatch_connectors::sources::wazuh::WazuhSource;
use securewatch_connectors::CancellationToken;
use securewatch_schemas::SourceKind;
use tokio::task::JoinSet;

use super::lifecycle::{bind_api, drain_sources, fit_connections_to_open_files, flatten, serve_api, shutdown_signal};
use crate::access::tokens;
use crate::access::{Access, AccessSettings, AuthMode};
use crate::api::health::{Phase, Readiness};
use crate::api::{self, ApiState};
use crate::config::Config;
use crate::intake::{consume, journal, BusKind};
use crate::rules::RulesReloader;
use crate::runtime::{restore_feeds, Dataflow};
use crate::telemetry;

/// Which parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `securewatch run`: sources, dataflow, sinks and API in one process, no bus.
    All,
    /// `securewatch ingest`: sources publishing to the bus.
    Ingest,
    /// `securewatch worker`: the bus into the dataflow, sinks and API.
    Worker,
}

/// Runs until SIGINT/SIGTERM (or a source fails), then drains and returns.
///
/// Every listener (API, HEC, syslog) is bound before anything starts: a taken port fails the
/// start before a token is generated, the data directory is created or the dataflow runs.
pub async fn run(mut config: Config, role: Role) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    if role != Role::All && config.bus.kind == BusKind::None {
        anyhow::bail!("[bus] kind must be \"kafka\" or \"redis\" for `securewatch ingest` and `securewatch worker`");
    }
    fit_connections_to_open_files(&mut config, role != Role::Worker);
    let api_listener = bind_api(config.api.listen).await?;
    let (queue, receiver) = ingest_queue(config.queue.capacity);
    let bound = match role {
        Role::Worker => BoundSources::default(),
        Role::All | Role::Ingest => bind_sources(&mut config, &data_dir, &queue).await?,
    };
    super::lifecycle::private_data_dir(&data_dir)?;
    let metrics = telemetry::init_metrics()?;
    let shutdown = CancellationToken::new();
    let mut sources: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
    bound.start(&config, &data_dir, &queue, &shutdown, &mut sources, &mut listeners)?;
    keep_admin_token(&config, &data_dir)?;
    if role == Role::Ingest {
        let monitor = queue.monitor();
        drop(queue);
        let access = Access::start(access_settings(&config), &data_dir, None).await?;
        return super::ingest::run(config, receiver, monitor, metrics, sources, api_listener, listeners, shutdown, access)
            .await;
    }

    let opensearch = Some(&config.sinks.opensearch).filter(|opensearch| opensearch.enabled);
    let sinks = Sinks::open(&data_dir, &config.store, config.sinks.postgres_in_force(), opensearch).await?;
    let reader = sinks.reader();
    if let Some(retention) = config.store.retention() {
        sinks.start_retention(retention);
        tracing::info!(retention_secs = retention.as_secs(), "The embedded store keeps this much history.");
    }
    let access = Access::start(access_settings(&config), &data_dir, Some(sinks.audit_log())).await?;
    let monitor = queue.monitor();
    if role == Role::Worker {
        start_intake(&config, sinks.clone(), queue.clone(), &shutdown, &mut sources).await?;
    }
    drop(queue); // the sources hold the only senders: the queue closes when they stop
    let (reloader, rules) = match config.detection.rules_dir_in_force() {
        Some(_) => {
            let (reloader, rules) = RulesReloader::start(&config.detection)?;
            (Some(reloader), Some(rules))
        }
        None => (None, None),
    };
    // `run`: accepted batches go through the journal (the embedded bus) into the dataflow.
    let receiver = if role == Role::All && config.journal.enabled {
        journal::start(&config.journal, &data_dir, receiver, &sinks).await.context("[journal]")?
    } else {
        receiver
    };
    // The API answers from here on: liveness at once, readiness once the state is restored.
    let readiness = Readiness::starting();
    let state = ApiState {
        reader: reader.clone(),
        queue: monitor,
        metrics,
        started: Instant::now(),
        listeners: Arc::new(Vec::new()),
        ip_fields: config.enrichment.ip_fields.iter().cloned().collect(),
        max_answer_bytes: api::events::MAX_ANSWER_BYTES,
        rules: reloader.clone(),
        access,
        data_dir: Arc::new(data_dir.clone()),
        max_body_bytes: config.api.max_body_bytes,
        readiness: readiness.clone(),
        jobs: crate::jobs::Jobs::start(&data_dir, config.jobs.limits())
            .context("the jobs folder of the data directory")?,
        backtest: Arc::new(crate::jobs::backtest::BacktestSettings {
            detection: config.detection.clone(),
            correlation: config.dataflow.time_model().context("[dataflow]")?.into(),
        }),
    };
    let api = serve_api(api_listener, config.api.http_settings(), config.api.tls.as_ref(), &mut listeners, |listeners| {
        api::router(ApiState { listeners: Arc::new(listeners), ..state })
    })
    .await?;
    let (restore, _) = restore_feeds(
        &reader,
        config.dataflow.lateness_secs.saturating_mul(1000),
        rules.as_ref().map(|rules| rules.current()),
        config.detection.backfill_max_events,
    )
    .await
    .context("restoring open buckets and windows from the store")?;
    let dataflow =
        Dataflow::start(&config.dataflow, &config.enrichment, rules, receiver, sinks.clone(), restore, shutdown.clone())
            .await?;
    if let Some(reloader) = &reloader {
        reloader.attach_backfill(reader, dataflow.control());
        tokio::spawn(Arc::clone(reloader).watch(shutdown.clone()));
    }
    readiness.set(Phase::Ready);
    tracing::info!(data_dir = %data_dir.display(), ?role, "SecureWatch is running; Ctrl-C stops it.");

    let mut failure = None;
    tokio::select! {
        signal = shutdown_signal() => tracing::info!(signal, "Shutting down: draining sources."),
        Some(result) = sources.join_next() => {
            failure = Some(flatten(result).err().unwrap_or_else(|| anyhow::anyhow!("a source stopped")));
        }
        () = dataflow.stopped() => {
            failure = Some(anyhow::anyhow!("the dataflow workers stopped unexpectedly"));
        }
    }
    readiness.set(Phase::Stopping);
    shutdown.cancel();
    drain_sources(&mut sources).await;
    dataflow.finish().await?;
    sinks.close().await;
    api.stop().await?;
    tracing::info!("Stopped; everything accepted is stored.");
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// What [`Access::start`] takes from the configuration.
fn access_settings(config: &Config) -> AccessSettings<'_> {
    AccessSettings {
        auth: &config.api.auth,
        listen: config.api.listen,
        allowed_hosts: &config.api.allowed_hosts,
        cors_origins: &config.api.cors_origins,
        max_header_bytes: config.api.max_header_bytes,
    }
}

/// On a first start with access control on and no credential configured: generates the admin
/// API token, keeps it in the data directory (mode 0600) and prints it once.
fn keep_admin_token(config: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let auth = &config.api.auth;
    if auth.mode != AuthMode::On || !auth.tokens.is_empty() || auth.jwt.is_some() {
        return Ok(());
    }
    if let Some(token) = tokens::ensure_admin_token(data_dir)? {
        let kept = data_dir.join(tokens::ADMIN_TOKEN_FILE);
        println!("API admin token (generated once, kept in {}): {token}", kept.display());
    }
    Ok(())
}

/// The sources of `run` / `ingest`, bound to their addresses but not yet started.
#[derive(Default)]
struct BoundSources {
    hec: Option<HecSource>,
    /// Set when the HEC token was generated now: kept and printed once everything is bound.
    generated_token: Option<String>,
    /// Each pair of syslog listeners (`[sources.syslog]` and its `listeners`) with its name.
    syslog: Vec<(String, SyslogSource)>,
}

/// Binds HEC and syslog as configured (resolving the HEC token first, since the source needs
/// it), without starting them or writing anything.
async fn bind_sources(config: &mut Config, data_dir: &Path, queue: &IngestSender) -> anyhow::Result<BoundSources> {
    let mut bound = BoundSources::default();
    if config.sources.hec.enabled {
        let from_environment = std::env::var(token::HEC_TOKEN_ENV).ok();
        let (origin, value) = token::ensure_hec_token(&mut config.sources.hec.tokens, from_environment, data_dir);
        let kept = data_dir.join(token::TOKEN_FILE);
        match origin {
            TokenOrigin::Generated => bound.generated_token = Some(value),
            TokenOrigin::Stored => tracing::info!(file = %kept.display(), "Using the HEC token kept in the data directory."),
            TokenOrigin::Environment => tracing::info!("Using the HEC token from {}.", token::HEC_TOKEN_ENV),
            TokenOrigin::Config => {
                tracing::info!(tokens = config.sources.hec.tokens.len(), "Using the configured HEC tokens.")
            }
        }
        for configured in config.sources.hec.tokens.iter().filter(|configured| configured.token.trim().chars().count() < 32) {
            tracing::warn!(
                token = %configured.name,
                "HEC token shorter than 32 characters: easy to guess; use a longer one (the generated ones have 36)."
            );
        }
        bound.hec = Some(HecSource::bind(config.sources.hec.clone(), queue.clone()).await.context("HEC source")?);
    }
    if config.sources.syslog.enabled {
        for instance in config.sources.syslog.instances() {
            let name = instance.name.clone();
            let syslog = SyslogSource::bind(instance, queue.clone())
                .await
                .with_context(|| format!("syslog source {name}"))?;
            bound.syslog.push((name, syslog));
        }
    }
    Ok(bound)
}

impl BoundSources {
    /// Keeps and prints a generated HEC token, then starts HEC, syslog and the Wazuh tailer,
    /// feeding `queue`.
    fn start(
        self,
        config: &Config,
        data_dir: &Path,
        queue: &IngestSender,
        shutdown: &CancellationToken,
        sources: &mut JoinSet<anyhow::Result<()>>,
        listeners: &mut Vec<(String, SocketAddr)>,
    ) -> anyhow::Result<()> {
        if let Some(value) = &self.generated_token {
            token::keep_generated(data_dir, value)?;
            let kept = data_dir.join(token::TOKEN_FILE);
            println!("HEC token (generated once, kept in {}): {value}", kept.display());
        }
        if let Some(hec) = self.hec {
            telemetry::register_source(SourceKind::Hec, &config.sources.hec.name);
            listeners.push(("hec".into(), hec.local_addr()));
            let stop = shutdown.clone();
            sources.spawn(async move { hec.run(stop).await.context("HEC source") });
        }
        for (name, syslog) in self.syslog {
            telemetry::register_source(SourceKind::Syslog, &name);
            // The main listeners keep their names; the others' add their source name.
            let suffix = if name == config.sources.syslog.name { String::new() } else { format!(".{name}") };
            listeners.extend(syslog.udp_addr().map(|address| (format!("syslog_udp{suffix}"), address)));
            listeners.extend(syslog.tcp_addr().map(|address| (format!("syslog_tcp{suffix}"), address)));
            listeners.extend(syslog.tls_addr().map(|address| (format!("syslog_tls{suffix}"), address)));
            let stop = shutdown.clone();
            sources.spawn(async move { syslog.run(stop).await.with_context(|| format!("syslog source {name}")) });
        }
        if config.sources.wazuh.enabled {
            telemetry::register_source(SourceKind::Wazuh, &config.sources.wazuh.name);
            let wazuh =
                WazuhSource::new(config.sources.wazuh.clone(), data_dir, queue.clone()).context("Wazuh source")?;
            let stop = shutdown.clone();
            sources.spawn(async move { wazuh.run(stop).await.context("Wazuh source") });
        }
        Ok(())
    }
}

/// A worker's intake: the bus consumer of `[bus]`, reading this process's share of the bus.
async fn start_intake(
    config: &Config,
    sinks: Sinks,
    queue: IngestSender,
    shutdown: &CancellationToken,
    sources: &mut JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let bus = config.bus.clone();
    let stop = shutdown.clone();
    match bus.kind {
        BusKind::Kafka => {
            kafka::ensure_topic(&bus.kafka).await.context("[bus.kafka]")?;
            let count = kafka::partition_count(&bus.kafka).await.context("[bus.kafka]")?;
            let processes = config.dataflow.peers.len().max(1);
            let partitions = kafka::partitions_for_worker(count, processes, config.dataflow.process);
            tracing::info!(topic = %bus.kafka.topic, ?partitions, of = count, "Kafka partitions of this worker.");
            sources.spawn(async move { consume::kafka(&bus, partitions, sinks, queue, stop).await.context("Kafka intake") });
        }
        BusKind::Redis => {
            sources.spawn(async move { consume::redis(&bus, sinks, queue, stop).await.context("Redis intake") });
        }
        BusKind::None => unreachable!("checked at start"),
    }
    Ok(())
}
