//! Logging (`tracing`, human or JSON) and the Prometheus recorder behind `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber; `RUST_LOG` overrides the configured level.
pub fn init_logging(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Installs the global metrics recorder and returns the handle that renders `/metrics`.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])?
        // End-to-end latency crosses the bus and queues: seconds, not milliseconds.
        .set_buckets_for_metric(
            Matcher::Full(crate::runtime::telemetry::EVENT_DURABLE_SECONDS.to_string()),
            &[0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0],
        )?
        .install_recorder()?;
    // Counters a dashboard charts are listed at zero from the start, not from their first event.
    for name in [
        securewatch_connectors::telemetry::STORE_WRITTEN,
        securewatch_connectors::telemetry::STORE_DUPLICATES,
        securewatch_connectors::telemetry::STORE_ERRORS,
        securewatch_connectors::telemetry::PARSE_FAILURES,
        crate::runtime::telemetry::LATE_EVENTS,
        crate::runtime::telemetry::ROLLUP_CHANGES,
    ] {
        metrics::counter!(name).increment(0);
    }
    Ok(handle)
}

/// The rejection reasons every source's `securewatch_source_rejected_total` lists at zero from
/// the start: backpressure and oversized records, the ones a dashboard watches.
pub const REGISTERED_REJECTIONS: [&str; 2] = ["queue_full", "too_large"];

/// Registers the counters of one source at zero (see [`REGISTERED_REJECTIONS`]).
pub fn register_source(kind: securewatch_schemas::SourceKind, name: &str) {
    securewatch_connectors::telemetry::SourceLabels::new(kind, name).register(&REGISTERED_REJECTIONS);
}
