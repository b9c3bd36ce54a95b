"""What the service tells a stranger: no server banner, no Host-built redirect, docs that
can be switched off, bounded metric labels, a warning when it is open to the network."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess
from service.app import create_app, lifespan
from service.settings import Settings

pytestmark = pytest.mark.kafka




@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_no_banner_no_host_redirect_and_bounded_method_labels(bootstrap: str, tmp_path: Path,
                                                               parser: str) -> None:
    with ServiceProcess("durable", bootstrap, unique_topic("exposure"), tmp_path / "svc.log",
                        http_parser=parser) as svc, httpx.Client(base_url=svc.url, timeout=10) as client:
        answer = client.get("/healthz")
        slash = client.get("/healthz/", headers={"host": "attacker.example"})
        for i in range(20):
            client.request(f"X{i}GET", "/healthz")
        metrics = client.get("/metrics").text
    assert "server" not in answer.headers
    assert slash.status_code == 404 and "location" not in slash.headers
    methods = {line.split('method="', 1)[1].split('"', 1)[0] for line in metrics.splitlines()
               if line.startswith("ingest_http_requests_total{")}
    assert methods <= {"GET", "POST", "other"}
    assert "X3GET" not in metrics


def test_the_openapi_pages_can_be_switched_off(bootstrap: str, tmp_path: Path) -> None:
    with ServiceProcess("durable", bootstrap, unique_topic("exposure"), tmp_path / "svc.log",
                        docs=False) as svc, httpx.Client(base_url=svc.url, timeout=10) as client:
        found = {path: client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")}
        assert client.post("/", json={"client_id": "c", "name": "n", "data": {}}).status_code == 200
    assert found == dict.fromkeys(found, 404)


@pytest.mark.parametrize(("host", "keys", "warned"), [
    ("0.0.0.0", False, True), ("10.1.2.3", False, True), ("127.0.0.1", False, False),
    ("0.0.0.0", True, False)])
def test_a_warning_when_listening_beyond_loopback_without_keys(
        bootstrap: str, caplog: pytest.LogCaptureFixture, host: str, keys: bool,
        warned: bool) -> None:
    settings = Settings(bootstrap_servers=bootstrap, topic=unique_topic("exposure"), host=host,
                        require_api_key=keys, api_keys={"k": "0123456789abcdefghijklmnopqrstuvwxyz"})
    app = create_app(settings)

    async def start_and_stop() -> None:
        async with lifespan(app):
            pass

    with caplog.at_level(logging.WARNING, logger="service"):
        asyncio.run(start_and_stop())
    found = [r for r in caplog.records if "beyond loopback" in r.getMessage()]
    assert bool(found) is warned
