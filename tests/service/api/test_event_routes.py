"""Each mode on each ingest endpoint: the event reaches the topic, keyed by the returned id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from service.kafka import DeliveryBridge
from service.modes import ProducerMode
from tests.service.harness import make_settings, records_by_key, run_service, wait_for_keys

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module", params=[(m.value, b.value) for b in DeliveryBridge
                                        for m in ProducerMode], ids="-".join)
def service(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Any]:
    mode, bridge = request.param
    settings = make_settings(bootstrap, mode=mode, delivery_bridge=bridge)
    with run_service(settings) as running:
        yield running


def _events(n: int) -> list[dict[str, Any]]:
    return [{"client_id": f"c{i}", "name": "batch_event", "data": {"i": i, "nested": {"ok": True}}}
            for i in range(n)]


def _assert_in_topic(bootstrap: str, topic: str, sent: dict[str, dict[str, Any]]) -> None:
    found = wait_for_keys(bootstrap, topic, set(sent))
    for event_id, event in sent.items():
        assert event_id in found, f"event {event_id} not in topic"
        value = found[event_id]["value"]
        assert value["event_id"] == event_id
        assert {k: value[k] for k in ("client_id", "name", "data")} == event
        assert value["received_at"].endswith("+00:00")


def test_seed_route_answers_the_id_as_text(service: Any, bootstrap: str,
                                           seed_event: dict[str, Any]) -> None:
    with service.client() as client:
        response = client.post("/", json=seed_event)
    durable = service.settings.mode is ProducerMode.DURABLE
    assert response.status_code == (200 if durable else 202)
    assert response.headers["content-type"].startswith("text/plain")
    event_id = response.text
    assert len(event_id) == 36
    _assert_in_topic(bootstrap, service.settings.topic, {event_id: seed_event})


def test_single_event_route_answers_json(service: Any, bootstrap: str,
                                         seed_event: dict[str, Any]) -> None:
    with service.client() as client:
        response = client.post("/v1/events", json=seed_event)
    body = response.json()
    event_id = body["event_id"]
    _assert_in_topic(bootstrap, service.settings.topic, {event_id: seed_event})
    if service.settings.mode is ProducerMode.DURABLE:
        assert response.status_code == 200
        assert body["status"] == "delivered"
        record = records_by_key(bootstrap, service.settings.topic)[event_id]
        assert (body["partition"], body["offset"]) == (record["partition"], record["offset"])
    else:
        assert response.status_code == 202
        assert body == {"event_id": event_id, "status": "accepted"}


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_batch_answers_per_event_results_in_order(service: Any, bootstrap: str,
                                                  content_type: str) -> None:
    events = _events(25)
    if content_type == "application/json":
        body = orjson.dumps(events)
    else:
        body = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
    with service.client() as client:
        response = client.post("/v1/events/batch", content=body,
                               headers={"content-type": content_type})
    payload = response.json()
    results = payload["results"]
    assert len(results) == len(events)
    assert len({r["event_id"] for r in results}) == len(events)
    sent = {r["event_id"]: e for r, e in zip(results, events, strict=True)}
    _assert_in_topic(bootstrap, service.settings.topic, sent)
    found = records_by_key(bootstrap, service.settings.topic)
    if service.settings.mode is ProducerMode.DURABLE:
        assert response.status_code == 200
        assert payload["delivered"] == len(events)
        for r in results:
            assert r["status"] == "delivered"
            assert (r["partition"], r["offset"]) == (found[r["event_id"]]["partition"],
                                                     found[r["event_id"]]["offset"])
        # One partition, one batch request: offsets follow the request order.
        offsets = [r["offset"] for r in results]
        assert offsets == sorted(offsets)
    else:
        assert response.status_code == 202
        assert payload["accepted"] == len(events)
        assert {r["status"] for r in results} == {"accepted"}
