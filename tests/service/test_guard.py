"""The HTTP guard on the real stack: `python -m service`, each parser, the real broker.

Every refused request carries a valid event (and most a second, smuggled request after
it), so "nothing reached the topic" means the guard, not a parse error further down,
stopped it. Requests go over raw sockets: HTTP clients refuse to send what is tested here.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import resource
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess
from tests.service.harness import topic_size, wait_for_keys

pytestmark = [pytest.mark.kafka]

PARSERS = ["httptools", "h11"]
EVENT = orjson.dumps({"client_id": "guard", "name": "smuggled", "data": {"k": "v"}})
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@dataclass
class Guarded:
    url: str
    port: int
    topic: str
    parser: str
    bootstrap: str
    logs: Any
    pid: int = 0


def _settings_env(parser: str, **settings: Any) -> dict[str, str]:
    env = {"INGEST_HTTP_PARSER": parser}
    env.update({f"INGEST_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextlib.contextmanager
def _service(bootstrap: str, parser: str, log_dir: Path, **settings: Any) -> Iterator[Guarded]:
    topic = unique_topic("guard")
    with ServiceProcess(mode="durable", bootstrap=bootstrap, topic=topic,
                        log_file=log_dir / f"service-{topic}.log",
                        env=_settings_env(parser, **settings)) as svc:
        yield Guarded(svc.url, svc.port, topic, parser, bootstrap, svc.logs, svc.pid)


@pytest.fixture(scope="module", params=PARSERS)
def guarded(request: pytest.FixtureRequest, bootstrap: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    """One service per parser with the default limits, shared by the refusal tests."""
    with _service(bootstrap, request.param, tmp_path_factory.mktemp("guard")) as svc:
        yield svc


def _request(head: str, body: bytes = b"", version: str = "1.1") -> bytes:
    lines = head.strip().splitlines()
    first = lines[0] + f" HTTP/{version}"
    return "\r\n".join([first, "Host: 127.0.0.1", *lines[1:], "", ""]).encode() + body


SMUGGLED = _request(f"POST /\nContent-Type: application/json\nContent-Length: {len(EVENT)}",
                    EVENT)


def exchange(port: int, data: bytes, timeout: float = 30) -> tuple[bytes, bool]:
    """Send `data`, read until the server closes (True) or `timeout` passes (False)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    return received, True
                received += chunk
        except ConnectionResetError:
            return received, True
        except TimeoutError:
            pass
    return received, False


def statuses(data: bytes) -> list[int]:
    return [int(m.group(1)) for m in _STATUS.finditer(data)]


def _body(data: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(data.split(b"\r\n\r\n", 1)[1])
    return parsed


def assert_refused(svc: Guarded, data: bytes, status: int) -> bytes:
    """One answer with `status`, the connection closed after it, nothing published."""
    before = topic_size(svc.bootstrap, svc.topic)
    received, closed = exchange(svc.port, data)
    assert statuses(received) == [status], received[:300]
    assert closed, "the connection stayed open after the refusal"
    assert topic_size(svc.bootstrap, svc.topic) == before
    return received


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


# Each: a request head (with its body) that two HTTP parties could frame differently,
# then a complete second request that must never be served.
FRAMING = {
    "content-length and transfer-encoding": _request(
        f"POST /\nContent-Type: application/json\nContent-Length: {len(_chunked(EVENT))}\n"
        "Transfer-Encoding: chunked", _chunked(EVENT)),
    "transfer-encoding then content-length, lower case": _request(
        "POST /\ncontent-type: application/json\ntransfer-encoding: chunked\n"
        f"content-length: {len(EVENT)}", _chunked(EVENT)),
    "two different content-lengths": _request(
        f"POST /\nContent-Type: application/json\nContent-Length: {len(EVENT)}\n"
        f"Content-Length: {len(EVENT) + 1}", EVENT),
    "two transfer-encodings": _request(
        "POST /\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
        "Transfer-Encoding: chunked", _chunked(EVENT)),
    "transfer-encoding other than chunked": _request(
        "POST /\nContent-Type: application/json\nTransfer-Encoding: gzip, chunked",
        _chunked(EVENT)),
    "transfer-encoding in HTTP/1.0": _request(
        "POST /\nContent-Type: application/json\nTransfer-Encoding: chunked",
        _chunked(EVENT), version="1.0"),
    "signed content-length": _request(
        f"POST /\nContent-Type: application/json\nContent-Length: +{len(EVENT)}", EVENT),
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_conflicting_framing_is_400_closed_and_nothing_published(guarded: Guarded, case: str) -> None:
    assert_refused(guarded, FRAMING[case] + SMUGGLED, 400)


def test_identical_duplicate_content_lengths_never_serve_trailing_bytes(guarded: Guarded) -> None:
    """httptools refuses them; h11 merges identical values into one before anyone sees the
    head (RFC 9110 8.6 allows either). The framing is unambiguous, and in neither case do
    the bytes after the body become a second request."""
    head = _request(f"POST /\nContent-Type: application/json\nContent-Length: {len(EVENT)}\n"
                    f"Content-Length: {len(EVENT)}\nConnection: close", EVENT)
    before = topic_size(guarded.bootstrap, guarded.topic)
    received, closed = exchange(guarded.port, head + SMUGGLED)
    assert closed
    published = topic_size(guarded.bootstrap, guarded.topic) - before
    if guarded.parser == "httptools":
        assert (statuses(received), published) == ([400], 0)
    else:
        assert (statuses(received), published) == ([200], 1)


def _with_event(extra_headers: str = "", target: str = "/") -> bytes:
    head = f"POST {target}\nContent-Type: application/json\nContent-Length: {len(EVENT)}"
    return _request(head + ("\n" + extra_headers if extra_headers else ""), EVENT)


LIMITS = {
    "one 20 KB header": (_with_event("X-Big: " + "a" * 20_000), 431),
    "one 100 KB header": (_with_event("X-Big: " + "a" * 100_000), 431),
    "101 headers": (_with_event("\n".join(f"X-H{i}: 1" for i in range(101))), 431),
    "10,000 headers": (_with_event("\n".join(f"X-H{i}: 1" for i in range(10_000))), 431),
    "9 KB request target": (_with_event(target="/?q=" + "a" * 9_000), 414),
    "100 KB request target": (_with_event(target="/" + "a" * 100_000), 414),
}


@pytest.mark.parametrize("case", list(LIMITS))
def test_header_and_request_line_limits(guarded: Guarded, case: str) -> None:
    data, status = LIMITS[case]
    received = assert_refused(guarded, data, status)
    assert _body(received)["error"] in {"header_fields_too_large", "uri_too_long"}


def test_headers_just_inside_the_limits_are_served(guarded: Guarded) -> None:
    """The limits refuse what is past them, not what is close: 99 headers, 15 KB of values."""
    extra = "\n".join(f"X-H{i}: {'b' * 150}" for i in range(95))
    received, _ = exchange(guarded.port, _with_event(extra + "\nConnection: close"))
    assert statuses(received) == [200]


@pytest.mark.parametrize(("route", "inflated_mib"), [("/", 0), ("/v1/events/batch", 16)])
def test_compressed_bodies_are_refused_without_inflating(guarded: Guarded, route: str,
                                                        inflated_mib: int) -> None:
    """415 naming what is accepted; a 16 MiB bomb (16 KB on the wire, past the 1 MiB body
    limit once inflated) is refused the same way, before a byte of it is read."""
    plain = b"[" + b" " * (inflated_mib * 1024 * 1024) + EVENT + b"]" if inflated_mib else EVENT
    body = gzip.compress(plain)
    data = _request(f"POST {route}\nContent-Type: application/json\nContent-Encoding: gzip\n"
                    f"Content-Length: {len(body)}", body)
    received = assert_refused(guarded, data, 415)
    assert _body(received)["accepted"] == ["identity"]


def test_identity_content_encoding_is_accepted(guarded: Guarded) -> None:
    received, _ = exchange(guarded.port, _with_event("Content-Encoding: identity\nConnection: close"))
    assert statuses(received) == [200]


@pytest.fixture(params=PARSERS)
def impatient(request: pytest.FixtureRequest, bootstrap: str, tmp_path: Path) -> Iterator[Guarded]:
    with _service(bootstrap, request.param, tmp_path,
                  header_timeout_s=2, body_timeout_s=2) as svc:
        yield svc


def test_stalled_head_and_body_get_408_and_are_closed(impatient: Guarded) -> None:
    body_stall = _request(f"POST /\nContent-Type: application/json\n"
                          f"Content-Length: {len(EVENT)}", EVENT[:10])
    for stalled in (b"", b"POST / HTTP/1.1\r\nHost: x\r\n", body_stall):
        received = assert_refused(impatient, stalled, 408)
        assert _body(received)["error"] == "request_timeout"


def test_a_stall_after_a_served_request_on_the_same_connection_gets_408(impatient: Guarded) -> None:
    """The header clock restarts with the next request's first byte on a kept-alive
    connection, and the 408 is written there too (no response is under way)."""
    before = topic_size(impatient.bootstrap, impatient.topic)
    received, closed = exchange(impatient.port, _with_event() + b"POST / HTTP/1.1\r\nHost: x\r\n")
    assert (statuses(received), closed) == ([200, 408], True)
    assert topic_size(impatient.bootstrap, impatient.topic) == before + 1


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.mark.slow
@pytest.mark.parametrize("parser", PARSERS)
def test_a_normal_client_is_served_while_1000_stalled_connections_are_open(
        bootstrap: str, tmp_path: Path, parser: str) -> None:
    stalled_count = 1000
    # The sockets of both ends (the service inherits the limit) plus the broker's and ours.
    _raise_open_files(2 * stalled_count + 1024)
    with _service(bootstrap, parser, tmp_path,
                  header_timeout_s=300, body_timeout_s=300) as svc:
        body_stall = _request(f"POST /\nContent-Type: application/json\n"
                              f"Content-Length: {len(EVENT)}", EVENT[:5])
        with contextlib.ExitStack() as stack, httpx.Client(base_url=svc.url) as client:
            # Unbounded: the first event also pays for the producer's first metadata fetch.
            warm = client.post("/", content=EVENT, headers={"content-type": "application/json"})
            assert warm.status_code == 200
            held = []
            for i in range(stalled_count):
                if i % 3 == 0:  # connected, never a byte sent
                    sock = stack.enter_context(
                        socket.create_connection(("127.0.0.1", svc.port), 30))
                else:  # served once (so surely accepted), then stalled in a head or a body
                    then = body_stall if i % 3 == 2 else HEAD_STALL
                    sock = stack.enter_context(_held_connection(svc.port, then))
                held.append(sock)
            # The pass/fail bound, not a measurement: about ten times what a loaded 2-core
            # box needs for one request beside 1,000 idle sockets.
            response = client.post("/", content=EVENT, timeout=1.0,
                                   headers={"content-type": "application/json"})
            assert response.status_code == 200
            # ...and the stalled ones were held open, not dropped to make room.
            for sock in held:
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        found = wait_for_keys(bootstrap, svc.topic, {response.text})
        assert response.text in found


@pytest.mark.parametrize("parser", PARSERS)
def test_connections_past_the_cap_get_503_and_are_closed(bootstrap: str, tmp_path: Path,
                                                         parser: str) -> None:
    cap = 5
    with _service(bootstrap, parser, tmp_path, max_connections=cap,
                  header_timeout_s=120) as svc, contextlib.ExitStack() as stack:
        idle = [stack.enter_context(_held_connection(svc.port)) for _ in range(cap)]
        assert_refused(svc, _with_event() + SMUGGLED, 503)
        idle.pop().close()
        # Served again once the server has seen that close (a few tries at most).
        answers = []
        for _ in range(50):
            received, _ = exchange(svc.port, _with_event("Connection: close"))
            answers += statuses(received)
            if answers[-1:] == [200]:
                break
            time.sleep(0.1)
        assert answers[-1:] == [200], answers


HEAD_STALL = b"GET /healthz HTTP/1.1\r\n"


def _held_connection(port: int, then: bytes = HEAD_STALL) -> socket.socket:
    """A connection the server has certainly accepted (it answered on it), then stalled in
    `then` (by default the head of a next request): on the guard's clocks, not uvicorn's
    5 s keep-alive one."""
    for _ in range(50):  # the readiness probes' connections may not be closed yet
        sock = socket.create_connection(("127.0.0.1", port), 30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b'"ok"}' not in received and (chunk := sock.recv(4096)):
            received += chunk
        if b'"ok"}' in received:
            sock.sendall(then)
            return sock
        sock.close()
        time.sleep(0.1)
    raise AssertionError("no connection below the cap was served")
