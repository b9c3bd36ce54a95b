"""Targets the suite did not start: refused clearly when they cannot be driven."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from experiments.kafka.broker import free_port
from experiments.target import ExternalTarget, TargetError


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ready", "mode": "durable"}' if self.path == "/readyz" else b"nope"
        self.send_response(200 if self.path == "/readyz" else 404)
        self.send_header("Server", "test-ingest/1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_external_target_records_its_identity_and_local_pid(http_server: str) -> None:
    section = ExternalTarget(http_server + "/").start()
    assert section["url"] == http_server and section["launched_by_suite"] is False
    assert section["impl"] == "external"
    assert section["identity"]["server"].startswith("test-ingest/1.0")
    assert section["identity"]["/readyz"] == {"status": 200, "body": {"status": "ready", "mode": "durable"}}
    assert isinstance(section["identity"]["pid"], int)  # this test process listens there


def test_a_target_that_refuses_connections_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TargetError, match="does not answer HTTP"):
        ExternalTarget(url, timeout_s=1.0).start()


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://127.0.0.1:21", "not an http://host"),
    ("127.0.0.1:8000", "not an http://host"),
    ("http://192.0.2.10:8000", "not a loopback address"),
    ("http://127.0.0.1:8000/v1/events", "base URL"),
])
def test_malformed_or_remote_target_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        ExternalTarget(url)


def test_a_remote_target_needs_allow_remote() -> None:
    assert ExternalTarget("http://192.0.2.10:8000", allow_remote=True).url == "http://192.0.2.10:8000"
