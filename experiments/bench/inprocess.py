"""The app's own CPU per request, without a server or a network: ASGI calls in-process.

uvicorn's share of a request (parsing, the transport, the event loop) is the same for
every app; what differs is the app. Calling the ASGI apps directly with a prebuilt scope
and body, and charging this thread's CPU time (not wall time, so other processes on a
shared machine disturb it little), isolates that part: the raw ASGI app, the service's
hot path and FastAPI's routing of the same routes, the no-op routes (no Kafka).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message

from experiments.bench.raw_asgi import app as raw_app
from experiments.bench.raw_asgi import guarded_app
from service import Settings, create_app

EVENT: dict[str, Any] = {"client_id": "test", "name": "hello_event", "data": {"test": "value"}}


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2), "state": {},
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]}


async def _cpu_us_per_call(app: ASGIApp, path: str, body: bytes, calls: int) -> float:
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: set[int] = set()

    async def receive() -> Message:
        return message

    async def send(sent: Message) -> None:
        if sent["type"] == "http.response.start":
            statuses.add(sent["status"])

    started = time.thread_time()
    for _ in range(calls):
        await app(_scope(path, body), receive, send)
    spent = time.thread_time() - started
    if not statuses <= {200, 202}:
        raise RuntimeError(f"{path} answered {statuses}")
    return spent / calls * 1e6


async def _measure(calls: int, rounds: int, batch: int) -> dict[str, float]:
    # No broker is reached: the no-op routes never produce and the lifespan is not run.
    settings = dict(bench_endpoints=True, create_topic=False, bootstrap_servers="127.0.0.1:1")
    hot = create_app(Settings(**settings))
    fastapi = create_app(Settings(hot_path=False, **settings))
    single, many = orjson.dumps(EVENT), orjson.dumps([EVENT] * batch)
    cases = {
        "raw ASGI app, single": (raw_app, "/", single, calls),
        "raw ASGI app behind the guard middleware, single": (guarded_app, "/", single, calls),
        "no-op, single, hot path": (hot, "/_bench/noop", single, calls),
        "no-op, single, FastAPI routing": (fastapi, "/_bench/noop", single, calls),
        f"no-op, batch of {batch}, hot path": (hot, "/_bench/noop/batch", many, calls // batch),
        f"no-op, batch of {batch}, FastAPI routing": (fastapi, "/_bench/noop/batch", many,
                                                      calls // batch),
    }
    best = {name: float("inf") for name in cases}
    for app, path, body, n in cases.values():
        await _cpu_us_per_call(app, path, body, max(10, n // 10))  # warm-up
    # Interleaved rounds, best of each: the least disturbed round is closest to the cost.
    for _ in range(rounds):
        for name, (app, path, body, n) in cases.items():
            best[name] = min(best[name], await _cpu_us_per_call(app, path, body, n))
    return {name: round(value, 2) for name, value in best.items()}


def app_cost(calls: int = 3000, rounds: int = 5, batch: int = 100) -> dict[str, float]:
    """Best-of-`rounds` CPU microseconds per request of each app, in-process."""
    return asyncio.run(_measure(calls, rounds, batch))
