"""Liveness, readiness with the effective config, metrics, OpenAPI and the no-op ceiling."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.service.harness import make_settings, records_by_key, run_service, wait_for_keys

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def service(bootstrap: str) -> Iterator[Any]:
    settings = make_settings(bootstrap, mode="fire-and-forget", bench_endpoints=True,
                            producer_config={"linger.ms": 2, "compression.type": "lz4",
                                             "sasl.password": "hunter2"})
    with run_service(settings) as running:
        yield running


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_healthz(service: Any) -> None:
    with service.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}


def test_readyz_shows_mode_topic_and_masked_effective_config(service: Any) -> None:
    with service.client() as c:
        response = c.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True
    assert body["mode"] == "fire-and-forget"
    assert body["topic"] == service.settings.topic
    config = body["producer_config"]
    assert config["linger.ms"] == 2 and config["compression.type"] == "lz4"
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    assert config["sasl.password"] == "***"
    assert "hunter2" not in response.text


def test_metrics_count_requests_and_events(service: Any, bootstrap: str,
                                           seed_event: dict[str, Any]) -> None:
    with service.client() as c:
        before = c.get("/metrics").text
        ids = [c.post("/", json=seed_event).text for _ in range(3)]
        c.post("/", content=b"{", headers={"content-type": "application/json"})
        c.get("/no/such/route")
        wait_for_keys(bootstrap, service.settings.topic, set(ids))
        # The record can be readable a moment before its delivery report is counted.
        deadline = time.monotonic() + 10
        while True:
            after = c.get("/metrics")
            text = after.text
            done = _sample(text, "ingest_events_delivered_total", mode="fire-and-forget") - \
                _sample(before, "ingest_events_delivered_total", mode="fire-and-forget")
            if done >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert after.headers["content-type"].startswith("text/plain")

    def delta(name: str, **labels: str) -> float:
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert delta("ingest_http_requests_total", route="/", method="POST", status="202") == 3
    assert delta("ingest_http_requests_total", route="/", method="POST", status="400") == 1
    assert delta("ingest_http_requests_total", route="unmatched", status="404") == 1
    assert delta("ingest_events_accepted_total", mode="fire-and-forget") == 3
    # Reports are counted by the poll thread right after it serves them.
    assert delta("ingest_events_delivered_total", mode="fire-and-forget") == 3
    assert delta("ingest_delivery_latency_seconds_count", mode="fire-and-forget") == 3
    for name in ("ingest_producer_queue_depth", "ingest_in_flight_deliveries",
                 "ingest_events_failed_total", "ingest_events_rejected_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_routes_other_than_ingest_are_counted_by_their_template(service: Any) -> None:
    with service.client() as c:
        before = c.get("/metrics").text
        c.get("/healthz")
        c.get("/healthz")
        text = c.get("/metrics").text
    labels = {"route": "/healthz", "method": "GET", "status": "200"}
    assert _sample(text, "ingest_http_requests_total", **labels) - \
        _sample(before, "ingest_http_requests_total", **labels) == 2


def test_openapi_documents_every_route(service: Any) -> None:
    with service.client() as c:
        assert c.get("/docs").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/", "/v1/events", "/v1/events/batch", "/healthz", "/readyz", "/metrics"} <= set(paths)
    schema = paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"client_id", "name", "data"}


def test_bench_noop_validates_like_the_seed_route_but_never_produces(
        service: Any, bootstrap: str, seed_event: dict[str, Any]) -> None:
    publisher = service.app.state.ingest.publisher
    produced = publisher._produced
    with service.client() as c:
        ok = c.post("/_bench/noop", json=seed_event)
        bad = c.post("/_bench/noop", json={"client_id": 1})
        wrong_type = c.post("/_bench/noop", content=b"{}", headers={"content-type": "text/plain"})
    assert ok.status_code == 200 and len(ok.text) == 36
    assert bad.status_code == 422 and wrong_type.status_code == 415
    assert publisher._produced == produced
    assert ok.text not in records_by_key(bootstrap, service.settings.topic)


def test_bench_noop_batch_mirrors_the_batch_route(service: Any, seed_event: dict[str, Any]) -> None:
    publisher = service.app.state.ingest.publisher
    produced = publisher._produced
    with service.client() as c:
        ok = c.post("/_bench/noop/batch", json=[seed_event] * 4)
        bad = c.post("/_bench/noop/batch", json=[seed_event, {"client_id": 1}])
    assert ok.status_code == 200
    assert ok.json()["accepted"] == 4 and len({r["event_id"] for r in ok.json()["results"]}) == 4
    assert bad.status_code == 422 and bad.json()["invalid_indexes"] == [1]
    assert publisher._produced == produced


def test_readyz_is_not_ready_without_the_topic(bootstrap: str) -> None:
    settings = make_settings(bootstrap, create_topic=False)
    with run_service(settings) as running, running.client() as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and settings.topic in body["reason"]


def test_bench_endpoints_are_off_by_default(bootstrap: str, seed_event: dict[str, Any]) -> None:
    with run_service(make_settings(bootstrap)) as running, running.client() as c:
        assert c.post("/_bench/noop", json=seed_event).status_code == 404
        assert c.post("/_bench/noop/batch", json=[seed_event]).status_code == 404
