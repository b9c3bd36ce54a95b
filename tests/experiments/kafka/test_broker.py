"""The local broker against the real thing: round trip, reuse, idempotent start, clean stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from experiments.errors import MissingToolError
from experiments.kafka import (
    BOOTSTRAP_ENV,
    LocalKafka,
    create_topic,
    end_offsets,
    ensure_kafka,
    unique_topic,
    warm_up,
)
from experiments.kafka.broker import GC_LOG, listening_pid, port_open
from experiments.kafka.jars import ensure_jars, find_java
from experiments.kafka.topics import WARM_UP_PRODUCERS

pytestmark = pytest.mark.kafka


def brokers_using(run_dir: Path) -> list[psutil.Process]:
    """Java broker processes whose config lives in `run_dir`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "kafka.Kafka" in cmdline and any(str(run_dir) in arg for arg in cmdline):
            found.append(proc)
    return found


def all_brokers() -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"]) if "kafka.Kafka" in (p.info["cmdline"] or [])}


def test_round_trip_is_byte_exact(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("roundtrip"), partitions=1)
    key = b"\x00key-\xff"
    value = bytes(range(256)) * 40 + '{"ü": "€"}'.encode()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=key, value=value, headers=[("h", b"\x01\x02")])
    assert producer.flush(15) == 0

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        msg = consumer.poll(15)
    finally:
        consumer.close()
    assert msg is not None and msg.error() is None
    assert msg.key() == key
    assert msg.value() == value
    assert msg.headers() == [("h", b"\x01\x02")]


def test_existing_cluster_is_used_and_nothing_started(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOOTSTRAP_ENV, bootstrap)
    before = all_brokers()
    local = LocalKafka(run_dir=tmp_path / "unused")
    target = ensure_kafka(local=local)
    assert target.bootstrap == bootstrap
    assert target.external and not target.started_here
    assert local.status() is None
    # The command-line entry point honours the same variable.
    out = subprocess.run(
        [sys.executable, "-m", "experiments.kafka", "up"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LAB_KAFKA_HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == bootstrap
    assert all_brokers() == before
    assert not (tmp_path / "run" / "state.json").exists()


def test_start_is_idempotent_and_stop_leaves_nothing(tmp_path: Path) -> None:
    broker = LocalKafka(run_dir=tmp_path / "run", die_with_parent=True)
    first = broker.start()
    (node,) = first.nodes
    try:
        second = broker.start()
        assert second.pid == first.pid
        assert [p.pid for p in brokers_using(broker.run_dir)] == [first.pid]
        assert port_open(node.port) and port_open(node.controller_port)
        assert "Using G1" in (broker.run_dir / "node-1" / GC_LOG).read_text()
    finally:
        assert broker.stop() is True
    assert not psutil.pid_exists(first.pid) or psutil.Process(first.pid).status() == "zombie"
    assert brokers_using(broker.run_dir) == []
    assert not port_open(node.port) and not port_open(node.controller_port)
    assert broker.status() is None
    assert not Path(node.data_dir).exists()
    assert broker.stop() is False


def test_missing_java_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError) as err:
        find_java()
    assert err.value.tool == "java"
    assert "17" in str(err.value)


def test_the_broker_process_is_found_by_its_port(bootstrap: str) -> None:
    pid = listening_pid(bootstrap)
    assert pid is not None
    assert "kafka.Kafka" in psutil.Process(pid).cmdline()
    assert listening_pid("broker.example.net:9092") is None


def test_missing_maven_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError) as err:
        ensure_jars(tmp_path)
    assert err.value.tool == "mvn"
    assert "Maven" in str(err.value)


def test_warm_up_writes_acknowledged_records_to_a_topic_of_its_own(bootstrap: str) -> None:
    acknowledged = warm_up(bootstrap, seconds=1.5)
    assert acknowledged >= len(WARM_UP_PRODUCERS)
    topics = [t for t in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
              if t.startswith("lab-warmup")]
    assert topics
    assert sum(sum(end_offsets(bootstrap, t).values()) for t in topics) >= acknowledged
