"""Checks that the Kafka-API broker tests/run.sh started answers a real librdkafka client:
an idempotent produce of numbered messages to a new topic, then a consumer-group read of all
of them in order. Usage: python3 tests/kafka_smoke.py BROKERS"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

COUNT = 100
TIMEOUT_S = 30


def main(brokers: str) -> int:
    topic = f"securewatch-smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=TIMEOUT_S)

    delivered = []
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
    for n in range(COUNT):
        producer.produce(topic, key=b"smoke", value=f"seq={n}".encode(),
                         on_delivery=lambda err, msg: delivered.append(err))
    if producer.flush(TIMEOUT_S) != 0 or len(delivered) != COUNT or any(delivered):
        errors = [err for err in delivered if err]
        print(f"kafka smoke: {len(delivered)}/{COUNT} delivered, errors {errors[:3]}", file=sys.stderr)
        return 1

    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"{topic}-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(received) < COUNT and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            received.append(message.value().decode())
    finally:
        consumer.close()
    expected = [f"seq={n}" for n in range(COUNT)]
    if received != expected:
        print(f"kafka smoke: read {len(received)} messages, first {received[:3]}", file=sys.stderr)
        return 1
    print(f"kafka smoke: {COUNT} messages produced (idempotent) and read back in order from {topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
