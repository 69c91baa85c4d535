//! The fan-out of the write side: one completed run of epochs to OpenSearch, PostgreSQL, then SQLite.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use securewatch_schemas::{Event, EventId};

use super::audit::AuditLog;
use super::opensearch::{self, OpenSearchConfig, OpenSearchError, OpenSearchSink};
use super::postgres::{PostgresConfig, PostgresError, PostgresSink};
use super::progress::SourceProgress;
use super::read::StoreReader;
use super::sqlite::{SqliteConfig, SqliteStore, StoreError};
use super::write::{DeadLetter, EpochWrite};
use crate::telemetry;

/// Dead-letter reason of events OpenSearch refused for good (a 4xx other than 409 / 429).
pub const OPENSEARCH_REJECTED: &str = "opensearch_rejected";

/// Which sink failed, and why.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// OpenSearch did not store every event.
    #[error("OpenSearch sink: {0}")]
    OpenSearch(#[from] OpenSearchError),
    /// The PostgreSQL transaction failed (nothing of it is stored).
    #[error("PostgreSQL sink: {0}")]
    Postgres(#[from] PostgresError),
    /// The SQLite transaction failed (nothing of it is stored).
    #[error("SQLite store: {0}")]
    Sqlite(#[from] StoreError),
}

/// The sinks of a run: the optional external ones and the embedded store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sinks {
    sqlite: SqliteStore,
    postgres: Option<Arc<PostgresSink>>,
    opensearch: Option<OpenSearchSink>,
    /// The read side over the same stores; one for all callers, so they share its turns.
    reader: StoreReader,
}

/// Which external sinks stored one batch already. Kept across the retries of that batch, so a
/// retry after a partial success writes only to the sinks that have not stored it: PostgreSQL's
/// late counts (which are added) are never added twice by a retry.
#[derive(Debug, Default)]
pub struct Stored {
    opensearch: bool,
    postgres: bool,
}

impl Sinks {
    /// Opens the embedded store in `data_dir` and connects the external sinks that are given
    /// (`None`: not configured).
    pub async fn open(
        data_dir: &Path,
        sqlite: &SqliteConfig,
        postgres: Option<&PostgresConfig>,
        opensearch: Option<&OpenSearchConfig>,
    ) -> Result<Sinks, SinkError> {
        let sqlite = SqliteStore::open(data_dir, sqlite).await?;
        let postgres = match postgres {
            Some(config) => Some(Arc::new(PostgresSink::connect(config).await?)),
            None => None,
        };
        let opensearch = match opensearch {
            Some(config) => {
                let sink = OpenSearchSink::connect(config.clone()).await?;
                tracing::info!(urls = ?config.urls, "OpenSearch sink ready.");
                Some(sink)
            }
            None => None,
        };
        Ok(Sinks::new(sqlite, postgres, opensearch))
    }

    /// The sinks to write to; SQLite always, the others when configured.
    pub fn new(sqlite: SqliteStore, postgres: Option<Arc<PostgresSink>>, opensearch: Option<OpenSearchSink>) -> Sinks {
        let reader = StoreReader::new(sqlite.clone(), postgres.clone(), opensearch.clone());
        Sinks { sqlite, postgres, opensearch, reader }
    }

    /// Keeps the embedded store within `retention` from now on (see `SqliteStore::start_retention`).
    pub fn start_retention(&self, retention: std::time::Duration) {
        self.sqlite.start_retention(retention);
    }

    /// The read side over the same stores (clones share one set of read turns).
    pub fn reader(&self) -> StoreReader {
        self.reader.clone()
    }

    /// The audit log over the same stores.
    pub fn audit_log(&self) -> AuditLog {
        AuditLog::new(self.sqlite.clone(), self.postgres.clone())
    }

    /// Closes the connection pools (the embedded store checkpoints its WAL).
    pub async fn close(&self) {
        self.sqlite.close().await;
        if let Some(postgres) = &self.postgres {
            postgres.close().await;
        }
    }

    /// The source positions stored with the outputs, from the embedded store: it is written
    /// last, so its positions are never ahead of any other sink's.
    pub async fn progress(&self, source: &str) -> Result<Vec<SourceProgress>, SinkError> {
        Ok(self.sqlite.progress(source).await?)
    }

    /// Writes `batch` to every sink that has not stored it yet (`stored`): OpenSearch first,
    /// whose dead letters join `batch`'s as `opensearch_rejected` rows, then PostgreSQL, then
    /// SQLite. `Ok` once every sink stored it; on `Err` call again with the same `batch` and
    /// `stored` (every sink's write is idempotent, and the ones done are skipped).
    ///
    /// On success, the ids of the events the embedded store held already (delivered twice).
    pub async fn write(&self, batch: &mut EpochWrite, stored: &mut Stored) -> Result<Vec<EventId>, SinkError> {
        if let Some(sink) = self.opensearch.as_ref().filter(|_| !stored.opensearch) {
            let started = Instant::now();
            let outcome = sink.write(&batch.events).await.inspect_err(|_| failed("opensearch"))?;
            record("opensearch", started, outcome.stored, outcome.already_stored);
            batch.dead_letters.extend(dead_letters(&batch.events, &outcome.dead_letters));
            stored.opensearch = true;
        }
        if let Some(sink) = self.postgres.as_ref().filter(|_| !stored.postgres) {
            let started = Instant::now();
            let summary = sink.write_epochs_with_progress(batch, &batch.progress).await.inspect_err(|_| failed("postgres"))?;
            record("postgres", started, summary.written, summary.duplicates);
            stored.postgres = true;
        }
        let started = Instant::now();
        let (summary, duplicates) = self.sqlite.write_epochs_finding_duplicates(batch).await.inspect_err(|_| {
            failed("sqlite");
            metrics::counter!(telemetry::STORE_ERRORS).increment(1);
        })?;
        record("sqlite", started, summary.written, summary.duplicates);
        Ok(duplicates)
    }
}

fn record(sink: &'static str, started: Instant, written: u64, duplicates: u64) {
    metrics::histogram!(telemetry::SINK_WRITE_SECONDS, "sink" => sink).record(started.elapsed().as_secs_f64());
    metrics::counter!(telemetry::SINK_ROWS_WRITTEN, "sink" => sink).increment(written);
    metrics::counter!(telemetry::SINK_DUPLICATES, "sink" => sink).increment(duplicates);
}

fn failed(sink: &'static str) {
    metrics::counter!(telemetry::SINK_ERRORS, "sink" => sink).increment(1);
}

/// OpenSearch's refusals as dead-letter rows: the event as JSON, the status and reason as detail.
fn dead_letters(events: &[Event], refused: &[opensearch::DeadLetter]) -> Vec<DeadLetter> {
    if refused.is_empty() {
        return Vec::new();
    }
    let by_id: HashMap<EventId, &Event> = events.iter().map(|event| (event.id, event)).collect();
    refused
        .iter()
        .filter_map(|letter| {
            let Some(event) = by_id.get(&letter.id) else {
                tracing::error!(id = %letter.id, "OpenSearch refused an event that was not in the write.");
                return None;
            };
            metrics::counter!(telemetry::DEAD_LETTERED, "reason" => OPENSEARCH_REJECTED).increment(1);
            let detail = format!("index {}: status {}: {}", letter.index, letter.status, letter.reason);
            Some(DeadLetter::for_event(event, OPENSEARCH_REJECTED, detail))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use securewatch_schemas::{Severity, Source, SourceKind};

    use super::*;

    fn event(seed: u8) -> Event {
        Event {
            tenant: Default::default(),
            id: EventId::from_bytes([seed; 16]),
            time: Utc.timestamp_opt(1_767_268_800, 0).unwrap(),
            received: Utc.timestamp_opt(1_767_268_801, 0).unwrap(),
            source: Source { kind: SourceKind::Hec, name: "hec".into(), peer: Some("127.0.0.1:1".into()) },
            host: Some("web-1".into()),
            severity: Severity::from_code(6),
            category: None,
            message: format!("event {seed}"),
            fields: Default::default(),
            raw: None,
        }
    }

    #[test]
    fn refused_events_become_dead_letters_with_status_and_reason() {
        let events = [event(1), event(2)];
        let refused = [opensearch::DeadLetter {
            id: events[1].id,
            index: "securewatch-2026.01.01".into(),
            status: 400,
            reason: "mapper_parsing_exception: failed to parse field [time]".into(),
        }];
        let letters = dead_letters(&events, &refused);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].reason, OPENSEARCH_REJECTED);
        assert_eq!(
            letters[0].detail,
            "index securewatch-2026.01.01: status 400: mapper_parsing_exception: failed to parse field [time]"
        );
        let body: Event = serde_json::from_slice(&letters[0].record.body).unwrap();
        assert_eq!(body, events[1]);
        assert_eq!(letters[0].record.source_name.as_ref(), "hec");
        assert!(dead_letters(&events, &[]).is_empty());
    }

    /// A retry after PostgreSQL stored a batch and SQLite failed writes SQLite only: the late
    /// count (added, not upserted) is in PostgreSQL once. Against the real PostgreSQL of
    /// tests/run.sh; skipped without it unless `SECUREWATCH_REQUIRE_POSTGRES=1`.
    #[tokio::test]
    async fn a_retry_after_a_partial_success_adds_late_counts_once() {
        use crate::sinks::postgres::PostgresConfig;
        use crate::sinks::sqlite::SqliteConfig;
        let url = match std::env::var("SECUREWATCH_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert_ne!(std::env::var("SECUREWATCH_REQUIRE_POSTGRES").as_deref(), Ok("1"), "PostgreSQL required");
                eprintln!("skipped: SECUREWATCH_TEST_POSTGRES_URL is unset");
                return;
            }
        };
        let schema = format!("t_sinks_retry_{:08x}", rand::random::<u32>());
        let config = PostgresConfig { url: url.clone(), schema: Some(schema.clone()), pool_size: 2, ..Default::default() };
        let postgres = Arc::new(PostgresSink::connect(&config).await.unwrap());
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path(), &SqliteConfig::default()).await.unwrap();
        let sinks = Sinks::new(sqlite.clone(), Some(Arc::clone(&postgres)), None);
        let bucket = 1_767_268_800_000;
        let mut batch = EpochWrite { events: vec![event(1)], late: vec![(bucket, 3)], ..Default::default() };

        // SQLite fails: its late-count table is away for the first attempt.
        let file = dir.path().join(SqliteConfig::default().file);
        let other = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        sqlx::query("ALTER TABLE rollup_late RENAME TO rollup_late_away").execute(&other).await.unwrap();
        let mut stored = Stored::default();
        let error = sinks.write(&mut batch, &mut stored).await.unwrap_err();
        assert!(matches!(error, SinkError::Sqlite(_)), "{error}");
        assert!(stored.postgres, "PostgreSQL stored the batch");
        assert_eq!(postgres.late_counts(0, u64::MAX).await.unwrap(), [(bucket, 3)]);

        sqlx::query("ALTER TABLE rollup_late_away RENAME TO rollup_late").execute(&other).await.unwrap();
        sinks.write(&mut batch, &mut stored).await.unwrap();
        assert_eq!(postgres.late_counts(0, u64::MAX).await.unwrap(), [(bucket, 3)], "not added twice");
        assert_eq!(sqlite.late_counts(0, u64::MAX).await.unwrap(), [(bucket, 3)]);
        assert_eq!(sqlite.event_count().await.unwrap(), 1);
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(postgres.pool()).await.unwrap();
        assert_eq!(events, 1);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(postgres.pool()).await.unwrap();
        postgres.close().await;
    }
}
