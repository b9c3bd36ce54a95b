"""Session-wide fixtures: the real Kafka broker, started once and always stopped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.kafka import BOOTSTRAP_ENV, LocalKafka, create_topic, unique_topic
from experiments.kafka.broker import free_port


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker: `KAFKA_BOOTSTRAP_SERVERS` if set, else a local one.

    The local broker lives in a throw-away run directory (the jar cache is shared), dies
    with the test process if that is killed, and is stopped at the end of the session
    even when tests failed.
    """
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    broker = LocalKafka(run_dir=tmp_path_factory.mktemp("kafka"), die_with_parent=True)
    state = broker.start()
    try:
        yield state.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A one-node broker of the test's own, which it may stop (the session broker is
    shared); fixed ports, so a service started on it finds it again after a restart."""
    broker = LocalKafka(run_dir=tmp_path / "kafka", die_with_parent=True,
                        port=free_port(), controller_port=free_port(), heap="512m")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_topic(bootstrap: str) -> str:
    """A fresh single-partition topic on the session broker."""
    return create_topic(bootstrap, unique_topic("test"), partitions=1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
