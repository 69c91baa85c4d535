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

/// An error and its causes on one line, `outer: cause: root cause`, as the binary prints
/// them. A cause is left out when the level above already ends with its text: many library
/// errors write their source into their own message (`cannot read: No such file or
/// directory (os error 2)`), and printing the chain as well would say it twice.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.is_empty() {
            text.push_str(&message);
        } else if !previous.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
    }
    text
}

/// Installs the global metrics recorder and returns the handle that renders `/metrics`.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])?
        // End-to-end latency crosses the bus and queues: seconds, not milliseconds.
        .set_buckets_for_metric(
            Matcher::Full(crate::dataflow::telemetry::EVENT_DURABLE_SECONDS.to_string()),
            &[0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0],
        )?
        .install_recorder()?;
    // Counters a dashboard charts are listed at zero from the start, not from their first event.
    for name in [
        securewatch_connectors::telemetry::STORE_WRITTEN,
        securewatch_connectors::telemetry::STORE_DUPLICATES,
        securewatch_connectors::telemetry::STORE_ERRORS,
        securewatch_connectors::telemetry::PARSE_FAILURES,
        crate::dataflow::telemetry::LATE_EVENTS,
        crate::dataflow::telemetry::ROLLUP_CHANGES,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("nope.toml: cannot read: {source}")]
    struct Read {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_parents_message_is_printed_once() {
        let os = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let error = anyhow::Error::new(Read { source: os() });
        let text = error_chain(&error);
        assert_eq!(text, format!("nope.toml: cannot read: {}", os()));
        let error = anyhow::Error::new(Read { source: os() }).context("HEC source");
        assert_eq!(error_chain(&error), format!("HEC source: nope.toml: cannot read: {}", os()));
        let plain = anyhow::Error::new(os()).context("reading rules");
        assert_eq!(error_chain(&plain), format!("reading rules: {}", os()));
    }
}
