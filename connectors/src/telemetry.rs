//! Metric names and the per-source counters every connector reports through.
//!
//! Names follow `securewatch_<component>_<thing>_total`. Each source labels its counters with
//! `source` (configured name) and `kind`; rejections also carry `reason`.

use securewatch_schemas::SourceKind;

/// Records received from the wire, before validation.
pub const SOURCE_RECEIVED: &str = "securewatch_source_received_total";
/// Records accepted into the ingest queue.
pub const SOURCE_ACCEPTED: &str = "securewatch_source_accepted_total";
/// Records refused, by reason (never silently dropped).
pub const SOURCE_REJECTED: &str = "securewatch_source_rejected_total";
/// Bytes received from the wire.
pub const SOURCE_BYTES: &str = "securewatch_source_bytes_total";
/// Records in flight in the ingest queue.
pub const QUEUE_DEPTH: &str = "securewatch_queue_depth";
/// Syslog messages kept with a parse-failure mark.
pub const PARSE_FAILURES: &str = "securewatch_parse_failures_total";
/// Records sent to the dead letter, by reason.
pub const DEAD_LETTERED: &str = "securewatch_dead_letter_total";
/// Events newly written to the store.
pub const STORE_WRITTEN: &str = "securewatch_store_written_total";
/// Events the store already held (re-delivered, same deterministic id).
pub const STORE_DUPLICATES: &str = "securewatch_store_duplicates_total";
/// Failed store transactions.
pub const STORE_ERRORS: &str = "securewatch_store_errors_total";
/// Seconds per store batch commit.
pub const STORE_COMMIT_SECONDS: &str = "securewatch_store_commit_seconds";
/// Counter: events newly stored, by `sink` (`opensearch`, `postgres`, `sqlite`).
pub const SINK_ROWS_WRITTEN: &str = "securewatch_sink_rows_written_total";
/// Counter: events a sink held already (same id), by `sink`.
pub const SINK_DUPLICATES: &str = "securewatch_sink_duplicates_total";
/// Histogram: seconds of one successful write of a run of epochs, by `sink`.
pub const SINK_WRITE_SECONDS: &str = "securewatch_sink_write_seconds";
/// Counter: failed writes (each retried with backoff), by `sink`.
pub const SINK_ERRORS: &str = "securewatch_sink_errors_total";
/// OpenSearch documents by `outcome`: `stored`, `duplicate` (409, stored before), `dead_letter`.
pub const OPENSEARCH_DOCUMENTS: &str = "securewatch_opensearch_documents_total";
/// OpenSearch documents re-sent, by `reason`: `item_429`, `item_5xx` (item answers),
/// `request_429`, `request_5xx`, `connection`, `timeout`, `transport` (whole requests).
pub const OPENSEARCH_RETRIES: &str = "securewatch_opensearch_retries_total";
/// OpenSearch dead-lettered documents by `error` type (`mapper_parsing_exception` …).
pub const OPENSEARCH_DEAD_LETTERS: &str = "securewatch_opensearch_dead_letters_total";
/// Seconds per OpenSearch `_bulk` HTTP request (each attempt).
pub const OPENSEARCH_BULK_SECONDS: &str = "securewatch_opensearch_bulk_seconds";
/// Body bytes per OpenSearch `_bulk` HTTP request (each attempt).
pub const OPENSEARCH_BULK_BYTES: &str = "securewatch_opensearch_bulk_bytes";
/// Valid reloads of an enrichment reference file, by `file`.
pub const ENRICHMENT_RELOADS: &str = "securewatch_enrichment_reloads_total";
/// Rejected versions of an enrichment reference file (unreadable, invalid), by `file`.
pub const ENRICHMENT_RELOAD_ERRORS: &str = "securewatch_enrichment_reload_errors_total";
/// Entries of the last valid version of an enrichment reference file, by `file`.
pub const ENRICHMENT_ENTRIES: &str = "securewatch_enrichment_entries";

/// Bus entries confirmed by the bus, by `bus` and `stream` or `topic`.
pub const BUS_PRODUCED: &str = "securewatch_bus_produced_total";
/// Records of failed produce batches (not confirmed; the sender is told to retry), by `bus`
/// and `stream` or `topic`.
pub const BUS_PRODUCE_ERRORS: &str = "securewatch_bus_produce_errors_total";
/// Bus entries handed to the workers (undecodable and redelivered ones included), by `bus` and
/// `stream` or `topic`.
pub const BUS_CONSUMED: &str = "securewatch_bus_consumed_total";
/// Bus entries acknowledged after their output was durable (Redis `XACK`; Kafka: offsets the
/// committed group position advanced by), by `bus` and `stream` or `topic`.
pub const BUS_ACKED: &str = "securewatch_bus_acked_total";
/// Bus entries delivered again, by `bus`, `stream` and `reason` (`own_pending`: re-read after a
/// restart; `claimed`: taken over from a consumer idle past the claim time).
pub const BUS_REDELIVERED: &str = "securewatch_bus_redelivered_total";
/// Bus entries that are not records of a known layout, by `bus`, `stream` or `topic`, and
/// `reason`.
pub const BUS_UNDECODABLE: &str = "securewatch_bus_undecodable_total";
/// Pending entries trimmed from the stream before they were acknowledged (lost to the
/// workers: raise the stream's cap), by `bus` and `stream`.
pub const BUS_TRIMMED_PENDING: &str = "securewatch_bus_trimmed_pending_total";
/// Entries not yet delivered: Redis, to the consumer group, by `bus`, `stream` and `group`;
/// Kafka, to this consumer (high watermark − position), by `bus`, `topic` and `partition`.
pub const BUS_CONSUMER_LAG: &str = "securewatch_bus_consumer_lag";
/// Entries delivered to the consumer group and not yet acknowledged, by `bus`, `stream` and
/// `group`.
pub const BUS_PENDING: &str = "securewatch_bus_pending";

/// A source's identity for its metric labels.
#[derive(Clone, Debug)]
pub struct SourceLabels {
    /// The source's kind (label `kind`).
    pub kind: SourceKind,
    /// The source's configured name (label `name`).
    pub name: String,
}

impl SourceLabels {
    /// The labels of the source `name` of kind `kind`.
    pub fn new(kind: SourceKind, name: impl Into<String>) -> Self {
        SourceLabels { kind, name: name.into() }
    }

    /// Registers this source's counters at zero, so `/metrics` lists them from the start and
    /// a dashboard charts 0 instead of no data: received, bytes, accepted, and rejected for
    /// each of `reasons` (further reasons appear when they first occur).
    pub fn register(&self, reasons: &[&'static str]) {
        self.received(0, 0);
        self.accepted(0);
        for reason in reasons {
            self.rejected(reason, 0);
        }
    }

    /// Counts records received (and their bytes).
    pub fn received(&self, records: u64, bytes: u64) {
        let labels = [("source", self.name.clone()), ("kind", self.kind.as_str().to_string())];
        metrics::counter!(SOURCE_RECEIVED, &labels).increment(records);
        metrics::counter!(SOURCE_BYTES, &labels).increment(bytes);
    }

    /// Counts records accepted into the queue.
    pub fn accepted(&self, records: u64) {
        metrics::counter!(SOURCE_ACCEPTED, "source" => self.name.clone(), "kind" => self.kind.as_str())
            .increment(records);
    }

    /// Counts records refused, with the reason.
    pub fn rejected(&self, reason: &'static str, records: u64) {
        metrics::counter!(
            SOURCE_REJECTED,
            "source" => self.name.clone(),
            "kind" => self.kind.as_str(),
            "reason" => reason
        )
        .increment(records);
    }
}
