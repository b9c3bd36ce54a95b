"""Delivery reports on errors only (fire-and-forget): what is still counted, what is not."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from pydantic import ValidationError

from service.errors import ConfigError
from service.kafka.delivery import DeliveryReports
from service.kafka.publisher import Publisher
from service.metrics import Metrics
from service.modes import ProducerMode
from service.settings import Settings
from tests.service.harness import make_settings, run_service, wait_for_keys, wait_ready


def _sample(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_durable_refuses_errors_only_reports() -> None:
    with pytest.raises(ValidationError, match="fire-and-forget"):
        Settings(mode="durable", delivery_reports="errors")
    assert Settings(mode="fire-and-forget", delivery_reports="errors").delivery_reports is \
        DeliveryReports.ERRORS
    # The same librdkafka setting passed as a producer override is refused too.
    with pytest.raises(ConfigError, match="fire-and-forget"):
        Publisher({"delivery.report.only.error": "true"}, "t", ProducerMode.DURABLE, Metrics(),
                  max_in_flight=10, retry_after=1, shed_delay_s=0.0,
                  bridge=Settings().delivery_bridge, reports=DeliveryReports.ALL)


def test_errors_only_sets_librdkafka_and_counts_in_flight_from_its_queue() -> None:
    publisher = Publisher({"bootstrap.servers": "127.0.0.1:1"}, "t", ProducerMode.FIRE_AND_FORGET,
                          Metrics(), max_in_flight=10, retry_after=1, shed_delay_s=0.0,
                          bridge=Settings().delivery_bridge, reports=DeliveryReports.ERRORS)
    assert publisher.config["delivery.report.only.error"] is True
    loop = asyncio.new_event_loop()
    try:
        publisher.start(loop)
        publisher.producer.produce("t", b"v", b"k")  # held: no broker at that address
        # What librdkafka holds: the message, and the connection errors queued for us.
        assert publisher.in_flight == len(publisher.producer) >= 1
    finally:
        publisher.producer.purge()
        publisher.producer.flush(0)
        loop.run_until_complete(publisher.aclose(0))
        loop.close()


@pytest.mark.kafka
@pytest.mark.parametrize("bridge", ["loop", "thread"])
def test_errors_only_counts_every_delivery_once_drained(bootstrap: str, bridge: str,
                                                       seed_event: dict[str, Any]) -> None:
    settings = make_settings(bootstrap, mode="fire-and-forget", delivery_reports="errors",
                             delivery_bridge=bridge)
    with run_service(settings) as running, running.client() as c:
        wait_ready(c)
        ids = {c.post("/", json=seed_event).text for _ in range(5)}
        batch = c.post("/v1/events/batch", json=[seed_event] * 20)
        ids |= {r["event_id"] for r in batch.json()["results"]}
        assert wait_for_keys(bootstrap, settings.topic, ids).keys() >= ids
        deadline = time.monotonic() + 20
        while True:
            text = c.get("/metrics").text
            if _sample(text, "ingest_events_delivered_total") >= 25 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert _sample(text, "ingest_events_accepted_total") == 25
    assert _sample(text, "ingest_events_delivered_total") == 25
    assert _sample(text, "ingest_in_flight_deliveries") == 0
    # What errors-only reporting gives up: no latency is observed.
    assert _sample(text, "ingest_delivery_latency_seconds_count") == 0


@pytest.mark.kafka
def test_errors_only_still_counts_failures(bootstrap: str, seed_event: dict[str, Any]) -> None:
    # No such topic and none created: every event expires after message.timeout.ms.
    settings = make_settings(bootstrap, mode="fire-and-forget", delivery_reports="errors",
                             create_topic=False, producer_config={"message.timeout.ms": 1000})
    with run_service(settings) as running, running.client() as c:
        for _ in range(3):
            assert c.post("/", json=seed_event).status_code == 202
        deadline = time.monotonic() + 20
        while True:
            text = c.get("/metrics").text
            if _sample(text, "ingest_events_failed_total") >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert _sample(text, "ingest_events_failed_total") == 3
    assert _sample(text, "ingest_events_delivered_total") == 0
