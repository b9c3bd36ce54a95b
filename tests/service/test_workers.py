"""`--workers N`: several processes on one port, metrics that add up across them."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess
from tests.service.harness import wait_for_keys

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REQUESTS = 60


def _count(text: str, pattern: str) -> float:
    match = re.search(pattern + r" ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_two_workers_share_a_port_and_their_metrics(bootstrap: str, tmp_path: Path,
                                                    seed_event: dict[str, Any]) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    topic = unique_topic("svc-workers")
    with ServiceProcess(mode="fire-and-forget", bootstrap=bootstrap, topic=topic,
                        log_file=tmp_path / "service.log", workers=2,
                        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as service:
        def post(_: int) -> httpx.Response:
            # A new connection per request, so both workers get to accept some.
            return httpx.post(service.url + "/", json=seed_event, timeout=10)

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(post, range(REQUESTS)))
        assert [a.status_code for a in answers] == [202] * REQUESTS
        writers = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert len(writers) == 2, f"one worker served everything ({writers}): weak test"
        scrapes = [httpx.get(service.url + "/metrics", timeout=10).text for _ in range(6)]
        for text in scrapes:
            assert _count(text, r'ingest_http_requests_total\{method="POST",route="/",'
                                r'status="202"\}') == REQUESTS
            assert _count(text, r'ingest_events_accepted_total\{mode="fire-and-forget"\}') == \
                REQUESTS
        # Keep-alive requests must not stall on Nagle + delayed ACK: that adds 40 ms to
        # every request, so even the fastest shows it; a busy box delays only some.
        with httpx.Client(base_url=service.url, timeout=10) as client:
            client.get("/healthz")
            spent = []
            for _ in range(21):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                spent.append(time.monotonic() - started)
            # The fastest of 21: Nagle stalls every keep-alive answer by ~40 ms, a busy box some.
            assert min(spent) < 0.03, spent
        found = wait_for_keys(bootstrap, topic, {a.text for a in answers})
        assert {a.text for a in answers} <= found.keys()
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) in (0, -signal.SIGTERM)
