"""The service test harness: the app on a real 127.0.0.1 port, and what reached Kafka.

Tests import these directly (`from tests.service.harness import run_service`); a
service as its own process (signals, workers, the HTTP parsers) comes from the suite's
one launcher, `experiments.service_proc.ServiceProcess`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn

from experiments.kafka import end_offsets, read_topic, unique_topic
from experiments.kafka.broker import free_port
from service import Settings, create_app

SEED_EVENT: dict[str, Any] = {"client_id": "test", "name": "hello_event", "data": {"test": "value"}}


@dataclass
class RunningService:
    url: str
    settings: Settings
    app: Any

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextlib.contextmanager
def run_service(settings: Settings, app: Any = None) -> Iterator[RunningService]:
    """The app under a real uvicorn server in a thread (its own event loop)."""
    app = app or create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("service did not start")
        time.sleep(0.02)
    try:
        yield RunningService(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        thread.join(60)


def make_settings(bootstrap: str, topic: str | None = None, **overrides: Any) -> Settings:
    return Settings(bootstrap_servers=bootstrap, topic=topic or unique_topic("svc"), **overrides)


def records_by_key(bootstrap: str, topic: str, timeout: float = 20) -> dict[str, dict[str, Any]]:
    """Every record up to the current end offsets, by key (a short fetch wait keeps the
    dozens of calls in these tests fast)."""
    out: dict[str, dict[str, Any]] = {}
    for msg in read_topic(bootstrap, topic, timeout=timeout, fetch_wait_ms=10):
        key = msg.key()
        assert key is not None
        out[key.decode()] = {"value": orjson.loads(msg.value() or b"null"),
                             "partition": msg.partition(), "offset": msg.offset()}
    return out


def wait_for_keys(bootstrap: str, topic: str, keys: set[str],
                  timeout: float = 20) -> dict[str, dict[str, Any]]:
    """Records of `topic` once every key in `keys` is there (fire-and-forget is async)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records_by_key(bootstrap, topic)
        if keys <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def topic_size(bootstrap: str, topic: str) -> int:
    return sum(end_offsets(bootstrap, topic).values())


def wait_ready(client: httpx.Client, timeout: float = 30) -> None:
    """Until /readyz answers 200: the topic is in the brokers' metadata, so a reader of it
    finds it (a topic just created can be missing from a fresh client's metadata)."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout} s")
        time.sleep(0.1)
