"""A minimal HTTP/1.1 no-op server on 127.0.0.1, to measure the load generator's own ceiling.

It answers every request with a fixed response shaped like the service's (bare id for
`/` and `/_bench/noop`, `{"event_id"}` for `/v1/events`, `{"results": [...]}` for the batch
path), straight from an asyncio Protocol: no framework, no parsing beyond the request line
and Content-Length, so it costs far less per request than any client. Run it in its own
process (`python -m experiments.load.noop_server`, or `ceiling.noop_server()`), which
prints its port on stdout and exits on SIGTERM, after `--max-seconds`, or (with
`--exit-on-stdin-close`) when its parent goes away. The package never imports this
module, so `-m` runs it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import uuid

import orjson

CHUNKED_UNSUPPORTED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _response(body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


def responses(batch_size: int) -> dict[bytes, bytes]:
    event_id = str(uuid.uuid4())
    text = _response(event_id.encode(), "text/plain; charset=utf-8")
    results = [{"event_id": event_id, "status": 200} for _ in range(batch_size)]
    return {
        b"/": text,
        b"/_bench/noop": text,
        b"/v1/events": _response(orjson.dumps({"event_id": event_id}), "application/json"),
        b"/v1/events/batch": _response(orjson.dumps({"results": results}), "application/json"),
    }


class NoopProtocol(asyncio.Protocol):
    """Keep-alive, pipelining-safe: answers each complete request in the buffer, in order."""

    def __init__(self, table: dict[bytes, bytes]) -> None:
        self.table = table
        self.default = table[b"/"]
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buf[:end]).lower()
            if b"transfer-encoding: chunked" in head:
                out.append(CHUNKED_UNSUPPORTED)
                break
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17: stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                break
            first_space = head.find(b" ")
            path = head[first_space + 1: head.find(b" ", first_space + 1)].split(b"?", 1)[0]
            out.append(self.table.get(path, self.default))
            del buf[:total]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(port: int, batch_size: int, max_seconds: float, watch_stdin: bool) -> None:
    loop = asyncio.get_running_loop()
    table = responses(batch_size)
    server = await loop.create_server(lambda: NoopProtocol(table), "127.0.0.1", port,
                                      backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if watch_stdin:
        # A parent that dies without stopping us closes our stdin: exit then too.
        threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
                         daemon=True).start()
    sys.stdout.write(f"{server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.load.noop_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--exit-on-stdin-close", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.batch_size, args.max_seconds, args.exit_on_stdin_close))
    return 0


if __name__ == "__main__":
    sys.exit(main())
