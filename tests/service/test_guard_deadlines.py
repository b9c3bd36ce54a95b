"""Deadlines a slow or silent client cannot reset, and a bound on pipelined requests, on the
real stack (`python -m service`, each parser): a dripping body, a client that never reads,
a pipelining flood. Bounds are asserted with room for a busy box: a mechanism that re-armed
its timer per read, or had none, would hold these connections for as long as the client
liked, far beyond them."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess

pytestmark = [pytest.mark.kafka]

EVENT = b'{"client_id": "drip", "name": "slow", "data": {"k": "v"}}'


@contextlib.contextmanager
def service(bootstrap: str, log_dir: Path, parser: str, **settings: object) -> Iterator[ServiceProcess]:
    with ServiceProcess("durable", bootstrap, unique_topic("deadline"), log_dir / "svc.log",
                        http_parser=parser, **settings) as svc:
        yield svc


def closed_by_peer(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), reading whatever it sends;
    None if it was still open after `within_s`."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < within_s:
        try:
            if not sock.recv(1 << 16):
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset: the server aborted the connection
            return time.monotonic() - started
    return None


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_a_dripping_body_is_cut_off_by_one_deadline(bootstrap: str, tmp_path: Path,
                                                     parser: str) -> None:
    """1 byte every 0.25 s of a 200-byte body: 50 s to send, every read re-arming a per-read
    timer; the whole body is due 2 s after the head."""
    body = EVENT.ljust(200)
    with service(bootstrap, tmp_path, parser, body_timeout_s=2.0) as svc, \
            socket.create_connection(("127.0.0.1", svc.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n")
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.25)
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        cut_after = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert cut_after < 2.0 + 6.0  # the deadline, and room for a busy box; 50 s otherwise


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_a_client_that_never_reads_is_dropped(bootstrap: str, tmp_path: Path, parser: str) -> None:
    """Pipelined requests for the OpenAPI document (~20 KB each, 10 MB in all: more than the
    kernel buffers of both ends hold) into a tiny receive window, nothing read: the answers
    back up until the transport stops writing, and 1 s later the connection is dropped
    (uvicorn alone waits for the transport to drain, for ever)."""
    with service(bootstrap, tmp_path, parser, write_timeout_s=1.0,
                 max_pipelined_requests=1000) as svc:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", svc.port))
        with sock:
            with contextlib.suppress(OSError):  # dropped while still sending: the point
                sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n" * 500)
            time.sleep(1.0 + 4.0)  # the deadline, and room for a busy box
            connections = [c for c in psutil.Process(svc.pid).net_connections()
                           if c.laddr and c.laddr.port == svc.port and c.status == "ESTABLISHED"]
            assert connections == []
            assert closed_by_peer(sock, within_s=10) is not None


def test_a_pipelining_flood_is_dropped_before_it_queues(bootstrap: str, tmp_path: Path) -> None:
    """2,000 pipelined requests in a few writes, answers never read: httptools parses every
    request of a read, so past max_pipelined_requests queued the connection is dropped."""
    with service(bootstrap, tmp_path, "httptools", max_pipelined_requests=8) as svc, \
            socket.create_connection(("127.0.0.1", svc.port)) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 2000)
        assert closed_by_peer(sock, within_s=10) is not None
        assert any(e.get("msg") == "dropping a client that pipelines too many requests"
                   for e in svc.logs())


def test_hostile_connections_hold_bounded_memory(bootstrap: str, tmp_path: Path) -> None:
    """100 connections, each pipelining 8 requests for the OpenAPI document and reading none:
    the service grows by a bounded amount (~40 MiB for 10 such connections before), and none
    is left after the write deadline and uvicorn's keep-alive timeout (5 s; a connection
    whose answers all fit in the kernel's buffers is idle, not paused)."""
    with service(bootstrap, tmp_path, "httptools", write_timeout_s=2.0) as svc:
        process = psutil.Process(svc.pid)
        before = process.memory_info().rss
        socks = []
        for _ in range(100):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", svc.port))
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n" * 8)
            socks.append(sock)
        time.sleep(1.0)
        grown_mib = (process.memory_info().rss - before) / 2**20
        time.sleep(2.0 + 5.0 + 5.0)
        open_now = [c for c in process.net_connections()
                    if c.laddr and c.laddr.port == svc.port and c.status == "ESTABLISHED"]
        for sock in socks:
            sock.close()
    print(f"grew {grown_mib:.1f} MiB for 100 hostile connections")
    assert grown_mib < 64
    assert open_now == []
