//! Message buses between `securewatch ingest` and `securewatch worker`: raw records go on the bus
//! unchanged and are normalised in the workers (DESIGN §5, issue 3 item 3).
//!
//! Both buses share the record [`layout`], the counters in [`stats`] and the [`BusProducer`]
//! contract a source's acknowledgement hangs on.

pub mod journal;
pub mod kafka;
pub mod layout;
pub mod redis;
pub mod stats;

use std::future::Future;

use securewatch_schemas::RawRecord;

pub use layout::DecodeError;
pub use stats::{BusCounts, BusStats};

use crate::queue::{BatchOutcome, IngestBatch};

/// A producer that confirms a whole batch or fails it: what `securewatch ingest` needs from a
/// bus to acknowledge its senders only once their records are durable there.
pub trait BusProducer: Sync {
    /// Why a batch was not confirmed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Sends the records in order. `Ok` only once the bus confirmed every one of them; on
    /// `Err` none may be taken as sent (some may be on the bus: a retry sends them again, and
    /// the workers' deterministic event ids make that harmless).
    fn send_records(&self, records: &[RawRecord]) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Sends an ingest batch and completes its ack: `Durable` once the bus confirmed every
    /// record, `Unavailable("bus unavailable: …")` otherwise (HEC then answers 503 code 9, TCP
    /// sources stop reading, file tailers hold their position).
    fn publish(&self, batch: IngestBatch) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        Self: Sized,
    {
        async move {
            match self.send_records(&batch.records).await {
                Ok(()) => {
                    batch.complete(BatchOutcome::Durable);
                    Ok(())
                }
                Err(error) => {
                    batch.complete(BatchOutcome::Unavailable(format!("bus unavailable: {error}")));
                    Err(error)
                }
            }
        }
    }
}
