"""The local Apache Kafka cluster (one node or several), or an existing cluster named by
KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import os
from dataclasses import dataclass

from experiments.kafka.broker import BrokerState, LocalKafka, NodeState, default_home
from experiments.kafka.jars import ensure_jars, kafka_version
from experiments.kafka.topics import (
    TopicConfigError,
    TopicReadError,
    broker_ready,
    create_topic,
    end_offsets,
    live_brokers,
    partition_leader,
    read_topic,
    read_topic_batches,
    topic_replication,
    unique_topic,
    warm_up,
)

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

__all__ = [
    "BOOTSTRAP_ENV",
    "BrokerState",
    "KafkaTarget",
    "LocalKafka",
    "NodeState",
    "TopicConfigError",
    "TopicReadError",
    "broker_ready",
    "create_topic",
    "default_home",
    "end_offsets",
    "ensure_jars",
    "ensure_kafka",
    "kafka_version",
    "live_brokers",
    "partition_leader",
    "read_topic",
    "read_topic_batches",
    "topic_replication",
    "unique_topic",
    "warm_up",
]


@dataclass(frozen=True)
class KafkaTarget:
    """Which cluster to use, and whether this process started it (and so should stop it)."""

    bootstrap: str
    started_here: bool
    external: bool
    kafka_version: str | None


def ensure_kafka(
    bootstrap: str | None = None, local: LocalKafka | None = None, timeout: float = 90.0
) -> KafkaTarget:
    """An explicit or `KAFKA_BOOTSTRAP_SERVERS` cluster as it is; else the local cluster, started
    if needed, healed if a node is down or paused, replaced if it has another number of nodes."""
    explicit = bootstrap or os.environ.get(BOOTSTRAP_ENV, "")
    if explicit:
        return KafkaTarget(bootstrap=explicit, started_here=False, external=True, kafka_version=None)
    broker = local or LocalKafka()
    running = broker.status()
    was_running = running is not None and len(running.nodes) == broker.nodes
    state = broker.start(timeout=timeout)
    return KafkaTarget(
        bootstrap=state.bootstrap,
        started_here=not was_running,
        external=False,
        kafka_version=state.kafka_version,
    )
