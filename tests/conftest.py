"""Session-wide fixtures: the real Kafka broker, started once and always stopped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.kafka import BOOTSTRAP_ENV, LocalKafka, create_topic, unique_topic


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
def kafka_topic(kafka_bootstrap: str) -> str:
    """A fresh single-partition topic on the session broker."""
    return create_topic(kafka_bootstrap, unique_topic("test"), partitions=1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
