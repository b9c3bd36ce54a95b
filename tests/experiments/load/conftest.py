"""Known-behaviour HTTP servers in their own processes, shared by the load tests, and the
engine parameter: every test that takes `engine` runs once per load engine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.load.spec import ENGINES

from .server_client import TestServer

SERVER = Path(__file__).with_name("load_server.py")
FAST_SERVER = Path(__file__).with_name("fast_server.py")


def _serve(script: Path) -> Iterator[TestServer]:
    # --max-seconds bounds a server a crashed session leaves behind; a full `make test`
    # on a busy box takes a while, so it is generous.
    proc = subprocess.Popen([sys.executable, str(script), "--max-seconds", "3600"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"test server {script.name} did not start (exit {proc.poll()})"
        yield TestServer(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def test_server() -> Iterator[TestServer]:
    yield from _serve(SERVER)


@pytest.fixture(scope="session")
def fast_test_server() -> Iterator[TestServer]:
    yield from _serve(FAST_SERVER)


@pytest.fixture
def server(test_server: TestServer) -> TestServer:
    """The shared server, with counters cleared and default (well-behaved) behaviour."""
    test_server.reset()
    return test_server


@pytest.fixture
def fast_server(fast_test_server: TestServer) -> TestServer:
    """The counting server that keeps up with the raw engine, counters cleared."""
    fast_test_server.reset()
    return fast_test_server


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param

