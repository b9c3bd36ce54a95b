"""The app's own CPU per request, without a server or a network: ASGI calls in-process.

uvicorn's share of a request (parsing, the transport, the event loop) is the same for
every app; what differs is the app. Calling the ASGI apps directly with a prebuilt scope
and body, and charging this thread's CPU time (not wall time, so other processes on a
shared machine disturb it little), isolates that part: the raw ASGI app, the service's
hot path and FastAPI's routing of the same routes, the no-op routes (no Kafka).

The server's Python share is measured the same way: uvicorn's httptools protocol fed
request bytes, answering into a transport that keeps nothing (no sockets, no
syscalls), with its plain protocol and with the service's guarded one, so the guard's
cost per request is read without the network's noise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import uvloop
from starlette.types import ASGIApp, Message
from uvicorn.config import Config
from uvicorn.server import ServerState

from experiments.bench.raw_asgi import FIXED_ID, GuardedProtocol, guarded_app
from experiments.bench.raw_asgi import app as raw_app
from service import Settings, create_app
from service.guard import NoDelayProtocol

EVENT: dict[str, Any] = {"client_id": "test", "name": "hello_event", "data": {"test": "value"}}


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2), "state": {},
            "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]}


async def _cpu_us_per_call(app: ASGIApp, path: str, body: bytes, calls: int,
                           expect: frozenset[int] = frozenset({200, 202})) -> float:
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
    if not statuses <= expect:
        raise RuntimeError(f"{path} answered {statuses}")
    return spent / calls * 1e6


class _NullTransport(asyncio.Transport):
    """What uvicorn's protocol writes to: it keeps nothing and wakes `answered` once the
    raw app's answer (it ends with the fixed id) has been written."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: asyncio.Future[None] | None = None
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data).endswith(FIXED_ID) and self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # nothing is ever buffered, so the protocol is never paused

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _server_us_per_request(protocol: Callable[..., asyncio.Protocol], app: ASGIApp,
                                 body: bytes, calls: int) -> float:
    """uvicorn's protocol serving `calls` keep-alive requests of the raw app, in-process."""
    request = (b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    config = Config(app=app, loop="none", http="httptools", log_config=None, access_log=False)
    config.load()
    server = protocol(config=config, server_state=ServerState(), app_state={})
    transport = _NullTransport()
    server.connection_made(transport)
    loop = asyncio.get_running_loop()
    try:
        started = time.thread_time()
        for _ in range(calls):
            transport.answered = loop.create_future()
            server.data_received(request)
            await transport.answered
        return (time.thread_time() - started) / calls * 1e6
    finally:
        server.connection_lost(None)


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


async def _measure_servers(calls: int, rounds: int) -> dict[str, float]:
    servers = {
        "uvicorn's httptools protocol serving the raw ASGI app": (NoDelayProtocol, raw_app),
        "the same, guarded protocol and guard middleware": (GuardedProtocol, guarded_app),
    }
    single = orjson.dumps(EVENT)
    best = {name: float("inf") for name in servers}
    for protocol, app in servers.values():
        await _server_us_per_request(protocol, app, single, max(10, calls // 10))  # warm-up
    for _ in range(rounds):
        for name, (protocol, app) in servers.items():
            best[name] = min(best[name],
                             await _server_us_per_request(protocol, app, single, calls))
    return {name: round(value, 2) for name, value in best.items()}


# Hostile refusals: what a client can make the loop spend on one 422 (both bounded by
# service.events.MAX_REPORTED_ERRORS).
HOSTILE = {
    "refusal: batch of 10,000 empty events (422)": (
        "/_bench/noop/batch", b"[" + b",".join([b"{}"] * 10_000) + b"]"),
    "refusal: one event with 95,000 unknown keys (422)": (
        "/_bench/noop", orjson.dumps({**EVENT, **{f"key-{i}": 1 for i in range(95_000)}})),
}


async def _measure_refusals(rounds: int) -> dict[str, float]:
    settings = dict(bench_endpoints=True, create_topic=False, bootstrap_servers="127.0.0.1:1",
                    max_body_bytes=4 * 2**20)
    app = create_app(Settings(**settings))
    best = {name: float("inf") for name in HOSTILE}
    for _ in range(rounds):
        for name, (path, body) in HOSTILE.items():
            best[name] = min(best[name], await _cpu_us_per_call(app, path, body, 3,
                                                                expect=frozenset({422})))
    return {name: round(value, 1) for name, value in best.items()}


def app_cost(calls: int = 3000, rounds: int = 5, batch: int = 100) -> dict[str, float]:
    """Best-of-`rounds` CPU microseconds per request of each app, in-process; the server
    path on uvloop, as the service runs (the apps' own figures on asyncio's loop, as
    before, so they compare with earlier runs)."""
    return {**asyncio.run(_measure(calls, rounds, batch)),
            **uvloop.run(_measure_servers(calls * 3, rounds)),
            **asyncio.run(_measure_refusals(rounds))}
