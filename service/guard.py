"""The HTTP guard: framing, size, time and connection limits that hold on every server stack.

Two layers, because neither sees everything:

- `GuardMiddleware`, the outermost app middleware, sees each request head as whatever
  parser ran delivered it (httptools, h11, or another ASGI server): conflicting framing
  headers, header count and size, the request target, Content-Encoding. It answers before
  the app reads a byte of the body, always with `Connection: close`, so bytes after a
  refused head are never served as another request (request smuggling).
- `GuardedHttpToolsProtocol` / `GuardedH11Protocol`, uvicorn's two HTTP protocols with the
  checks an ASGI app cannot make: a head still arriving (cut off at a bound instead of
  buffered without end), clients stalling in the head or the body, requests pipelined
  past a bound, answers a client does not read, and TCP_NODELAY (`set_nodelay` below).

No client can hold a connection by being slow: a request has a deadline for the whole of
it (head and body) that no read moves, and an answer the kernel will not take is given
`write_timeout_s` before the connection is dropped. Per connection the service then
holds at most a head, a body within its limit, `max_pipelined_requests` queued requests
and one answer, each for a bounded time (service/README.md "Hardening" has the figures).

The connection cap is uvicorn's own `limit_concurrency` (see `uvicorn_limits`): past it a
request is answered 503 with `Connection: close`, and the deadlines free the slots of
clients that never finish a request or never read an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import resource
import socket
from dataclasses import dataclass
from typing import Any

import h11
import httptools
import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

log = logging.getLogger("service.guard")

# Content-Encoding is refused rather than inflated: see service/README.md "Hardening".
ACCEPTED_ENCODINGS = ("identity",)
_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
            415: "Unsupported Media Type", 431: "Request Header Fields Too Large"}


@dataclass(frozen=True)
class Limits:
    max_request_line_bytes: int
    max_header_bytes: int
    max_header_count: int
    header_timeout_s: float
    body_timeout_s: float
    request_timeout_s: float
    write_timeout_s: float
    max_pipelined_requests: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_request_line_bytes, settings.max_header_bytes,
                   settings.max_header_count, settings.header_timeout_s, settings.body_timeout_s,
                   settings.request_timeout_s, settings.write_timeout_s,
                   settings.max_pipelined_requests)

    @property
    def max_head_bytes(self) -> int:
        """Raw bytes a head may take while still arriving: the precise limits plus the
        request line's and each header line's punctuation, so they answer first."""
        return self.max_request_line_bytes + self.max_header_bytes + 4 * self.max_header_count + 64


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str
    extra: tuple[tuple[str, Any], ...] = ()

    def body(self) -> bytes:
        return orjson.dumps({"error": self.code, "message": self.message, **dict(self.extra)})

    def raw(self) -> bytes:
        """The whole response, for the protocol layer that writes to the socket itself."""
        body = self.body()
        return (f"HTTP/1.1 {self.status} {_REASONS[self.status]}\r\n"
                "content-type: application/json\r\nconnection: close\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode("ascii") + body

    async def send(self, send: Send) -> None:
        body = self.body()
        await send({"type": "http.response.start", "status": self.status, "headers": [
            (b"content-type", b"application/json"), (b"connection", b"close"),
            (b"content-length", str(len(body)).encode("ascii"))]})
        await send({"type": "http.response.body", "body": body})


def _framing(message: str) -> Refusal:
    return Refusal(400, "bad_framing", message + "; the connection is closed")


def _too_long(limits: Limits) -> Refusal:
    return Refusal(414, "uri_too_long", "the request target (path and query) exceeds "
                   f"{limits.max_request_line_bytes} bytes")


def _too_many_headers(limits: Limits) -> Refusal:
    return Refusal(431, "header_fields_too_large", f"more than {limits.max_header_count} "
                   f"headers or over {limits.max_header_bytes} bytes of header names and values")


def check_head(scope: Scope, limits: Limits) -> Refusal | None:
    """Why this request head must be refused, or None. One pass over the headers."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    if target > limits.max_request_line_bytes:
        return _too_long(limits)
    headers = scope["headers"]
    if len(headers) > limits.max_header_count:
        return _too_many_headers(limits)
    size = lengths = encodings = 0
    length = coding = content_coding = None
    for name, value in headers:
        size += len(name) + len(value)
        if name == b"content-length":
            lengths += 1
            length = value
        elif name == b"transfer-encoding":
            encodings += 1
            coding = value
        elif name == b"content-encoding":
            content_coding = value
    if size > limits.max_header_bytes:
        return _too_many_headers(limits)
    # RFC 9112 6.3: a message whose framing two parties could read differently is an
    # error and the connection must close; be strict rather than pick one reading.
    if lengths and encodings:
        return _framing("both Content-Length and Transfer-Encoding")
    if lengths > 1:
        return _framing("more than one Content-Length")
    if length is not None and not length.isdigit():
        return _framing("Content-Length is not a number")
    if encodings > 1 or (coding is not None and coding.strip().lower() != b"chunked"):
        return _framing("Transfer-Encoding other than a single 'chunked'")
    if encodings and scope.get("http_version") == "1.0":
        return _framing("Transfer-Encoding in an HTTP/1.0 request")
    if content_coding is not None and content_coding.strip().lower() not in (b"", b"identity"):
        return Refusal(415, "unsupported_content_encoding",
                       "compressed request bodies are not accepted; send the body uncompressed "
                       "(Content-Encoding: identity or no Content-Encoding)",
                       (("accepted", list(ACCEPTED_ENCODINGS)),))
    return None


class GuardMiddleware:
    """Refuses bad request heads before anything below runs (access control included)."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = check_head(scope, self.limits)
            if refusal is not None:
                await refusal.send(send)
                return
        await self.app(scope, receive, send)


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal is on the protocol."""


class _GuardedProtocol:
    """Mixed into uvicorn's protocols: deadlines for a request and for its answer, a bounded head.

    Reading: one timer per connection, re-armed lazily: a request only moves `_deadline`,
    and the timer, when it fires early, sleeps on until the current deadline. A request's
    clocks start at its first byte (the first request's at the connection's opening):
    its head is due within `header_timeout_s`, each read of its body within
    `body_timeout_s` of the last, and all of it by `_request_deadline`, which nothing the
    client sends moves.

    Writing: the transport's high-water mark is zero, so it pauses the protocol whenever
    the kernel has not taken everything written (a client that does not read); from that
    moment the client has `write_timeout_s` to take it all, else the connection is
    aborted (closing would wait for the buffer to drain, forever).
    """

    # Set by uvicorn's protocol __init__, which this class wraps.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._deadline: float | None = None
        self._request_deadline = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._refusal: Refusal | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        transport.set_write_buffer_limits(high=0)
        super().connection_made(transport)  # type: ignore[misc]
        self._begin_request()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._write_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    # -- reading: the request's deadlines -------------------------------------------------
    def _begin_request(self) -> None:
        """A request's first byte (or the connection's opening): both its clocks start."""
        self._set_clocks(True, self.limits.header_timeout_s)

    def _expect_within(self, seconds: float) -> None:
        """More of this request is due within `seconds`, and all of it by its deadline."""
        self._set_clocks(False, seconds)

    def _set_clocks(self, began: bool, seconds: float) -> None:
        """More is due within `seconds`, all by the request's deadline (which starts now when
        the request `began`): one reading of the loop's clock."""
        now = self.loop.time()
        if began:
            self._request_deadline = now + self.limits.request_timeout_s
        self._arm(min(now + seconds, self._request_deadline))

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        log.debug("closing a stalled connection", extra={"client": _peer(self.transport)})
        self._refuse(Refusal(408, "request_timeout", "the request was not received in time"))

    # -- writing: the answer's deadline ---------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout_s,
                                                     self._on_write_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _on_write_timeout(self) -> None:
        self._write_timer = None
        log.debug("dropping a connection whose client does not read",
                  extra={"client": _peer(self.transport),
                         "unsent_bytes": self.transport.get_write_buffer_size()})
        self.transport.abort()

    # -- refusing ---------------------------------------------------------------------------
    def _refuse(self, refusal: Refusal) -> None:
        """Answer (unless a response is already under way) and close the connection."""
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle  # the latest request's; a response under way must not be cut into
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(refusal.raw())
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; ours when a limit stopped the parser."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            refusal = self._head_overflow()
        if refusal is None:
            super().send_400_response(msg)  # type: ignore[misc]
        else:
            self._refuse(refusal)

    def _head_overflow(self) -> Refusal | None:
        return None


def _peer(transport: asyncio.Transport) -> str | None:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None


class GuardedH11Protocol(_GuardedProtocol, H11Protocol):
    """h11 bounds an incomplete head itself (`h11_max_incomplete_event_size`), and parses
    one request at a time: bytes pipelined behind it wait unparsed (uvicorn stops reading
    meanwhile), and each is served once the answer before it is out. What is bounded
    here is how many are served from bytes that were already waiting (unbounded, one
    256 KiB read of small requests kept it answering 7,000 of them to a client reading
    none): past `max_pipelined_requests`, the connection closes after the current
    answer, as with httptools."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pipelined = 0  # requests started from buffered bytes since the last read

    def data_received(self, data: bytes) -> None:
        self._pipelined = 0
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._begin_request()  # the next request's first bytes
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._expect_within(self.limits.body_timeout_s)
        elif state is not h11.IDLE:
            self._deadline = None

    def on_response_complete(self) -> None:
        answered = self.cycle
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is not answered:  # started from bytes that were already here
            self._pipelined += 1
            if self._pipelined >= self.limits.max_pipelined_requests:
                self.cycle.keep_alive = False
                log.debug("closing a connection past the pipelining bound",
                          extra={"client": _peer(self.transport), "served": self._pipelined})
        # A pipelined request's bytes arrived with the previous one: its clocks run now.
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._begin_request()
            self._expect_within(self.limits.body_timeout_s)
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._begin_request()

    def _head_overflow(self) -> Refusal | None:
        buffered, _ = self.conn.trailing_data
        if len(buffered) <= self.limits.max_head_bytes:
            return None
        line_end = buffered.find(b"\n", 0, self.limits.max_request_line_bytes + 64)
        return _too_long(self.limits) if line_end < 0 else _too_many_headers(self.limits)


# Which of a request's clocks a read leaves running (GuardedHttpToolsProtocol): the same
# as before, its head's, its body's, or none (the request is complete).
_KEEP, _HEAD, _BODY, _IDLE = "keep", "head", "body", "idle"

if httptools is not None:

    class GuardedHttpToolsProtocol(_GuardedProtocol, HttpToolsProtocol):
        """httptools keeps a header's bytes until it is complete: the head is counted here.

        Checked here: a head still arriving, and the request target (httptools refuses a
        very long one with a bare 400 before any head is complete). The headers' count
        and size of a complete head are `check_head`'s, in `GuardMiddleware`, with the same
        answer; checking them here as well, in a Python callback per header, cost about
        1 us per request (in-process, uvicorn driven with request bytes; `make bench`
        writes the protocol's whole cost: 2.7 us over uvicorn's own protocol today).

        httptools parses every request in a read, and uvicorn queues each behind the one
        being served: past `max_pipelined_requests` queued, parsing stops, the queued ones
        are answered (the last with `Connection: close`) and nothing after them is read.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = False
            self._head_bytes = 0
            self._pipeline_closed = False
            # What this read's parser callbacks did to the request's clocks: a request began
            # (its clocks start), and which clock runs when the read is parsed. Applied once
            # per read, with at most one reading of the loop's clock: a re-arm per callback
            # was 1.1-1.3 of this protocol's 3.1-3.2 us per request (in-process, uvloop, the
            # server path of `make bench`, best of 9 rounds, three runs).
            self._began = False
            self._clock = _KEEP

        def data_received(self, data: bytes) -> None:
            if self._pipeline_closed:  # bytes after a request that was not queued
                self.transport.pause_reading()
                return
            # Only a chunk that starts inside a head and ends inside it is all head bytes;
            # the chunk a head starts in is not counted (bounded by the read size).
            counted = self._in_head
            self._began, self._clock = False, _KEEP
            super().data_received(data)
            clock = self._clock
            if clock is _IDLE:  # the usual read: one whole request
                self._deadline = None
            elif clock is not _KEEP and not self._pipeline_closed \
                    and not self.transport.is_closing():
                limits = self.limits
                self._set_clocks(self._began, limits.header_timeout_s if clock is _HEAD
                                 else limits.body_timeout_s)
            if counted and self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.max_head_bytes:
                    self._refuse(_too_many_headers(self.limits) if self.headers
                                 else _too_long(self.limits))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            # Else the clocks started when the connection opened. A request that ended
            # earlier in this read leaves none running.
            if self._deadline is None or self._clock is _IDLE:
                self._began, self._clock = True, _HEAD

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            if len(self.url) > self.limits.max_request_line_bytes:
                self._refusal = _too_long(self.limits)
                raise _Refused

        def on_headers_complete(self) -> None:
            self._in_head = False
            if len(self.pipeline) >= self.limits.max_pipelined_requests:
                self._close_pipeline()
                raise _Refused
            self._clock = _BODY
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self._clock = _BODY
            super().on_body(body)

        def on_message_complete(self) -> None:
            self._clock = _IDLE
            super().on_message_complete()

        def _close_pipeline(self) -> None:
            """Answer what is queued, the last with `Connection: close`; drop this request
            and every byte after it (RFC 9112 9.3.2: a client that pipelines resends what
            was not answered, on a new connection)."""
            newest, _ = self.pipeline[0]  # uvicorn queues with appendleft
            newest.keep_alive = False
            self._pipeline_closed = True
            self._deadline = None
            log.debug("closing a connection past the pipelining bound",
                      extra={"client": _peer(self.transport), "queued": len(self.pipeline)})

        def send_400_response(self, msg: str) -> None:
            if not self._pipeline_closed:  # else the queued answers are still to be sent
                super().send_400_response(msg)


def protocol_class(settings: Settings) -> Any:
    """What uvicorn's `http` option gets: the guarded protocol for the chosen parser."""
    parser = settings.http_parser
    if parser == "auto":
        parser = "httptools" if httptools is not None else "h11"
    if parser == "httptools":
        if httptools is None:
            raise RuntimeError("INGEST_HTTP_PARSER=httptools but httptools is not installed")
        cls: Any = GuardedHttpToolsProtocol
    else:
        cls = GuardedH11Protocol
    # A partial of a module-level class stays picklable for `--workers N`.
    return functools.partial(cls, limits=Limits.from_settings(settings))


def uvicorn_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn options of the guard: protocol, connection cap, forwarded-header trust, and
    no `server` header unless asked for (it names the stack to whoever probes it)."""
    return {
        "http": protocol_class(settings),
        # uvicorn counts the connection asking too: +1 serves exactly max_connections.
        "limit_concurrency": settings.max_connections + 1,
        "h11_max_incomplete_event_size": Limits.from_settings(settings).max_head_bytes,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": settings.server_header,
    } | _worker_healthcheck()


def _worker_healthcheck() -> dict[str, Any]:
    """A `--workers N` child answers the supervisor's health ping only after unpickling its
    config, and the protocol above makes that import the service: on a loaded 2-core box it
    took 7 s, past uvicorn's 5 s, and the worker was killed and restarted (measured)."""
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        return {"timeout_worker_healthcheck": 30}
    return {}


def raise_open_files_limit(connections: int) -> None:
    """Each connection is a file descriptor: lift the soft limit so the cap, not EMFILE, refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # the broker's sockets, logs, the listening socket
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# -- TCP_NODELAY on every accepted connection, whatever path accepted it ------------------
# With `--workers N` uvicorn binds the listening socket itself with protocol number 0, and
# asyncio only sets TCP_NODELAY on accepted sockets whose protocol is IPPROTO_TCP: the
# workers then answered every keep-alive request after a 40 ms delayed-ACK stall
# (measured: 45 req/s per connection instead of about 2000). The guarded protocols set
# it on each connection; `NoDelayProtocol` does the same without the guard's limits (the
# benchmark's reference stack). The parser is httptools', a dependency of the service
# (measured 3.5x h11 on a raw ASGI app, see experiments/bench).
def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
