"""Overload answers 503 with Retry-After, publishes nothing of the refused request, and the
service keeps serving."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest

from tests.service.harness import make_settings, run_service, topic_size, wait_for_keys

pytestmark = pytest.mark.kafka
LINGER_MS = 1500


def _overloaded(response: Any, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert (body["error"], body["reason"]) == ("overloaded", reason)


def test_full_buffer_in_fire_and_forget(bootstrap: str, seed_event: dict[str, Any]) -> None:
    settings = make_settings(bootstrap, mode="fire-and-forget", producer_config={
        "queue.buffering.max.messages": 5, "linger.ms": LINGER_MS})
    with run_service(settings) as service, service.client() as c:
        answers = [c.post("/", json=seed_event) for _ in range(8)]
        assert [a.status_code for a in answers] == [202] * 5 + [503] * 3
        _overloaded(answers[-1], "_QUEUE_FULL")
        assert c.get("/healthz").status_code == 200
        # Once the lingering events are sent, the same service accepts again.
        deadline = time.monotonic() + 10
        refused = 3
        later = c.post("/", json=seed_event)
        while later.status_code == 503 and time.monotonic() < deadline:
            refused += 1
            time.sleep(0.1)
            later = c.post("/", json=seed_event)
        assert later.status_code == 202
        accepted = {a.text for a in answers[:5]} | {later.text}
        found = wait_for_keys(bootstrap, settings.topic, accepted)
        assert accepted <= found.keys()
        assert len(found) == len(accepted)
        metrics = c.get("/metrics").text
    assert ('ingest_events_rejected_total{mode="fire-and-forget",reason="_QUEUE_FULL"} '
            f"{refused:.1f}") in metrics


@pytest.mark.parametrize("mode", ["fire-and-forget", "durable"])
def test_in_flight_bound(bootstrap: str, seed_event: dict[str, Any],
                         mode: str) -> None:
    settings = make_settings(bootstrap, mode=mode, max_in_flight=3, max_batch_events=3,
                            producer_config={"linger.ms": LINGER_MS})
    with run_service(settings) as service:
        publisher = service.app.state.ingest.publisher
        if mode == "durable":
            # Three durable requests wait for their reports; hold them open concurrently.
            def post_one() -> Any:
                with service.client() as c:
                    return c.post("/", json=seed_event)

            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                waiting = [pool.submit(post_one) for _ in range(3)]
                deadline = time.monotonic() + 5
                while publisher.in_flight < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                with service.client() as c:
                    _overloaded(c.post("/", json=seed_event), "too_many_in_flight")
                    _overloaded(c.post("/v1/events/batch", json=[seed_event] * 2),
                                "too_many_in_flight")
                assert [w.result().status_code for w in waiting] == [200] * 3
        else:
            with service.client() as c:
                assert [c.post("/", json=seed_event).status_code for _ in range(3)] == [202] * 3
                _overloaded(c.post("/", json=seed_event), "too_many_in_flight")
                _overloaded(c.post("/v1/events/batch", json=[seed_event]), "too_many_in_flight")
        with service.client() as c:
            deadline = time.monotonic() + 10
            while publisher.in_flight and time.monotonic() < deadline:
                time.sleep(0.05)
            # What reached Kafka: the three admitted events, none of the refused requests.
            assert topic_size(bootstrap, settings.topic) == 3
            assert c.post("/v1/events/batch", json=[seed_event] * 3).status_code in (200, 202)
