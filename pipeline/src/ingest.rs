//! The plain ingest path: queue → normalisation → store, with group commit and batch acks.
//!
//! This is the seam where the dataflow engine will sit: today normalisation runs in one
//! task and events go straight to the store; the timely workers will take the records from
//! the same queue instead. Two stages overlap: while one group of batches is being committed,
//! the next group is normalised.

use std::time::{Duration, Instant};

use securewatch_connectors::queue::{BatchOutcome, IngestBatch, IngestReceiver};
use securewatch_connectors::sinks::sqlite::{DeadLetter, SqliteStore};
use securewatch_connectors::telemetry::{self, SourceLabels};
use securewatch_parse::normalise;
use securewatch_schemas::Event;
use tokio::sync::mpsc;

/// Batches normalised together and committed in one transaction.
struct Group {
    batches: Vec<IngestBatch>,
    events: Vec<Event>,
    dead_letters: Vec<DeadLetter>,
}

/// Runs until every queue sender is gone and everything queued is durable.
pub async fn run(receiver: IngestReceiver, store: SqliteStore, max_group_records: usize) {
    let (group_sender, group_receiver) = mpsc::channel::<Group>(2);
    let writer = tokio::spawn(write_groups(group_receiver, store));
    normalise_groups(receiver, group_sender, max_group_records).await;
    if let Err(error) = writer.await {
        tracing::error!(%error, "Store writer task failed.");
    }
}

async fn normalise_groups(
    mut receiver: IngestReceiver,
    groups: mpsc::Sender<Group>,
    max_group_records: usize,
) {
    while let Some(first) = receiver.recv().await {
        let mut records = first.records.len();
        let mut batches = vec![first];
        while records < max_group_records {
            let Some(next) = receiver.try_recv() else { break };
            records += next.records.len();
            batches.push(next);
        }
        let group = normalise_group(batches);
        if groups.send(group).await.is_err() {
            tracing::error!("Store writer stopped; ingest stops.");
            return;
        }
    }
}

fn normalise_group(batches: Vec<IngestBatch>) -> Group {
    let mut events = Vec::with_capacity(batches.iter().map(|batch| batch.records.len()).sum());
    let mut dead_letters = Vec::new();
    for record in batches.iter().flat_map(|batch| batch.records.iter()) {
        match normalise(record) {
            Ok(event) => {
                if let Some(reason) = securewatch_parse::syslog::parse_failure(&event) {
                    metrics::counter!(
                        telemetry::PARSE_FAILURES,
                        "source" => record.source_name.to_string(),
                        "reason" => reason.to_string()
                    )
                    .increment(1);
                }
                events.push(event);
            }
            Err(error) => {
                let reason = error.reason();
                SourceLabels::new(record.kind, &*record.source_name).rejected(reason, 1);
                metrics::counter!(telemetry::DEAD_LETTERED, "reason" => reason).increment(1);
                tracing::debug!(source = %record.source_name, reason, %error, "Record dead-lettered.");
                dead_letters.push(DeadLetter { record: record.clone(), reason, detail: error.to_string() });
            }
        }
    }
    Group { batches, events, dead_letters }
}

async fn write_groups(mut groups: mpsc::Receiver<Group>, store: SqliteStore) {
    while let Some(group) = groups.recv().await {
        let outcome = write_with_retries(&store, &group).await;
        for batch in group.batches {
            batch.complete(outcome.clone());
        }
    }
}

/// Pauses between attempts of a failed group write; after the last, the batches fail.
const RETRY_DELAYS: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(500), Duration::from_secs(2)];

async fn write_with_retries(store: &SqliteStore, group: &Group) -> BatchOutcome {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        match store.write(&group.events, &group.dead_letters).await {
            Ok(summary) => {
                tracing::trace!(?summary, elapsed = ?started.elapsed(), "Group committed.");
                return BatchOutcome::Durable;
            }
            Err(error) => {
                metrics::counter!(telemetry::STORE_ERRORS).increment(1);
                let Some(delay) = RETRY_DELAYS.get(attempt) else {
                    tracing::error!(%error, events = group.events.len(), "Store write failed; giving up.");
                    return BatchOutcome::Failed(error.to_string());
                };
                tracing::warn!(%error, attempt, "Store write failed; retrying.");
                tokio::time::sleep(*delay).await;
                attempt += 1;
            }
        }
    }
}
