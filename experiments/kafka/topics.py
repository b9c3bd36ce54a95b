"""Small admin and consumer helpers over confluent-kafka, shared by tests, audit and runner."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from experiments.errors import LabError


def broker_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker answers a metadata request within `timeout` seconds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def live_brokers(bootstrap: str, timeout: float = 5.0) -> set[int]:
    """Node ids the cluster's metadata lists (empty when nobody answers in `timeout` s)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return set(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return set()


class TopicConfigError(LabError):
    """A topic cannot be created as asked (replication factor above the brokers, ...)."""


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int = 1,
    exist_ok: bool = True,
    timeout: float = 30.0,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> str:
    """Create `topic` and wait for it.

    `replication_factor` None: 1 on one broker, up to 3 on a larger cluster;
    `min_insync_replicas` None: the broker's default.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    brokers = len(admin.list_topics(timeout=timeout).brokers)
    replicas = replication_factor if replication_factor is not None else min(3, brokers)
    if replicas > brokers:
        raise TopicConfigError(
            f"replication factor {replicas} for {topic} needs {replicas} brokers; the cluster at "
            f"{bootstrap} has {brokers}"
        )
    if min_insync_replicas is not None and not 1 <= min_insync_replicas <= replicas:
        raise TopicConfigError(
            f"min.insync.replicas {min_insync_replicas} must be between 1 and the "
            f"replication factor {replicas}"
        )
    config = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replicas, config=config)],
        operation_timeout=timeout,
    )
    try:
        futures[topic].result(timeout=timeout)
    except KafkaException as exc:
        if not (exist_ok and exc.args[0].code() == exc.args[0].TOPIC_ALREADY_EXISTS):
            raise
    return topic


# The producer settings the plans use most; small batches so that the broker answers many
# produce requests, as it does for the service, not a few large ones.
WARM_UP_PRODUCERS = (
    {"acks": "all", "enable.idempotence": True, "linger.ms": 0, "batch.size": 2048},
    {"acks": "1", "linger.ms": 0, "batch.size": 2048},
    {"acks": "all", "linger.ms": 5, "compression.type": "lz4", "batch.size": 16384},
)


def warm_up(bootstrap: str, seconds: float, value_size: int = 200) -> int:
    """Produce small records to a new topic for about `seconds`, with each of WARM_UP_PRODUCERS
    in turn, and return how many were acknowledged.

    A broker started moments ago interprets its produce and replication paths before its JIT
    has compiled them: the first runs of a plan measured it using 3-5x its later CPU (0.17
    against 0.04 core, durable) and durable 8-10% slower. Warming it once per plan takes that
    out of the first trials. A node a fault killed and restarted is cold again: the runner
    warms the cluster again after every cell with a broker fault."""
    # A partition per node: each node leads one, so every node's produce path is warmed, not
    # only the one that happens to lead a single partition.
    nodes = len(live_brokers(bootstrap)) or 1
    topic = create_topic(bootstrap, unique_topic("lab-warmup"), partitions=nodes)
    value = b"w" * value_size
    acknowledged = 0

    def count(err: KafkaError | None, _msg: Message) -> None:
        nonlocal acknowledged
        acknowledged += err is None

    share = seconds / len(WARM_UP_PRODUCERS)
    for config in WARM_UP_PRODUCERS:
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0, **config})
        end = time.monotonic() + share
        while time.monotonic() < end:
            try:
                for _ in range(64):
                    producer.produce(topic, value, on_delivery=count)
            except BufferError:
                producer.poll(0.005)
            producer.poll(0)
        producer.flush(30)
    return acknowledged


def partition_leader(bootstrap: str, topic: str, partition: int = 0, timeout: float = 10.0) -> int:
    """Node id leading `partition` of `topic`, from the cluster's metadata (-1: no leader now)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or partition not in found.partitions:
        raise TopicReadError(f"no partition {partition} of {topic} in the metadata of {bootstrap}")
    return int(found.partitions[partition].leader)


def topic_replication(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[str, int]:
    """Replication factor and min.insync.replicas the cluster applies to `topic`."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    # A topic created a moment ago reaches every broker's metadata a little later.
    while not (found := admin.list_topics(topic, timeout=timeout).topics.get(topic)) or not found.partitions:
        if time.monotonic() > deadline:
            raise TopicReadError(f"{topic} has no partitions in the metadata of {bootstrap}")
        time.sleep(0.1)
    replicas = len(next(iter(found.partitions.values())).replicas)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    while True:
        try:
            config = admin.describe_configs([resource])[resource].result(timeout=timeout)
            break
        except KafkaException as exc:
            # The broker asked may not know the new topic yet (one that just rejoined, say).
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return {"replication_factor": replicas, "min_insync_replicas": int(config["min.insync.replicas"].value)}


def unique_topic(prefix: str = "lab") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """High watermark per partition: how many records each partition holds (from 0).

    A topic created a moment ago can still be without a leader in some broker's metadata
    (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): those are asked again until `timeout`.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"offsets-{uuid.uuid4()}"})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                    for p in partitions
                }
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and error.code() in _NOT_YET_LED
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


_NOT_YET_LED = frozenset({KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                          KafkaError.UNKNOWN_TOPIC_OR_PART})


class TopicReadError(LabError):
    """A topic could not be read completely (missing, timed out, or fewer records than promised)."""


def read_topic(
    bootstrap: str, topic: str, timeout: float = 30.0, fetch_wait_ms: int = 100,
    start_offsets: dict[int, int] | None = None,
) -> Iterator[Message]:
    """Every record of `topic`, one at a time: `read_topic_batches` (its bounds and checks)."""
    for batch in read_topic_batches(bootstrap, topic, timeout, fetch_wait_ms, start_offsets):
        yield from batch


def read_topic_batches(
    bootstrap: str, topic: str, timeout: float = 30.0, fetch_wait_ms: int = 100,
    start_offsets: dict[int, int] | None = None,
) -> Iterator[list[Message]]:
    """Every record of `topic`, in batches as they arrive, from each partition's log start
    offset (not 0: retention or `delete_records` move it), or from `start_offsets` where
    given (a topic that held records before a run), up to the end offsets seen at the start.

    Raises `TopicReadError` unless exactly the number of records those offsets promise
    arrived, so a reader can never under-count silently. The one reader of whole topics:
    the delivery audit and the tests use it. Batches, because a Python step per record
    cost the audit of 355,000 records 0.7 s of its 1.5 (measured).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # A short fetch wait ends each partition quickly once it is drained.
            "fetch.wait.max.ms": fetch_wait_ms,
            # Prefetch far ahead: with the default (100,000) reading 350,000 records back
            # took 2.8 s, with 1,000,000 1.1 s (the audit of every fire-and-forget trial).
            "queued.min.messages": 1_000_000,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise TopicReadError(f"topic {topic} not found")
        bounds = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            for p in metadata.topics[topic].partitions
        }
        start = start_offsets or {}
        bounds = {p: (max(low, start.get(p, low)), high) for p, (low, high) in bounds.items()}
        remaining = {p: high for p, (low, high) in bounds.items() if high > low}
        expected = sum(max(high - low, 0) for low, high in bounds.values())
        consumer.assign([
            TopicPartition(topic, p, bounds[p][0] if p in start else OFFSET_BEGINNING) for p in remaining
        ])
        only = next(iter(remaining)) if len(remaining) == 1 else None  # the one partition read
        deadline = time.monotonic() + timeout
        read = 0
        while remaining:
            if time.monotonic() > deadline:
                unfinished = sorted(remaining)
                raise TopicReadError(f"reading {topic} did not finish in {timeout} s ({unfinished=})")
            # consume() waits out its timeout unless num_messages arrive: a short one keeps
            # the last, partial batch from costing every audit half a second.
            batch = consumer.consume(num_messages=10_000, timeout=0.05)
            ends = dict(remaining)  # the bounds as the batch began: an end-of-partition may follow
            records = [msg for msg in batch if msg.error() is None]
            if len(records) != len(batch):
                for msg in batch:
                    err = msg.error()
                    if err is None:
                        continue
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise TopicReadError(f"reading {topic}: {err}")
                    if msg.partition() in remaining and (msg.offset() or 0) >= remaining[msg.partition()]:
                        del remaining[msg.partition()]
            # Within its bounds: a partition's records arrive in offset order, so the last
            # one of each partition in the batch says whether the partition is done.
            if only is not None and only in ends:
                # One partition (every run topic by default): its last record bounds them all.
                end = ends[only]
                if records and records[-1].offset() >= end:
                    records = [msg for msg in records if msg.offset() < end]
                last = {only: records[-1].offset()} if records else {}
            else:
                records = [msg for msg in records if msg.offset() < ends.get(msg.partition(), -1)]
                last = {msg.partition(): msg.offset() for msg in records}
            for partition, offset in last.items():
                if partition in remaining and offset + 1 >= remaining[partition]:
                    del remaining[partition]
            read += len(records)
            if records:
                yield records
    finally:
        consumer.close()
    if read != expected:
        # Fewer records than offsets: a compacted topic or records deleted while we read.
        raise TopicReadError(f"read {read} records of {topic}, its offsets promise {expected}")
