"""A known-behaviour HTTP server in its own process, shared by the load tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server_client import TestServer

SERVER = Path(__file__).with_name("load_server.py")


@pytest.fixture(scope="session")
def test_server() -> Iterator[TestServer]:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--max-seconds", "600"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"test server did not start (exit {proc.poll()})"
        yield TestServer(f"http://127.0.0.1:{port}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server(test_server: TestServer) -> TestServer:
    """The shared server, with counters cleared and default (well-behaved) behaviour."""
    test_server.reset()
    return test_server
