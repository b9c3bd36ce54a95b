"""The app as a process sees it: the entry of every request, and the lifespan's hold on
the garbage collector (what start-up built is frozen while the service serves, so a full
collection walks only what requests left, and released at shutdown)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from fastapi import FastAPI

from service.app import ServiceApp, create_app
from tests.service.harness import make_settings, run_service


async def get(app: ServiceApp, path: str) -> tuple[int, bytes, dict[str, Any]]:
    """One GET straight into the app, as uvicorn would hand it over: status, body, scope."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    answer: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    await app(scope, receive, send)
    return answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:]), scope


def test_a_request_enters_the_stack_without_fastapis_per_request_layers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's __call__ (its telemetry check) and Starlette's cost two coroutine layers per
    request for one assignment: 4% of a fire-and-forget request's CPU (service/README.md)."""
    app = create_app(make_settings("127.0.0.1:1"))
    assert asyncio.run(get(app, "/healthz"))[0] == 200  # the first builds the stack

    async def layered(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("went through FastAPI.__call__")

    monkeypatch.setattr(FastAPI, "__call__", layered)
    status, body, scope = asyncio.run(get(app, "/healthz"))
    assert (status, body) == (200, b'{"status":"ok"}') and scope["app"] is app
    # An app mounted under a root path still gets FastAPI's handling of it.
    app.root_path = "/ingest"
    with pytest.raises(AssertionError, match=r"FastAPI\.__call__"):
        asyncio.run(get(app, "/healthz"))


@pytest.mark.kafka
def test_the_started_heap_is_frozen_while_serving_and_released_at_shutdown(
        bootstrap: str, seed_event: dict[str, Any]) -> None:
    gc.unfreeze()
    with run_service(make_settings(bootstrap, mode="durable")) as service, service.client() as c:
        assert c.post("/", json=seed_event).status_code == 200
        frozen = gc.get_freeze_count()
        # Start-up's objects (the app, its routes and schemas, the producer) are out of the
        # collector's reach; what a full pass walks is a small rest.
        assert frozen > 50_000
        assert len(gc.get_objects(generation=2)) < frozen / 10
    assert gc.get_freeze_count() == 0
