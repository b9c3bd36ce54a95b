"""The ingest hot path: what it adds beside the routes it serves (headers, ids, stamps, 500s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from experiments.kafka import read_topic
from service import create_app
from service.events import RecordMaker, parse_event, received_at
from service.ingest import RECORD_HEADERS_KEY, accepted_answer, accepted_results
from tests.service.harness import make_settings, run_service, wait_for_keys

EVENT = parse_event(b'{"client_id": "c", "name": "n", "data": {}}')


class _Stamp:
    """An outer middleware like an authenticating one: names the publisher in a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RECORD_HEADERS_KEY] = [("publisher-key", b"key-7")]
        await self.app(scope, receive, send)


@pytest.fixture(scope="module", params=["durable", "fire-and-forget"])
def stamped(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Any]:
    settings = make_settings(bootstrap, mode=request.param)
    app = create_app(settings)
    app.add_middleware(_Stamp)
    with run_service(settings, app=app) as running:
        yield running


@pytest.mark.kafka
def test_an_outer_middleware_adds_record_headers(stamped: Any, bootstrap: str,
                                                 seed_event: dict[str, Any]) -> None:
    with stamped.client() as c:
        # A busy machine can take longer than the start-up wait to create the topic.
        deadline = time.monotonic() + 60
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        single = c.post("/", json=seed_event)
        batch = c.post("/v1/events/batch", json=[seed_event] * 3)
    assert single.status_code in (200, 202) and batch.status_code in (200, 202)
    ids = {single.text} | {r["event_id"] for r in batch.json()["results"]}
    wait_for_keys(bootstrap, stamped.settings.topic, ids)
    headers = {msg.key().decode(): msg.headers()
               for msg in read_topic(bootstrap, stamped.settings.topic)}
    assert {k: headers[k] for k in ids} == {k: [("publisher-key", b"key-7")] for k in ids}


@pytest.mark.kafka
def test_an_unexpected_error_on_the_hot_path_is_a_counted_500(
        bootstrap: str, seed_event: dict[str, Any]) -> None:
    settings = make_settings(bootstrap, mode="fire-and-forget")
    app = create_app(settings)

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("secret internals")

    app.state.ingest.publisher.publish_nowait = explode
    with run_service(settings, app=app) as running:
        with running.client() as c:
            response = c.post("/", json=seed_event)
        # uvicorn closes a connection whose request raised, as before the hot path.
        with running.client() as c:
            metrics = c.get("/metrics").text
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "internal server error"}
    assert 'ingest_http_requests_total{method="POST",route="/",status="500"} 1.0' in metrics


def test_record_maker_ids_are_unique_uuid4_across_blocks() -> None:
    maker = RecordMaker(block=8)
    ids = [maker.record(EVENT).event_id for _ in range(20)]
    ids += [r.event_id for r in maker.records([EVENT] * 30)]
    assert len(set(ids)) == 50
    for text in ids:
        assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4


def test_record_maker_stamps_like_received_at() -> None:
    maker = RecordMaker()
    before = datetime.fromisoformat(received_at())
    record = maker.record(parse_event(b'{"client_id": "c", "name": "n", "data": {"k": 1}}'))
    after = datetime.fromisoformat(received_at())
    value = orjson.loads(record.value)
    stamp = value.pop("received_at")
    assert value == {"event_id": record.event_id, "client_id": "c", "name": "n", "data": {"k": 1}}
    assert len(stamp) == len(received_at()) and stamp.endswith("+00:00")
    assert before <= datetime.fromisoformat(stamp) <= after


def test_record_maker_stamps_pad_the_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    maker = RecordMaker()
    for micros, text in ((42, "000042"), (0, "000000"), (999_999, "999999")):
        ns = (1_800_000_000 * 1_000_000 + micros) * 1000
        monkeypatch.setattr("service.events.time.time_ns", lambda ns=ns: ns)
        assert maker.stamp() == f"2027-01-15T08:00:00.{text}+00:00"


def test_the_joined_batch_answer_is_what_orjson_writes() -> None:
    records = RecordMaker().records([EVENT] * 3)
    answer = accepted_answer(records, 202)
    assert answer.status == 202
    assert answer.body == orjson.dumps({"accepted": 3, "results": accepted_results(records)})


def test_the_joined_delivered_answer_is_what_orjson_writes() -> None:
    from service.ingest import delivered_answer, event_result
    from service.kafka.delivery import Outcome

    records = RecordMaker().records([EVENT] * 3)
    outcomes = [Outcome(None, False, p, o) for p, o in ((0, 0), (11, 2**40), (3, 77))]
    answer = delivered_answer(records, outcomes)
    assert answer.status == 200
    assert answer.body == orjson.dumps({"delivered": 3, "results": [
        event_result(r, o) for r, o in zip(records, outcomes, strict=True)]})


def test_every_post_route_of_the_document_is_on_the_hot_path() -> None:
    """The ingest routes are declared once (service.routes): each one in the OpenAPI
    document is served by the hot path, with the function FastAPI's route calls."""
    from service.ingest import IngestRoutes, handler_of
    from service.metrics import Metrics
    from service.middleware import RequestCounter
    from service.routes import bench, events, ops, seed
    from service.settings import Settings

    app = create_app(Settings(bench_endpoints=True, create_topic=False))
    posts = {path for path, ops in app.openapi()["paths"].items() if "post" in ops}
    routes = [route for router in (seed, events, ops, bench) for route in router.routes]
    hot = IngestRoutes(app, app.state.ingest, routes, RequestCounter(Metrics()))
    assert set(hot.table) == posts == {"/", "/v1/events", "/v1/events/batch", "/_bench/noop",
                                       "/_bench/noop/batch"}
    assert all(handler_of(route) is handler for handler, route in hot.table.values())
