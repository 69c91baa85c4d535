//! Producer tests against a real Kafka-API broker: the one tests/run.sh starts
//! (`SECUREWATCH_TEST_KAFKA_BROKERS`, tansu there). Each test uses a topic of its own; what the
//! producer wrote is read back with librdkafka's plain `BaseConsumer` and, for Avro, also with
//! the PyPI `confluent-kafka` client.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use securewatch_schemas::RawRecord;

use super::*;
use crate::bus::layout::tests::{numbered_records, test_service};
use crate::queue::{BatchOutcome, IngestBatch};

/// The test broker, or `None` (test skipped) when none was started, unless
/// `SECUREWATCH_REQUIRE_KAFKA=1` makes that a failure.
pub(super) fn test_brokers() -> Option<String> {
    test_service("SECUREWATCH_TEST_KAFKA_BROKERS", "SECUREWATCH_REQUIRE_KAFKA", "a Kafka-API broker")
}

/// A config for a new topic of `partitions` partitions, created with the admin API.
pub(super) async fn fresh_topic(brokers: &str, test: &str, partitions: i32) -> KafkaBusConfig {
    let unique = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let topic = format!("securewatch-test-{test}-{unique}");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await.expect("create_topics") {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
    }
    KafkaBusConfig {
        brokers: brokers.to_string(),
        topic,
        group: format!("securewatch-test-{test}-{unique}"),
        linger_ms: 5,
        message_timeout_ms: 15_000,
        ..KafkaBusConfig::default()
    }
}

/// Polls until `count` entries came or `deadline` passed.
pub(super) async fn poll_until(consumer: &mut KafkaConsumer, count: usize, deadline: Duration) -> Vec<KafkaEntry> {
    let start = Instant::now();
    let mut all = Vec::new();
    while all.len() < count && start.elapsed() < deadline {
        all.extend(consumer.poll_batch(count - all.len(), Duration::from_millis(500)).await.expect("poll"));
    }
    all
}

pub(super) fn records_of(entries: &[KafkaEntry]) -> Vec<RawRecord> {
    entries.iter().map(|entry| entry.record.clone().expect("a record")).collect()
}

/// One message as a plain client sees it.
pub(super) struct Plain {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// `count` messages of `partitions` partitions read from the start with a `BaseConsumer`,
/// independent of the bus code; in offset order per partition.
pub(super) fn read_plain(brokers: &str, topic: &str, partitions: i32, count: usize) -> Vec<Plain> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-plain"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("base consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let start = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < count && start.elapsed() < Duration::from_secs(30) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => messages.push(Plain {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().unwrap_or_default().to_vec(),
            }),
            Some(Err(error)) => panic!("plain consumer: {error}"),
            None => {}
        }
    }
    messages.sort_by_key(|message| (message.partition, message.offset));
    messages
}

/// Writes `values` to `topic` with a plain producer (not the bus's).
pub(super) async fn produce_plain(brokers: &str, topic: &str, values: &[&[u8]]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for value in values {
        let record = FutureRecord::<[u8], [u8]>::to(topic).payload(value);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(error, _)| error).unwrap();
    }
}

#[tokio::test]
async fn records_of_every_kind_round_trip_in_the_raw_layout() {
    let Some(brokers) = test_brokers() else { return };
    let config = fresh_topic(&brokers, "raw", 1).await;
    let producer = KafkaProducer::new(&config).unwrap();
    let sent = numbered_records(0, 2_000);
    let mut delivered = Vec::new();
    for batch in sent.chunks(500) {
        delivered.extend(producer.send_batch(batch).await.unwrap());
    }
    assert_eq!(delivered.iter().map(|d| d.offset).collect::<Vec<_>>(), (0..2_000).collect::<Vec<i64>>());
    assert_eq!(producer.stats().snapshot(), BusCounts { produced: 2_000, ..BusCounts::default() });

    let mut consumer = KafkaConsumer::assign(&config, &[(0, StartOffset::Earliest)]).unwrap();
    let entries = poll_until(&mut consumer, 2_000, Duration::from_secs(30)).await;
    assert_eq!(entries.len(), 2_000);
    assert!(records_of(&entries) == sent, "records differ after the round trip");
    assert_eq!(entries.iter().map(|e| e.offset).collect::<Vec<_>>(), (0..2_000).collect::<Vec<i64>>());
    // The plain client sees the envelope.
    let plain = read_plain(&brokers, &config.topic, 1, 2_000);
    assert!(plain.iter().all(|message| message.value.starts_with(envelope::MAGIC)));
    assert_eq!(consumer.stats().snapshot().consumed, 2_000);
}

/// The datum's field `name` from a generic Avro record value.
fn avro_field<'a>(record: &'a Value, name: &str) -> &'a Value {
    let Value::Record(fields) = record else { panic!("not a record: {record:?}") };
    &fields.iter().find(|(field, _)| field == name).unwrap_or_else(|| panic!("no field {name}")).1
}

#[tokio::test]
async fn avro_values_are_in_the_confluent_wire_format_and_round_trip() {
    let Some(brokers) = test_brokers() else { return };
    let mut config = fresh_topic(&brokers, "avro", 1).await;
    config.format = ValueFormat::Avro;
    config.schema_id = 4_242;
    config.compression = Compression::Zstd;
    let producer = KafkaProducer::new(&config).unwrap();
    let sent = numbered_records(0, 400);
    producer.send_batch(&sent).await.unwrap();

    let mut consumer = KafkaConsumer::assign(&config, &[(0, StartOffset::Earliest)]).unwrap();
    let entries = poll_until(&mut consumer, 400, Duration::from_secs(30)).await;
    assert!(records_of(&entries) == sent, "records differ after the Avro round trip");

    // Independently: the raw bytes through a plain consumer, decoded by apache-avro with the
    // schema file itself.
    let schema = apache_avro::Schema::parse_str(include_str!("../../../../schemas/avro/raw_record.avsc")).unwrap();
    let plain = read_plain(&brokers, &config.topic, 1, 400);
    assert_eq!(plain.len(), 400);
    for (message, record) in plain.iter().zip(&sent) {
        assert_eq!(message.value[0], 0, "magic byte");
        assert_eq!(u32::from_be_bytes(message.value[1..5].try_into().unwrap()), 4_242);
        let mut datum = &message.value[5..];
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build().unwrap();
        let value = reader.read_value(&mut datum).unwrap();
        assert!(datum.is_empty());
        assert_eq!(avro_field(&value, "kind"), &Value::String(record.kind.as_str().to_string()));
        assert_eq!(avro_field(&value, "body"), &Value::Bytes(record.body.clone()));
        let received = avro_field(&value, "received");
        assert_eq!(avro_field(received, "seconds"), &Value::Long(record.received.timestamp()));
    }

    // And with the PyPI confluent-kafka client (librdkafka of its own): header and count.
    let script = r#"
import sys
from confluent_kafka import Consumer, TopicPartition
brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": brokers, "group.id": topic + "-py", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
seen = []
while len(seen) < count:
    m = c.poll(10.0)
    if m is None:
        break
    if m.error():
        raise SystemExit(str(m.error()))
    v = m.value()
    seen.append((v[0], int.from_bytes(v[1:5], "big")))
c.close()
print(len(seen), len([s for s in seen if s == (0, 4242)]))
"#;
    let output = Command::new("python3").arg("-c").arg(script).args([&brokers, &config.topic, "400"]).output();
    match output {
        Ok(output) if output.status.success() => {
            assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "400 400");
        }
        Ok(output) if String::from_utf8_lossy(&output.stderr).contains("No module named 'confluent_kafka'") => {
            assert!(std::env::var("SECUREWATCH_REQUIRE_KAFKA").as_deref() != Ok("1"), "confluent-kafka is missing");
            eprintln!("confluent-kafka check skipped: the Python package is not installed");
        }
        Ok(output) => panic!("confluent-kafka check failed: {}", String::from_utf8_lossy(&output.stderr)),
        Err(error) => panic!("python3: {error}"),
    }
}

#[tokio::test]
async fn records_of_one_host_go_to_one_partition() {
    let Some(brokers) = test_brokers() else { return };
    let config = fresh_topic(&brokers, "keys", 4).await;
    let producer = KafkaProducer::new(&config).unwrap();
    // Syslog records from 12 senders: the key is the sender's address.
    let sent: Vec<RawRecord> = numbered_records(0, 480)
        .into_iter()
        .step_by(4)
        .enumerate()
        .map(|(n, mut record)| {
            record.peer = Some(format!("198.51.100.{}:{}", n % 12, 40_000 + n));
            record
        })
        .collect();
    let delivered = producer.send_batch(&sent).await.unwrap();
    let mut partition_of_host: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (record, delivery) in sent.iter().zip(&delivered) {
        let host = record.peer.as_deref().unwrap().split(':').next().unwrap().to_string();
        partition_of_host.entry(host).or_default().insert(delivery.partition);
    }
    assert_eq!(partition_of_host.len(), 12);
    assert!(partition_of_host.values().all(|partitions| partitions.len() == 1), "{partition_of_host:?}");
    let used: BTreeSet<i32> = partition_of_host.values().flatten().copied().collect();
    assert!(used.len() > 1, "12 hosts all hashed to one of 4 partitions: {used:?}");

    // The plain client sees the keys where the delivery reports said.
    let plain = read_plain(&brokers, &config.topic, 4, sent.len());
    assert_eq!(plain.len(), sent.len());
    for message in &plain {
        let host = String::from_utf8(message.key.clone().expect("a key")).unwrap();
        assert_eq!(partition_of_host[&host], BTreeSet::from([message.partition]));
    }
}

#[tokio::test]
async fn a_dead_broker_fails_the_batch_within_the_message_timeout() {
    if test_brokers().is_none() {
        return;
    }
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = KafkaBusConfig {
        brokers: format!("127.0.0.1:{port}"),
        topic: "securewatch-test-dead".into(),
        message_timeout_ms: 2_000,
        ..KafkaBusConfig::default()
    };
    let producer = KafkaProducer::new(&config).unwrap();
    let started = Instant::now();
    let error = producer.send_batch(&numbered_records(0, 50)).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(error, KafkaBusError::Delivery { failed: 50, total: 50, .. }), "{error}");
    assert!(elapsed >= Duration::from_millis(1_500) && elapsed < Duration::from_secs(6), "failing took {elapsed:?}");

    // Through the ingest contract: the batch's ack says the bus is unavailable (HEC: 503 code 9).
    let (batch, ack) = IngestBatch::with_ack(numbered_records(50, 10));
    assert!(producer.publish(batch).await.is_err());
    assert!(matches!(ack.await.unwrap(), BatchOutcome::Unavailable(reason) if reason.starts_with("bus unavailable")));
    assert_eq!(producer.stats().snapshot(), BusCounts { produce_errors: 60, ..BusCounts::default() });
}

#[tokio::test]
async fn a_published_batch_is_durable_once_acknowledged() {
    let Some(brokers) = test_brokers() else { return };
    let config = fresh_topic(&brokers, "publish", 1).await;
    let producer = KafkaProducer::new(&config).unwrap();
    let (batch, ack) = IngestBatch::with_ack(numbered_records(0, 25));
    producer.publish(batch).await.unwrap();
    assert_eq!(ack.await.unwrap(), BatchOutcome::Durable);
    assert_eq!(read_plain(&brokers, &config.topic, 1, 25).len(), 25);
}
