"""No client holds a connection or memory for free: `python -m service`, each parser, the
real broker.

A dripping body is dropped at the request deadline however often it sends a byte; a
client that does not read its answers is dropped at the write deadline; requests
pipelined past the bound are not parsed; and many such connections together stay within
the memory the settings allow. Whether the service still holds a connection is read
from its own sockets (psutil), not inferred from what the client sees. Every bound
asserted is generous (several times the deadline): what is tested is that the
connection goes, not how fast a loaded machine notices.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.bench.hostile import connect, held_connections, payloads
from experiments.bench.profile import rss_mb
from service.settings import Settings
from tests.service.harness import topic_size
from tests.service.test_guard import (
    EVENT,
    PARSERS,
    Guarded,
    _body,
    _request,
    _service,
    statuses,
)

pytestmark = [pytest.mark.kafka]

OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _wait_dropped(svc: Guarded, sock: socket.socket, bound_s: float) -> float | None:
    """Seconds until the service holds `sock`'s connection no more; None past `bound_s`."""
    port = sock.getsockname()[1]
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        if not held_connections(svc.pid, svc.port, {port}):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


@pytest.fixture(params=PARSERS)
def dripped(request: pytest.FixtureRequest, bootstrap: str,
            tmp_path: Path) -> Iterator[Guarded]:
    # The per-read body timeout is far away: only the whole-request deadline can fire.
    with _service(bootstrap, request.param, tmp_path, request_timeout_s=2,
                  header_timeout_s=60, body_timeout_s=60) as svc:
        yield svc


def test_a_dripping_body_gets_408_at_the_request_deadline(dripped: Guarded) -> None:
    """A byte every 0.3 s moved the old per-read timer forever; the request deadline holds."""
    body = EVENT + b" " * 200
    data = _request(f"POST /\nContent-Type: application/json\nContent-Length: {len(body)}",
                    body[:10])
    before = topic_size(dripped.bootstrap, dripped.topic)
    received, closed_after = b"", None
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", dripped.port), timeout=0.3) as sock:
        sock.sendall(data)
        for byte in body[10:]:
            with contextlib.suppress(OSError):
                sock.send(bytes([byte]))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            received += chunk
            if not chunk:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None, "the dripping client was never dropped"
    assert closed_after < 15  # the deadline is 2 s; the drip alone would last 60 s
    assert statuses(received) == [408]
    assert _body(received)["error"] == "request_timeout"
    assert topic_size(dripped.bootstrap, dripped.topic) == before


def test_each_request_on_a_kept_alive_connection_has_a_deadline_of_its_own(
        dripped: Guarded) -> None:
    """The second request arrives after the first one's deadline has passed (2 s; the
    connection stays idle 2.5 s, inside uvicorn's 5-s keep-alive) and sends its body a
    moment after its head: it is served, by its own deadline, not refused by the first's."""
    head = _request(f"POST /\nContent-Type: application/json\nContent-Length: {len(EVENT)}")
    received = b""
    with socket.create_connection(("127.0.0.1", dripped.port), timeout=10) as sock:
        sock.sendall(head + EVENT)
        time.sleep(2.5)
        sock.sendall(head)
        time.sleep(0.3)  # the body in a read of its own, so a clock runs in between
        sock.sendall(EVENT)
        with contextlib.suppress(TimeoutError):
            while len(statuses(received)) < 2 and (chunk := sock.recv(65536)):
                received += chunk
    assert statuses(received) == [200, 200]


def _more_answers_than_the_kernel_holds() -> int:
    """Pipelined /openapi.json requests whose answers (4.9 KB each) are three times what
    the kernel may buffer for one socket: without that a service that never drains them
    would look as if it had, its close() taking them all into the kernel."""
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return max(2000, 3 * wmem_max // 4800)


@pytest.fixture(params=PARSERS)
def write_bound(request: pytest.FixtureRequest, bootstrap: str,
                tmp_path: Path) -> Iterator[Guarded]:
    # Pipelining allowed far past what is sent: only the write deadline can drop it.
    with _service(bootstrap, request.param, tmp_path, write_timeout_s=3,
                  max_pipelined_requests=100_000, log_level="DEBUG") as svc:
        yield svc


def test_a_client_that_does_not_read_is_dropped_at_the_write_deadline(write_bound: Guarded) -> None:
    """Megabytes of answers to a client that reads none: the kernel takes what it can, the
    rest waits in the service until the deadline drops the connection."""
    client = connect(write_bound.port, OPENAPI * _more_answers_than_the_kernel_holds())
    try:
        while client.pending and not client.closed:
            client.pump(time.monotonic())
            time.sleep(0.01)
        dropped_after = _wait_dropped(write_bound, client.sock, bound_s=30)
    finally:
        client.sock.close()
    assert dropped_after is not None, "the service still holds a client that reads nothing"
    assert any(line["msg"] == "dropping a connection whose client does not read"
               for line in write_bound.logs())


def test_a_client_that_catches_up_keeps_its_connection_past_the_deadline(
        write_bound: Guarded) -> None:
    """The write deadline runs from a stalled write until the client has taken what waits:
    a client that stops reading for 1 s and then reads everything still has its
    connection 4 s after that first stall, past the 3 s deadline."""
    count = _more_answers_than_the_kernel_holds()
    with socket.create_connection(("127.0.0.1", write_bound.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(OPENAPI * count)
        time.sleep(1.0)  # the service's writes stall meanwhile
        first = b""
        while b"\r\n\r\n" not in first:
            first += sock.recv(65536)
        head = first.split(b"\r\n\r\n", 1)[0]
        length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
        expected, received = count * (len(head) + 4 + length), len(first)
        while received < expected:  # every answer the same size: counting bytes is enough
            chunk = sock.recv(1 << 20)
            assert chunk, f"dropped after {received} of {expected} bytes"
            received += len(chunk)
        time.sleep(max(0.0, started + 4.0 - time.monotonic()))
        sock.sendall(HEALTHZ)
        answer = sock.recv(65536)
    assert statuses(answer) == [200]


@pytest.fixture(params=PARSERS)
def short_pipeline(request: pytest.FixtureRequest, bootstrap: str,
                   tmp_path: Path) -> Iterator[Guarded]:
    with _service(bootstrap, request.param, tmp_path, max_pipelined_requests=4) as svc:
        yield svc


def test_requests_pipelined_past_the_bound_are_dropped_after_the_queued_answers(
        short_pipeline: Guarded) -> None:
    """20 requests in one write: the one served and the 4 queued behind it are answered
    and the connection closes; the rest are never served (a pipelining client resends
    what was not answered). httptools parses all 20 at once and says `Connection: close`
    on the last answer; h11 parses one at a time and simply closes after it."""
    with socket.create_connection(("127.0.0.1", short_pipeline.port), timeout=30) as sock:
        sock.sendall(HEALTHZ * 20)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    answered = statuses(received)
    # 5 when the 20 arrive in one read, as they do on loopback; a split read lets the
    # service answer a few more before the bound is met.
    assert 5 <= len(answered) < 20 and set(answered) == {200}, answered
    if short_pipeline.parser == "httptools":
        last_head = received.rsplit(b"HTTP/1.1 ", 1)[1].split(b"\r\n\r\n", 1)[0].lower()
        assert b"connection: close" in last_head


@pytest.mark.slow
@pytest.mark.parametrize("parser", PARSERS)
def test_many_pipelining_clients_that_never_read_stay_within_the_stated_memory(
        bootstrap: str, tmp_path: Path, parser: str) -> None:
    """The issue's probe, five times over: 50 connections, each sending 256 KB of
    pipelined GET /healthz and reading nothing, grew the service by 478 MiB (httptools
    parsed and queued every request) or kept it answering for minutes (h11 served all
    7,000 requests of each). Now each may cost a read (256 KiB) and the 16 requests
    served from it, and is closed after their answers."""
    connections = 50
    bound_mb = connections * 0.5  # twice the 256 KiB read each may hold
    with _service(bootstrap, parser, tmp_path, write_timeout_s=3) as svc:
        payload, _ = payloads("pipeline_flood", Settings(), requests=0,
                              flood_bytes=256 * 1024, drip_bytes=0)
        for path in (b"/healthz", b"/readyz", b"/openapi.json"):  # lazy start-up work first
            with socket.create_connection(("127.0.0.1", svc.port), timeout=30) as sock:
                sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
        before = rss_mb(svc.pid)
        clients = [connect(svc.port, payload) for _ in range(connections)]
        ports = {c.sock.getsockname()[1] for c in clients}
        try:
            peak, held = before, connections
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and held:
                for client in clients:
                    client.pump(time.monotonic())
                peak = max(peak, rss_mb(svc.pid))
                if all(c.closed or not c.pending for c in clients):
                    held = held_connections(svc.pid, svc.port, ports)
                time.sleep(0.1)
        finally:
            for client in clients:
                client.sock.close()
    assert peak - before < bound_mb, f"grew {peak - before:.1f} MB, bound {bound_mb} MB"
    assert held == 0, f"{held} of {connections} flooding connections still held"
