"""What the publisher's failures look like from outside: a fatal producer error, and
fire-and-forget deliveries that fail after their 202."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError

from tests.service.harness import make_settings, run_service, topic_size, wait_for_keys, wait_ready

pytestmark = pytest.mark.kafka


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("mode", ["durable", "fire-and-forget"])
def test_a_fatal_producer_error_makes_the_service_refuse_and_unready(
        bootstrap: str, seed_event: dict[str, Any], mode: str) -> None:
    """librdkafka reports a fatal error (an idempotent producer fenced, say) through its
    error callback; the service answers 503 `not_ready` from then on, publishing nothing,
    and /readyz says why."""
    settings = make_settings(bootstrap, mode=mode)
    with run_service(settings) as running, running.client() as c:
        wait_ready(c)
        first = c.post("/", json=seed_event)
        assert first.status_code in (200, 202)
        # Fire-and-forget answered before delivering: count the topic once the event is in.
        wait_for_keys(bootstrap, settings.topic, {first.text})
        publisher = running.app.state.ingest.publisher
        publisher._on_error(KafkaError(KafkaError._FATAL, "fenced by a newer producer", fatal=True))
        before = topic_size(bootstrap, settings.topic)
        single = c.post("/", json=seed_event)
        batch = c.post("/v1/events/batch", json=[seed_event] * 3)
        ready = c.get("/readyz")
        metrics = c.get("/metrics").text
        assert topic_size(bootstrap, settings.topic) == before
    assert single.status_code == batch.status_code == 503
    assert single.json()["error"] == batch.json()["error"] == "not_ready"
    assert ready.status_code == 503 and "fenced by a newer producer" in ready.json()["reason"]
    assert _sample(metrics, "ingest_events_rejected_total", mode=mode, reason="fatal") == 4


def test_fire_and_forget_failures_after_the_202_are_counted_and_logged(
        bootstrap: str, seed_event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    # No such topic and none created: every accepted event expires after message.timeout.ms.
    settings = make_settings(bootstrap, mode="fire-and-forget", create_topic=False,
                             producer_config={"message.timeout.ms": 1000})
    with run_service(settings) as running, running.client() as c:
        ids = [c.post("/", json=seed_event) for _ in range(4)]
        assert [r.status_code for r in ids] == [202] * 4
        deadline = time.monotonic() + 20
        while True:
            text = c.get("/metrics").text
            failed = sum(float(v) for v in re.findall(
                r'^ingest_events_failed_total\{mode="fire-and-forget",reason="[^"]+"\} (\S+)$',
                text, re.MULTILINE))
            if failed >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert failed == 4
    assert _sample(text, "ingest_events_delivered_total", mode="fire-and-forget") == 0
    logged = [r for r in caplog.records if r.getMessage() == "events failed delivery"]
    assert logged and set(logged[0].sample_event_ids) <= {r.text for r in ids}  # type: ignore[attr-defined]
