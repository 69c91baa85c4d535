//! The Kafka bus: [`KafkaProducer`] writes raw records to a topic for `securewatch ingest`,
//! [`KafkaConsumer`] reads statically assigned partitions for `securewatch worker`.
//!
//! **Delivery.** At least once. The producer is idempotent (`enable.idempotence=true`,
//! `acks=all`); [`KafkaProducer::send_batch`] is `Ok` only once the brokers confirmed every
//! record of the batch (each record's delivery report), and fails within `message_timeout_ms`
//! when they cannot be reached ([`BusProducer::publish`] then fails the ingest batch: HEC
//! answers 503 code 9). A failed batch may have left some records on the topic, which a retry
//! writes again; the workers' deterministic event ids make that harmless.
//!
//! **Positions.** The consumer never subscribes: the caller assigns partitions
//! ([`partitions_for_worker`]) and says where each starts — the offset its store's progress
//! table holds, or the earliest one. Nothing is committed automatically; once the output of a
//! batch is durable the caller commits the group offsets with [`KafkaConsumer::commit`], for
//! monitoring. Kafka's committed offset is the *next* offset to read (last processed + 1):
//! [`KafkaEntry::next_offset`] and [`commit_positions`] compute it.
//!
//! **Values.** `format = "raw"`: the envelope of [`envelope`]; `"avro"`: the Confluent wire
//! format of [`avro`]; `"json"` (consumers only): any topic of JSON objects, each becoming a
//! record of kind `kafka` whose body is the value. Message keys are described at
//! [`KafkaProducer`].

pub mod avro;
mod config;
mod consumer;
pub mod envelope;
mod producer;
mod topic;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_consumer;
#[cfg(test)]
mod tests_tls;

use rdkafka::error::KafkaError;

pub use super::{BusCounts, BusProducer, BusStats, DecodeError};
pub use config::{Compression, KafkaBusConfig, SaslMechanism, SecurityProtocol, ValueFormat};
pub use consumer::{commit_positions, KafkaConsumer, KafkaEntry, PartitionLag, StartOffset};
pub use producer::{Delivered, KafkaProducer};
pub use topic::{ensure_topic, partition_count};

/// Errors of the Kafka bus.
#[derive(Debug, thiserror::Error)]
pub enum KafkaBusError {
    /// The configuration is refused, or the topic is missing or cannot be created.
    #[error("invalid Kafka bus configuration: {0}")]
    Config(String),
    /// librdkafka reported an error.
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Some records of a batch were not confirmed (brokers unreachable past
    /// `message_timeout_ms`, or refused): the whole batch counts as not sent.
    #[error("{failed} of {total} records were not confirmed by the brokers: {reason}")]
    Delivery {
        /// Records not confirmed.
        failed: usize,
        /// Records in the batch.
        total: usize,
        /// The first delivery error reported.
        reason: String,
    },
    /// A record could not be encoded as Avro.
    #[error("Avro: {0}")]
    Avro(#[from] securewatch_schemas::avro::AvroError),
    /// The partition is not one this consumer reads.
    #[error("partition {0} is not assigned to this consumer")]
    NotAssigned(i32),
    /// The blocking task running a librdkafka call panicked or was cancelled.
    #[error("a blocking Kafka call did not finish: {0}")]
    Task(String),
}

/// The partitions of a topic with `partitions` partitions that worker `worker` of `workers`
/// reads: those with `p % workers == worker`.
pub fn partitions_for_worker(partitions: i32, workers: usize, worker: usize) -> Vec<i32> {
    (0..partitions).filter(|partition| workers > 0 && *partition as usize % workers == worker).collect()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn workers_share_the_partitions_without_overlap() {
        assert_eq!(partitions_for_worker(8, 3, 0), vec![0, 3, 6]);
        assert_eq!(partitions_for_worker(8, 3, 2), vec![2, 5]);
        assert_eq!(partitions_for_worker(2, 4, 3), Vec::<i32>::new());
        let all: Vec<i32> = (0..4).flat_map(|worker| partitions_for_worker(10, 4, worker)).collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
