"""Service test helpers: run the app on a real 127.0.0.1 port, read what reached Kafka.

Helpers are handed out as fixtures because test modules here are imported by basename
(no packages), so a shared helper module could not be imported from every directory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from experiments.kafka import end_offsets, read_topic, unique_topic
from experiments.kafka.broker import free_port
from service import Settings, create_app

SEED_EVENT: dict[str, Any] = {"client_id": "test", "name": "hello_event", "data": {"test": "value"}}
REPO_ROOT = Path(__file__).resolve().parents[2]


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


@dataclass
class ServiceProcess:
    """`python -m service` as a real subprocess (for signals and --workers)."""

    proc: subprocess.Popen[bytes]
    url: str
    stderr_path: Path

    def logs(self) -> list[dict[str, Any]]:
        lines = self.stderr_path.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]


@contextlib.contextmanager
def spawn_service(args: list[str], env: dict[str, str], log_dir: Path,
                  ready_path: str = "/readyz") -> Iterator[ServiceProcess]:
    port = free_port()
    stderr_path = log_dir / f"service-{port}.log"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), *args],
            env={**os.environ, **env}, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )
    service = ServiceProcess(proc, f"http://127.0.0.1:{port}", stderr_path)
    try:
        deadline = time.monotonic() + 45
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited: {stderr_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(service.url + ready_path, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"service not ready: {stderr_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield service
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class ServiceKit:
    run: Callable[..., contextlib.AbstractContextManager[RunningService]]
    settings: Callable[..., Settings]
    records: Callable[[str, str], dict[str, dict[str, Any]]]
    wait_for_keys: Callable[..., dict[str, dict[str, Any]]]
    topic_size: Callable[[str, str], int]
    spawn: Callable[..., contextlib.AbstractContextManager[ServiceProcess]]
    seed_event: dict[str, Any]


@pytest.fixture(scope="session")
def kit() -> ServiceKit:
    return ServiceKit(run=run_service, settings=make_settings, records=records_by_key,
                      wait_for_keys=wait_for_keys, topic_size=topic_size, spawn=spawn_service,
                      seed_event=SEED_EVENT)


@pytest.fixture
def seed_event() -> dict[str, Any]:
    return {**SEED_EVENT, "data": dict(SEED_EVENT["data"])}
