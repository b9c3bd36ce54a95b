"""Every bad-input class: the status, a clear JSON error, and nothing new in the topic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.service.harness import make_settings, run_service, topic_size

pytestmark = pytest.mark.kafka

LIMIT = 4096
MAX_EVENTS = 5
GOOD = {"client_id": "c", "name": "n", "data": {"k": "v"}}


@pytest.fixture(scope="module", params=[True, False], ids=["hot-path", "fastapi-routing"])
def service(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Any]:
    settings = make_settings(bootstrap, max_body_bytes=LIMIT, max_batch_events=MAX_EVENTS,
                            hot_path=request.param)
    with run_service(settings) as running:
        yield running


@pytest.fixture
def client(service: Any, bootstrap: str) -> Iterator[httpx.Client]:
    """A client, and afterwards proof that the request published nothing."""
    publisher = service.app.state.ingest.publisher
    produced_before = publisher._produced
    size_before = topic_size(bootstrap, service.settings.topic)
    with service.client() as c:
        yield c
    assert publisher._produced == produced_before, "a rejected request reached the producer"
    assert topic_size(bootstrap, service.settings.topic) == size_before


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert "Traceback" not in response.text
    return body


JSON_ROUTES = ["/", "/v1/events", "/v1/events/batch"]


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_malformed_json_is_400(client: httpx.Client, route: str) -> None:
    response = client.post(route, content=b'{"client_id": "c",', headers={"content-type":
                                                                         "application/json"})
    assert "not valid JSON" in _error(response, 400, "malformed_json")["message"]


def test_malformed_ndjson_line_is_400_naming_it(client: httpx.Client) -> None:
    body = b"\n".join([orjson.dumps(GOOD), b"{oops", orjson.dumps(GOOD)])
    response = client.post("/v1/events/batch", content=body,
                           headers={"content-type": "application/x-ndjson"})
    assert _error(response, 400, "malformed_json")["invalid_indexes"] == [1]


@pytest.mark.parametrize("route", ["/", "/v1/events"])
def test_schema_violation_is_422_with_field_paths(client: httpx.Client, route: str) -> None:
    response = client.post(route, json={"client_id": 7, "data": {}})
    body = _error(response, 422, "validation_failed")
    fields = {e["field"]: e["type"] for e in body["errors"]}
    assert fields == {"client_id": "string_type", "name": "missing"}


def test_one_bad_event_rejects_the_whole_batch(client: httpx.Client) -> None:
    batch = [GOOD, GOOD, {"client_id": "c", "name": "n", "data": "not an object"}, GOOD,
             {"client_id": "c", "data": {}}]
    body = _error(client.post("/v1/events/batch", json=batch), 422, "validation_failed")
    assert body["invalid_indexes"] == [2, 4]
    assert {(e["index"], e["field"]) for e in body["errors"]} == {(2, "data"), (4, "name")}


@pytest.mark.parametrize(("route", "content_type"), [
    ("/", "text/plain"), ("/", None), ("/v1/events", "application/x-www-form-urlencoded"),
    ("/v1/events", "application/x-ndjson"), ("/v1/events/batch", "text/csv"),
])
def test_wrong_content_type_is_415(client: httpx.Client, route: str,
                                   content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(route, content=orjson.dumps(GOOD), headers=headers)
    assert "Content-Type" in _error(response, 415, "unsupported_media_type")["message"]


def test_charset_parameter_is_accepted(service: Any, seed_event: dict[str, Any]) -> None:
    with service.client() as c:
        response = c.post("/v1/events", content=orjson.dumps(seed_event),
                          headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_body_over_the_limit_is_413(client: httpx.Client, route: str) -> None:
    event = {"client_id": "c", "name": "n", "data": {"pad": "x" * LIMIT}}
    body = orjson.dumps([event] if route.endswith("batch") else event)
    response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert _error(response, 413, "payload_too_large")["limit"] == LIMIT


def test_chunked_body_over_the_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"client_id": "c", "name": "n", "data": {"pad": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    response = client.post("/", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _error(response, 413, "payload_too_large")


def test_too_many_events_in_a_batch_is_413(client: httpx.Client) -> None:
    response = client.post("/v1/events/batch", json=[GOOD] * (MAX_EVENTS + 1))
    body = _error(response, 413, "payload_too_large")
    assert (body["limit"], body["count"]) == (MAX_EVENTS, MAX_EVENTS + 1)


def test_empty_batch_is_422(client: httpx.Client) -> None:
    _error(client.post("/v1/events/batch", json=[]), 422, "validation_failed")


def test_unknown_route_is_404(client: httpx.Client) -> None:
    body = _error(client.post("/v2/events", json=GOOD), 404, "not_found")
    assert "/v2/events" in body["message"]


@pytest.mark.parametrize(("method", "route"), [("GET", "/"), ("PUT", "/v1/events"),
                                               ("GET", "/v1/events/batch"), ("POST", "/healthz")])
def test_wrong_method_is_405(client: httpx.Client, method: str, route: str) -> None:
    response = client.request(method, route)
    _error(response, 405, "method_not_allowed")
    assert "allow" in response.headers


def test_unexpected_errors_are_500_without_a_trace(bootstrap: str) -> None:
    from service import create_app

    settings = make_settings(bootstrap)
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/explode", explode, methods=["GET"])
    with run_service(settings, app=app) as running, running.client() as c:
        response = c.get("/explode")
    body = _error(response, 500, "internal_error")
    assert "secret internals" not in response.text
    assert body == {"error": "internal_error", "message": "internal server error"}


def test_hopeless_input_gets_a_short_refusal_and_publishes_nothing(bootstrap: str) -> None:
    """A 30 KB batch of 10,000 `{}` once got a 2.7 MB 422, an event with 95,000 unknown
    keys a 9.5 MB one: every refusal now lists at most 100 errors, with their total."""
    settings = make_settings(bootstrap, max_body_bytes=2 * 2**20, max_batch_events=10_000)
    hopeless = b"[" + b",".join([b"{}"] * 10_000) + b"]"
    crowded = orjson.dumps({**GOOD, **{f"key-{i}": 1 for i in range(95_000)}})
    with run_service(settings) as running, running.client() as c:
        before = topic_size(bootstrap, settings.topic)
        batch = c.post("/v1/events/batch", content=hopeless, headers={"content-type": "application/json"})
        single = c.post("/v1/events", content=crowded, headers={"content-type": "application/json"})
        assert topic_size(bootstrap, settings.topic) == before
    assert batch.status_code == single.status_code == 422
    assert len(batch.content) < 20_000 and len(single.content) < 20_000
    assert len(batch.json()["errors"]) == 100 and batch.json()["errors_truncated"] is True
    assert single.json()["error_count"] == 95_000 and len(single.json()["errors"]) == 100
