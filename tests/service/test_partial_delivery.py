"""A batch that is only partly published answers 503 with every event's outcome."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from experiments.kafka import unique_topic
from tests.service.harness import make_settings, records_by_key, run_service, wait_for_keys

pytestmark = pytest.mark.kafka


def _events(n: int, pad: int = 150) -> list[dict[str, Any]]:
    return [{"client_id": "c", "name": f"e{i}", "data": {"pad": "x" * pad}} for i in range(n)]


def test_durable_batch_with_a_broker_rejected_event(bootstrap: str) -> None:
    # The topic refuses records over 1000 bytes; one record per produce request so the
    # broker rejects exactly the big event and accepts its neighbours.
    topic = unique_topic("svc-small")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "1000"})])[
        topic].result(30)
    settings = make_settings(bootstrap, topic=topic,
                            producer_config={"batch.num.messages": 1, "linger.ms": 0})
    events = _events(5)
    events[2]["data"]["pad"] = "x" * 3000
    with run_service(settings) as service, service.client() as c:
        response = c.post("/v1/events/batch", json=events)
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "partial_delivery"
        assert (body["published"], body["failed"]) == (4, 1)
        assert "retry-after" not in response.headers  # the failure is not retriable
        results = body["results"]
        assert [r["status"] for r in results] == ["delivered"] * 2 + ["failed"] + ["delivered"] * 2
        assert results[2]["error"] == "MSG_SIZE_TOO_LARGE" and results[2]["retriable"] is False
        # The service keeps going after a per-event failure.
        assert c.post("/v1/events", json=events[0]).status_code == 200
    found = records_by_key(bootstrap, topic)
    delivered = {r["event_id"] for r in results if r["status"] == "delivered"}
    assert delivered <= found.keys()
    assert results[2]["event_id"] not in found


def test_fire_and_forget_batch_overflowing_the_buffer(bootstrap: str) -> None:
    # A 2 KiB buffer holds a few of these events; librdkafka refuses the rest mid-batch.
    settings = make_settings(bootstrap, mode="fire-and-forget", producer_config={
        "queue.buffering.max.kbytes": 2, "linger.ms": 1000})
    with run_service(settings) as service, service.client() as c:
        response = c.post("/v1/events/batch", json=_events(20))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        body = response.json()
        results = body["results"]
        statuses = [r["status"] for r in results]
        accepted = statuses.count("accepted")
        assert 0 < accepted < 20
        assert statuses == ["accepted"] * accepted + ["rejected"] * (20 - accepted)
        assert all(r["retriable"] for r in results[accepted:])
        assert (body["published"], body["failed"]) == (accepted, 20 - accepted)
    found = wait_for_keys(bootstrap, settings.topic,
                              {r["event_id"] for r in results[:accepted]})
    assert set(found) == {r["event_id"] for r in results[:accepted]}
