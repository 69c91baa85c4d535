//! The topic itself: created when missing (with `create_partitions`), and its partition count.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaBusConfig, KafkaBusError};

/// Creates `config.topic` with `create_partitions` partitions unless it exists already (or
/// `create_partitions` is 0). A topic that exists keeps its partitions.
pub async fn ensure_topic(config: &KafkaBusConfig) -> Result<(), KafkaBusError> {
    if config.create_partitions <= 0 {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config.client_config()?.create()?;
    let topic = NewTopic::new(&config.topic, config.create_partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(config.request_timeout()));
    for result in admin.create_topics([&topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaBusError::Config(format!("cannot create the topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// The number of partitions of `config.topic`, as the brokers' metadata says; an error when the
/// topic does not exist.
pub async fn partition_count(config: &KafkaBusConfig) -> Result<i32, KafkaBusError> {
    let client = config.client_config()?;
    let topic = config.topic.clone();
    let timeout: Duration = config.request_timeout();
    let count = tokio::task::spawn_blocking(move || -> Result<i32, KafkaBusError> {
        let consumer: BaseConsumer = client.create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let described = metadata.topics().iter().find(|described| described.name() == topic);
        match described {
            Some(described) if described.error().is_none() && !described.partitions().is_empty() => {
                Ok(described.partitions().len() as i32)
            }
            _ => Err(KafkaBusError::Config(format!("the topic {topic} does not exist on the brokers"))),
        }
    })
    .await
    .map_err(|error| KafkaBusError::Task(error.to_string()))??;
    Ok(count)
}
