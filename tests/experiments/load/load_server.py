"""A test server with known behaviour, run in its own process by tests/experiments/load/conftest.py.

It speaks the service's HTTP contract (ids as text, JSON, batch results), counts every
request and its arrival time, remembers every id it issued, and on demand stalls once
(every request arriving during the stall waits for its end), answers 503 to every k-th
request, answers at most `cap_rps` requests per second (a FIFO queue in front of a server
of known capacity), or adds `slow_ms` to every answer while more than `slow_above_rps`
requests arrived in the last second (latency that crosses a threshold at a known rate).
`POST /_control/reset` sets the behaviour; `GET /_control/stats` reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
import uuid
from collections import deque

from aiohttp import web

EVENT_PATHS = ("/", "/v1/events", "/v1/events/batch", "/_bench/noop")


class State:
    def __init__(self) -> None:
        self.reset({})

    def reset(self, config: dict) -> None:
        self.count = 0
        self.arrivals: list[int] = []
        self.issued: list[str] = []
        # The stall starts with the first request arriving `stall_after_s` after the first one.
        self.stall_after_ns = int(float(config.get("stall_after_s", -1)) * 1e9)
        self.stalled = False
        self.stall_ms = float(config.get("stall_ms", 0))
        self.fail_every = int(config.get("fail_every", 0))
        self.cap_interval_s = 1.0 / float(config["cap_rps"]) if config.get("cap_rps") else 0.0
        self.next_free = 0.0  # loop time at which the capped server can answer again
        self.slow_above = float(config.get("slow_above_rps", 0))
        self.slow_s = float(config.get("slow_ms", 0)) / 1000
        self.recent: deque[int] = deque()  # arrival times of the last second (slow_above_rps)
        self.gate = asyncio.Event()
        self.gate.set()


async def handle(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    state.count += 1
    number = state.count
    state.arrivals.append(time.perf_counter_ns())
    body = await request.read()
    if (state.stall_after_ns >= 0 and not state.stalled
            and state.arrivals[-1] - state.arrivals[0] >= state.stall_after_ns):
        state.stalled = True
        state.gate.clear()
        asyncio.get_running_loop().call_later(state.stall_ms / 1000, state.gate.set)
    if not state.gate.is_set():
        await state.gate.wait()
    loop = asyncio.get_running_loop()
    if state.cap_interval_s:
        # Answers leave one interval apart in arrival order, however many are waiting.
        turn = max(loop.time(), state.next_free)
        state.next_free = turn + state.cap_interval_s
        await asyncio.sleep(turn - loop.time())
    if state.slow_above:
        now = state.arrivals[-1]
        state.recent.append(now)
        while state.recent[0] < now - 1_000_000_000:
            state.recent.popleft()
        if len(state.recent) > state.slow_above:
            await asyncio.sleep(state.slow_s)
    if state.fail_every and number % state.fail_every == 0:
        return web.Response(status=503, headers={"Retry-After": "1"}, text="overloaded")
    path = request.path
    if path == "/v1/events/batch":
        events = json.loads(body)
        ids = [str(uuid.uuid4()) for _ in events]
        state.issued.extend(ids)
        return web.json_response({"results": [{"event_id": i, "status": 200} for i in ids]})
    event_id = str(uuid.uuid4())
    state.issued.append(event_id)
    if path == "/v1/events":
        return web.json_response({"event_id": event_id})
    return web.Response(text=event_id)


async def reset(request: web.Request) -> web.Response:
    request.app["state"].reset(await request.json())
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    state: State = request.app["state"]
    return web.json_response({"count": state.count, "arrivals": state.arrivals,
                              "issued": state.issued})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()

    async def run() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app["state"] = State()
        for path in EVENT_PATHS:
            app.router.add_post(path, handle)
        app.router.add_post("/_control/reset", reset)
        app.router.add_get("/_control/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sys.stdout.write(f"{port}\n")
        sys.stdout.flush()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Exit when the test process goes away (stdin closes) or after max-seconds.
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)),
                         daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.max_seconds)
        await runner.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    main()
