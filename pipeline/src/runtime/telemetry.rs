//! Metric names of the dataflow wiring (feeder and writer).

/// Gauge: feed messages waiting in the worker inboxes.
pub const INBOX_DEPTH: &str = "securewatch_dataflow_inbox_depth";
/// Gauge: the open ingest epoch (ms since the Unix epoch).
pub const OPEN_EPOCH: &str = "securewatch_dataflow_open_epoch_ms";
/// Gauge: seconds between now and the epoch below which everything is durable.
pub const EPOCH_LAG: &str = "securewatch_dataflow_epoch_lag_seconds";
/// Gauge: outputs buffered in the writer, waiting for their epoch to complete.
pub const WRITER_BUFFERED: &str = "securewatch_dataflow_writer_buffered";
/// Counter: events that arrived after their rollup bucket closed (stored, not rolled up).
pub const LATE_EVENTS: &str = "securewatch_rollup_late_events_total";
/// Counter: rollup rows upserted or deleted.
pub const ROLLUP_CHANGES: &str = "securewatch_rollup_changes_total";
/// Histogram: seconds from the end of an epoch until its outputs were durable.
pub const EPOCH_DURABLE_SECONDS: &str = "securewatch_dataflow_epoch_durable_seconds";
/// Histogram: seconds from an event's receipt by a source (HEC, syslog, Wazuh; in a fleet, at
/// the ingest process) until it was durable in every sink: the end-to-end latency.
pub const EVENT_DURABLE_SECONDS: &str = "securewatch_event_durable_seconds";
/// Counter: alert changes stored, by kind (`rule` or the correlation type), level and change
/// (`raised`, `retracted`).
pub const ALERTS: &str = "securewatch_alerts_total";
