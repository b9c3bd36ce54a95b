"""A counting HTTP server fast enough to check the raw engine above aiohttp's ceiling.

load_server.py (aiohttp) answers a few thousand requests per second on this box, below
what the raw engine sends, so counts and rates at high load are checked against this
one: an asyncio Protocol on uvloop (the no-op server's parsing), which still counts every
request, records its arrival time and answers a unique id as text, as `POST /` does.
Behaviour, set by `POST /_control/reset` with JSON: `status` (answer every event request
with this status instead of 200; non-2xx issue no id), `close_every` (close the
connection after every k-th answer, with `Connection: close`). `GET /_control/stats`
reports {"count", "issued", "arrivals"}. Run by tests/experiments/load/conftest.py in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from array import array
from time import perf_counter_ns

import uvloop


class State:
    def __init__(self) -> None:
        self.reset({})

    def reset(self, config: dict) -> None:
        self.count = 0
        self.arrivals = array("q")
        self.issued: list[str] = []
        self.status = int(config.get("status", 200))
        self.close_every = int(config.get("close_every", 0))
        self.generation = getattr(self, "generation", 0) + 1


def _answer(status: int, body: bytes, close: bool = False,
            content_type: str = "text/plain; charset=utf-8") -> bytes:
    extra = "Connection: close\r\n" if close else ""
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("ascii") + body


class CountingProtocol(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        out = []
        close = False
        while not close:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end])
            lower = head.lower()
            length = 0
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17: stop if stop >= 0 else len(lower)])
            total = end + 4 + length
            if len(buf) < total:
                break
            body = bytes(buf[end + 4: total])
            del buf[:total]
            method, path = head.split(b" ", 2)[:2]
            answer, close = self.handle(method, path, body)
            out.append(answer)
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
            if close:
                self.transport.close()

    def handle(self, method: bytes, path: bytes, body: bytes) -> tuple[bytes, bool]:
        state = self.state
        if path == b"/_control/reset":
            state.reset(json.loads(body or b"{}"))
            return _answer(200, b'{"ok": true}', content_type="application/json"), False
        if path == b"/_control/stats":
            stats = {"count": state.count, "issued": state.issued,
                     "arrivals": state.arrivals.tolist()}
            return _answer(200, json.dumps(stats).encode(), content_type="application/json"), False
        state.count += 1
        state.arrivals.append(perf_counter_ns())
        close = bool(state.close_every) and state.count % state.close_every == 0
        if not 200 <= state.status < 300:
            return _answer(state.status, b"refused", close), close
        event_id = f"{state.generation}-{state.count}"
        state.issued.append(event_id)
        return _answer(state.status, event_id.encode(), close), close


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        state = State()
        server = await loop.create_server(lambda: CountingProtocol(state), "127.0.0.1", 0,
                                          backlog=1024)
        sys.stdout.write(f"{server.sockets[0].getsockname()[1]}\n")
        sys.stdout.flush()
        done = asyncio.Event()
        # Exit when the test process goes away (stdin closes) or after max-seconds.
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)),
                         daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.max_seconds)
        server.close()

    uvloop.run(run())


if __name__ == "__main__":
    main()
