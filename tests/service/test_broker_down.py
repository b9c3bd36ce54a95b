"""The same running service across a broker outage: 503 in time, not ready, then recovery."""

from __future__ import annotations

import time
from typing import Any

import pytest

from experiments.kafka import LocalKafka
from tests.service.harness import make_settings, records_by_key, run_service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MESSAGE_TIMEOUT_S = 2.0
READY_TIMEOUT_S = 1.0


def test_durable_service_survives_a_broker_outage(own_broker: LocalKafka, seed_event: dict[str, Any]) -> None:
    state = own_broker.status()
    assert state is not None
    settings = make_settings(
        state.bootstrap, mode="durable", ready_timeout_s=READY_TIMEOUT_S,
        producer_config={"message.timeout.ms": int(MESSAGE_TIMEOUT_S * 1000),
                         "reconnect.backoff.max.ms": 500},
    )
    with run_service(settings) as service, service.client() as c:
        assert c.post("/", json=seed_event).status_code == 200
        assert c.get("/readyz").status_code == 200

        own_broker.stop(keep_data=True)

        started = time.monotonic()
        response = c.post("/", json=seed_event)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert elapsed < MESSAGE_TIMEOUT_S + 1.5
        body = response.json()
        assert body["error"] == "delivery_failed"
        assert body["reason"] == "_MSG_TIMED_OUT"
        assert response.headers["retry-after"] == "1"

        started = time.monotonic()
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert time.monotonic() - started < READY_TIMEOUT_S + 1.0
        assert c.get("/healthz").status_code == 200

        own_broker.start()

        deadline = time.monotonic() + 30
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "service never became ready again"
            time.sleep(0.2)
        recovered = c.post("/", json=seed_event)
        assert recovered.status_code == 200, recovered.text
        found = records_by_key(state.bootstrap, settings.topic)
        assert recovered.text in found
        assert response.json()["event_id"] not in found
        metrics = c.get("/metrics").text
    assert 'ingest_events_failed_total{mode="durable",reason="_MSG_TIMED_OUT"} 1.0' in metrics
