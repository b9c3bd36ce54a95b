"""What the service says about itself, and what a client can make it say.

Metric labels come from a fixed set whatever the parser lets through; no redirect
repeats the Host a client sent; no `server` header names the stack; and listening beyond
loopback with the ingest routes open is warned about at start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from service.auth import open_beyond_loopback
from service.cli import uvicorn_options
from service.middleware import LABELLED_METHODS
from service.settings import Settings
from tests.service.harness import make_settings, run_service
from tests.service.test_guard import PARSERS, Guarded, _service, exchange, statuses

# llhttp (httptools) refuses methods it does not know, but knows WebDAV's, RTSP's and
# others; h11 takes any token. Both kinds reach the app through one parser or the other.
KNOWN_TO_LLHTTP = ("PROPFIND", "MKCOL", "PURGE", "SEARCH", "LOCK", "REPORT")
INVENTED = tuple(f"X{i}RANDOM" for i in range(25))


@pytest.fixture(scope="module", params=PARSERS)
def service(request: pytest.FixtureRequest, bootstrap: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    """`python -m service` with its defaults, as deployed (uvicorn options from the CLI)."""
    with _service(bootstrap, request.param, tmp_path_factory.mktemp("disclosure")) as svc:
        yield svc


def _method_labels(metrics: str) -> set[str]:
    return set(re.findall(r'^ingest_http_requests_total\{[^}]*method="([^"]*)"', metrics, re.M))


@pytest.mark.kafka
def test_metric_labels_come_from_a_fixed_set_under_every_parser(service: Guarded) -> None:
    for method in KNOWN_TO_LLHTTP + INVENTED:
        exchange(service.port, f"{method} /healthz HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n".encode(), timeout=10)
    received, _ = exchange(service.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n")
    labels = _method_labels(received.decode())
    assert "other" in labels  # each parser let some of them through
    assert labels <= LABELLED_METHODS | {"other"}


@pytest.mark.kafka
def test_no_server_header(service: Guarded) -> None:
    received, _ = exchange(service.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n")
    head = received.split(b"\r\n\r\n", 1)[0].lower()
    assert statuses(received) == [200] and b"\r\nserver:" not in head
    assert uvicorn_options(Settings(server_header=True))["server_header"] is True


@pytest.mark.kafka
@pytest.mark.parametrize("path", ["/v1/events/", "/healthz/", "/docs/"])
def test_a_trailing_slash_is_not_redirected_to_the_host_a_client_named(
        service: Guarded, path: str) -> None:
    """Starlette's slash redirect built `Location: http://<Host>/...` from the request."""
    method = "POST" if path.startswith("/v1") else "GET"
    request = (f"{method} {path} HTTP/1.1\r\nHost: attacker.example\r\nContent-Length: 0\r\n"
               "Content-Type: application/json\r\nConnection: close\r\n\r\n").encode()
    received, _ = exchange(service.port, request)
    assert statuses(received) == [404]
    assert b"attacker.example" not in received
    assert b"\r\nlocation:" not in received.split(b"\r\n\r\n", 1)[0].lower()


@pytest.mark.parametrize(("host", "keys", "warned"), [
    ("127.0.0.1", False, False), ("127.0.0.2", False, False), ("::1", False, False),
    ("[::1]", False, False), ("localhost", False, False),
    ("0.0.0.0", False, True), ("::", False, True), ("10.1.2.3", False, True),
    ("ingest.internal", False, True), ("0.0.0.0", True, False),
])
def test_which_addresses_are_beyond_loopback(host: str, keys: bool, warned: bool) -> None:
    assert open_beyond_loopback(Settings(host=host, require_api_key=keys)) is warned


@pytest.mark.kafka
def test_a_warning_at_start_when_listening_beyond_loopback_with_keys_off(
        bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    """The harness binds 127.0.0.1 whatever the setting says: the warning is read from
    the setting, as the CLI would bind it, without opening a port to the network."""
    caplog.set_level(logging.WARNING, logger="service")
    for host in ("127.0.0.1", "0.0.0.0"):
        with run_service(make_settings(bootstrap, host=host)):
            pass
    warnings = [r for r in caplog.records if "beyond loopback" in r.getMessage()]
    assert [r.host for r in warnings] == ["0.0.0.0"]  # type: ignore[attr-defined]

