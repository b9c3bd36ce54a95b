"""Small admin and consumer helpers over confluent-kafka, shared by tests, audit and runner."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def broker_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker answers a metadata request within `timeout` seconds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def topic_exists(bootstrap: str, topic: str, timeout: float = 5.0) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic=topic, timeout=timeout)
    found = metadata.topics.get(topic)
    return found is not None and found.error is None


def create_topic(
    bootstrap: str, topic: str, partitions: int = 1, exist_ok: bool = True, timeout: float = 30.0
) -> str:
    """Create `topic` (replication factor 1 unless the cluster is larger) and wait for it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    brokers = len(admin.list_topics(timeout=timeout).brokers)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=min(3, brokers))],
        operation_timeout=timeout,
    )
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as exc:
        if not (exist_ok and exc.args[0].code() == exc.args[0].TOPIC_ALREADY_EXISTS):
            raise
    return topic


def unique_topic(prefix: str = "lab") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """High watermark per partition: how many records each partition holds (from 0)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"offsets-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> Iterator[Message]:
    """Every record of `topic` from the beginning up to the end offsets seen at the start."""
    ends = end_offsets(bootstrap, topic)
    remaining = {p: end for p, end in ends.items() if end > 0}
    if not remaining:
        return
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        # From each partition's first retained record: offset 0 may have been deleted.
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(remaining)} not finished")
            batch = consumer.consume(num_messages=10000, timeout=1.0)
            for msg in batch:
                err = msg.error()
                partition = msg.partition()
                if err is not None:
                    if err.code() == err._PARTITION_EOF:
                        if partition in remaining and (msg.offset() or 0) >= remaining[partition]:
                            remaining.pop(partition, None)
                        continue
                    raise KafkaException(err)
                if partition in remaining and msg.offset() < remaining[partition]:
                    yield msg
                    if msg.offset() + 1 >= remaining[partition]:
                        remaining.pop(partition)
    finally:
        consumer.close()
