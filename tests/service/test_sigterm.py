"""SIGTERM under fire-and-forget load: every event that got a 202 reaches the topic."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess
from tests.service.harness import records_by_key

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CONCURRENCY = 16


async def _load(url: str, on_signal: Any, seconds_before: float,
                body: bytes) -> tuple[list[str], int]:
    """Post until the server stops answering; the SIGTERM goes out mid-load."""
    accepted: list[str] = []
    refused = 0
    stop_at = time.monotonic() + seconds_before + 5

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal refused
        while time.monotonic() < stop_at:
            try:
                response = await client.post("/", content=body,
                                             headers={"content-type": "application/json"})
            except httpx.HTTPError:
                return  # the server is gone: the listener closed
            if response.status_code == 202:
                accepted.append(response.text)

            else:
                refused += 1

    async def terminate() -> None:
        await asyncio.sleep(seconds_before)
        on_signal()

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        await asyncio.gather(terminate(), *(worker(client) for _ in range(CONCURRENCY)))
    return accepted, refused


@pytest.mark.parametrize("bridge", ["thread", "loop"])
def test_sigterm_during_fire_and_forget_load_loses_nothing(bootstrap: str, tmp_path: Path, bridge: str,
                                                           seed_event: dict[str, Any]) -> None:
    topic = unique_topic("svc-sigterm")
    # Events linger longer than the load lasts, so SIGTERM finds them all still in the
    # buffer: only the shutdown flush can deliver them.
    with ServiceProcess(mode="fire-and-forget", bootstrap=bootstrap, topic=topic,
                        log_file=tmp_path / "service.log", delivery_bridge=bridge,
                        producer_config={"linger.ms": 2500},
                        env={"INGEST_SHUTDOWN_FLUSH_S": "10"}) as service:
        def sigterm() -> None:
            service.proc.send_signal(signal.SIGTERM)

        accepted, refused = asyncio.run(_load(service.url, sigterm, 1.0, orjson.dumps(seed_event)))
        # Uvicorn re-raises the signal after its graceful shutdown, so the exit status
        # says "terminated by SIGTERM"; a crash or a SIGKILL would show otherwise.
        assert service.proc.wait(30) in (0, -signal.SIGTERM)
        logs = service.logs()
    assert len(accepted) > 50, "the load never got going"
    assert refused == 0
    closed = [entry for entry in logs if entry["msg"] == "producer closed"]
    assert closed and closed[0]["undelivered"] == 0
    flushing = [entry for entry in logs if entry["msg"] == "flushing the producer"]
    assert flushing and flushing[0]["in_flight"] > 0, "nothing was left to flush: weak test"
    found = records_by_key(bootstrap, topic)
    missing = set(accepted) - found.keys()
    assert not missing, f"{len(missing)} of {len(accepted)} accepted events were lost"
