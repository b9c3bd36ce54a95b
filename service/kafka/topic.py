"""The service's topic: created when missing (the local broker never auto-creates), and
checked for readiness."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def ensure_topic(config: dict[str, Any], topic: str, partitions: int, timeout: float) -> bool:
    """Create `topic` if it does not exist; True when this call created it. Blocking."""
    admin = AdminClient({**config, "log_level": 3})
    metadata = admin.list_topics(timeout=timeout)
    found = metadata.topics.get(topic)
    if found is not None and found.error is None:
        return False
    replication = min(3, max(1, len(metadata.brokers)))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication)],
        operation_timeout=timeout, request_timeout=timeout,
    )
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise
    return True


def readiness(producer: Producer, topic: str, timeout: float) -> dict[str, Any]:
    """Blocking metadata round trip: is a broker reachable and `topic` present?"""
    try:
        metadata = producer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        return {"ready": False, "reason": f"broker unreachable: {exc.args[0].str()}"}
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        detail = found.error.str() if found is not None and found.error else "missing"
        return {"ready": False, "reason": f"topic {topic}: {detail}",
                "brokers": len(metadata.brokers)}
    return {"ready": True, "brokers": len(metadata.brokers), "partitions": len(found.partitions)}
