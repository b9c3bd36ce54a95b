"""The "raw" engine: prebuilt request bytes on asyncio Protocols over uvloop, httptools parsing.

Why it exists: the aiohttp engine spends ~120 us of CPU per request (a coroutine, a
request object, header dicts, a response object), so on a small box it takes a core from
the service it measures and cannot outrun a fast one. Here a request is one
`transport.write()` of bytes built before the run, the answer is parsed by httptools'
C parser, and the loop models run as callbacks on the connection's answer instead of a
coroutine per request. Recording is the same Recorder calls the aiohttp engine makes.

The two loop models keep the exact semantics of `closedloop.run_closed` and
`openloop.run_open` (the reference, whose docstrings explain them):
  closed: N connections; each sends its next request when its answer arrives; no send at
    or after `t_end`; answers awaited until the drain deadline, then the rest is cut off.
  open: slot k of the global schedule is due at t_start + (k*W + w)/rate; a free
    connection takes the next slot and sends it when due, or at once (late) when it is
    already due; after `t_end` overdue slots still go out until the drain deadline, then
    untaken slots of the window are never_sent and in-flight requests cut off.
One request per connection at a time (no pipelining), as aiohttp does. Per-request
timeouts (`timeout_s`, from the actual send) are enforced by one sweep every few
milliseconds rather than a timer per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any
from urllib.parse import urlsplit

import httptools

from experiments.load.client import IdParser
from experiments.load.openloop import Schedule
from experiments.load.recorder import NS_PER_S, Recorder
from experiments.load.spec import LoadSpec, request_headers

SWEEP_MAX_S = 0.05  # how often in-flight requests are checked against the timeout


class ServerDisconnected(ConnectionError):
    """The server closed the connection before answering the request in flight."""


class BadAnswer(ConnectionError):
    """Bytes the HTTP parser refused, or an answer nobody asked for."""


class WakeUp:
    """A one-shot wake-up at an absolute perf_counter time, to the microsecond.

    Event-loop timers are too coarse for the open loop: uvloop (libuv) rounds to whole
    milliseconds, so a slot 0.3 ms away either fires up to a millisecond late or, rounded
    to 0, spins the loop until due (70% of a core at 10,000 req/s, measured). A Linux
    timerfd armed at the slot's CLOCK_MONOTONIC time (perf_counter's clock) wakes the
    loop through its selector exactly then, with no spinning. Elsewhere: the loop's timer.
    """

    TFD_TIMER_ABSTIME = 1
    CLOCK_MONOTONIC = 1
    FLAGS = os.O_NONBLOCK | os.O_CLOEXEC  # TFD_NONBLOCK | TFD_CLOEXEC share these values

    class _Itimerspec(ctypes.Structure):  # struct itimerspec: two struct timespec
        _fields_ = [("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2)]

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self.armed = False
        self.fd = -1
        self._handle: asyncio.TimerHandle | None = None
        with contextlib.suppress(AttributeError, OSError):
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.timerfd_create(self.CLOCK_MONOTONIC, self.FLAGS)
            if fd >= 0:
                self.fd = fd
                self._settime = libc.timerfd_settime
                self._spec = self._Itimerspec()
                self._spec_ref = ctypes.byref(self._spec)
                loop.add_reader(fd, self._fired)

    def at(self, t_ns: int) -> None:
        """Call back once at `t_ns` (perf_counter nanoseconds), replacing any earlier request."""
        self.armed = True
        if self.fd >= 0:
            value = self._spec.it_value
            value[0], value[1] = divmod(max(t_ns, 1), 1_000_000_000)
            self._settime(self.fd, self.TFD_TIMER_ABSTIME, self._spec_ref, None)
        else:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.loop.call_later(max(t_ns - perf_counter_ns(), 0) / NS_PER_S,
                                                self._fired)

    def _fired(self) -> None:
        if self.fd >= 0:
            try:
                os.read(self.fd, 8)
            except BlockingIOError:
                return  # re-armed since it fired: the new time has not come yet
        self._handle = None
        if self.armed:
            self.armed = False
            self.callback()

    def close(self) -> None:
        self.armed = False
        if self._handle is not None:
            self._handle.cancel()
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


def build_requests(spec: LoadSpec, bodies: list[bytes]) -> list[bytes]:
    """Each body as the complete HTTP/1.1 request the hot loop writes unchanged."""
    parts = urlsplit(spec.url)
    host = parts.netloc
    lines = "".join(f"{name}: {value}\r\n" for name, value in request_headers(spec).items())
    head = f"POST {spec.path} HTTP/1.1\r\nHost: {host}\r\n{lines}".encode("ascii")
    return [head + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class Connection(asyncio.Protocol):
    """One TCP connection carrying at most one request at a time."""

    def __init__(self, engine: RawEngine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.body = b""
        self.busy = False  # a request is in flight (or waits for the connection to open)
        self.closed = False
        self.slot = 0
        self.t_ref = 0  # latency reference: send time, or intended send time (open loop)
        self.t_sent = 0  # actual send time, for the timeout
        self.connecting: asyncio.Task[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(BadAnswer(f"unparsable answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.busy:
            self.busy = False
            self.engine.failed(self, exc or ServerDisconnected("server closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        t_done = perf_counter_ns()
        body, self.body = self.body, b""
        if not self.busy:
            self.fail(BadAnswer("an answer without a request"))
            return
        self.busy = False
        keep = self.parser.should_keep_alive()
        if not keep:
            self.closed = True
        self.engine.answered(self, self.parser.get_status_code(), body, t_done)
        if not keep and self.transport is not None:
            self.transport.close()

    def fail(self, exc: BaseException) -> None:
        """Give up this connection; a request in flight on it gets a transport error."""
        self.closed = True
        busy, self.busy = self.busy, False
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        if self.connecting is not None:
            self.connecting.cancel()
        if busy:
            self.engine.failed(self, exc)


class RawEngine:
    """One worker's connections, driven by callbacks under one of the two loop models."""

    def __init__(self, spec: LoadSpec, requests: list[bytes], parse: IdParser,
                 recorder: Recorder) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host_port(spec.url)
        self.requests = requests
        self.parse = parse
        self.rec = recorder
        self.timeout_ns = round(spec.timeout_s * NS_PER_S)
        self.next_request = 0
        self.connections: list[Connection] = []
        self.on_free: Callable[[Connection | None], None] = lambda conn: None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.in_flight = 0

    # sending and outcomes
    def send(self, conn: Connection | None, slot: int, t_ref: int, t_now: int) -> None:
        """Send the next request on `conn`, or on a new connection if it is None or closed."""
        requests = self.requests
        request = requests[self.next_request % len(requests)]
        self.next_request += 1
        if conn is None or conn.closed:
            conn = Connection(self)
            self.connections.append(conn)
            conn.connecting = self.loop.create_task(self._connect_and_send(conn, request))
        conn.busy = True
        conn.slot = slot
        conn.t_ref = t_ref
        conn.t_sent = t_now
        self.in_flight += 1
        if conn.transport is not None:
            conn.transport.write(request)

    async def _connect_and_send(self, conn: Connection, request: bytes) -> None:
        try:
            await self.loop.create_connection(lambda: conn, self.host, self.port)
        except asyncio.CancelledError:
            return  # the request was already given an outcome (timeout or cut-off)
        except OSError as exc:
            if conn.busy:
                conn.busy = False
                conn.closed = True
                self.failed(conn, exc)
            return
        finally:
            conn.connecting = None
        if not conn.busy or conn.transport is None:  # timed out or cut off meanwhile
            if conn.transport is not None:
                conn.transport.abort()
            return
        conn.transport.write(request)

    def answered(self, conn: Connection, status: int, body: bytes, t_done: int) -> None:
        self.in_flight -= 1
        rec = self.rec
        if 200 <= status < 300:
            ids, events = self.parse(body)
            if not ids:
                rec.unparsed += 1
            rec.accepted(conn.slot, t_done - conn.t_ref, ids, events, t_done, status)
        else:
            rec.rejected(conn.slot, status, t_done)
        self.on_free(None if conn.closed else conn)

    def failed(self, conn: Connection, exc: BaseException) -> None:
        self.in_flight -= 1
        self.rec.transport_error(conn.slot, exc, perf_counter_ns())
        self.on_free(None)

    def cut_off_all(self) -> None:
        """At the drain deadline: requests still in flight get no outcome, only a count."""
        self.on_free = lambda conn: None
        for conn in self.connections:
            if conn.busy:
                conn.busy = False
                self.in_flight -= 1
                self.rec.cut_off(conn.slot)
            conn.fail(BadAnswer("cut off"))  # busy is False: nothing recorded twice

    def _sweep(self) -> None:
        """Time out requests in flight longer than `timeout_s` (from their actual send)."""
        if self.done.done():
            return
        limit = perf_counter_ns() - self.timeout_ns
        for conn in [c for c in self.connections if c.busy and c.t_sent < limit]:
            conn.fail(TimeoutError(f"no answer within {self.timeout_ns / NS_PER_S:g} s"))
        self.connections = [c for c in self.connections if not c.closed or c.busy]
        self.loop.call_later(self.sweep_s, self._sweep)

    @property
    def sweep_s(self) -> float:
        return min(SWEEP_MAX_S, self.timeout_ns / NS_PER_S / 4)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A bug in a callback must end the run with its traceback, not stall it silently.

        Socket errors also reach this handler; connection_lost records them as the
        request's transport error, so they are not the run's failure.
        """
        exc = context.get("exception")
        if isinstance(exc, OSError):
            return
        if not self.done.done():
            self.done.set_exception(exc or RuntimeError(context.get("message", "loop error")))

    async def _run_until(self, deadline_ns: int) -> None:
        """Wait for the model to finish, or cut off what is still in flight at the deadline."""
        self.loop.set_exception_handler(self._on_loop_error)
        self.loop.call_later(self.sweep_s, self._sweep)
        timeout = max((deadline_ns - perf_counter_ns()) / NS_PER_S, 0.0)
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            self._finish()
        self.cut_off_all()

    # closed loop
    async def run_closed(self, connections: int, t_start_ns: int, t_end_ns: int,
                         drain_deadline_ns: int) -> None:
        rec = self.rec
        slot_of, sent, send = rec.slot, rec.sent, self.send

        def next_request(conn: Connection | None) -> None:
            t_send = perf_counter_ns()
            if t_send >= t_end_ns:
                if self.in_flight == 0:
                    self._finish()
                return
            slot = slot_of(t_send)
            sent(slot)
            send(conn, slot, t_send, t_send)

        self.on_free = next_request
        delay = (t_start_ns - perf_counter_ns()) / NS_PER_S
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(connections):
            next_request(None)
        await self._run_until(drain_deadline_ns)

    # open loop
    async def run_open(self, connections: int, schedule: Schedule,
                       drain_deadline_ns: int) -> None:
        rec = self.rec
        slot_of, sent_on_schedule, send = rec.slot, rec.sent_on_schedule, self.send
        due_of, t_end = schedule.due, schedule.t_end_ns
        idle: list[Connection | None] = [None] * connections

        def dispatch() -> None:
            """Send every due slot a free connection can take; arm a wake-up for the next."""
            now = perf_counter_ns()
            due = due_of(schedule.next)
            while idle and due <= now and due < t_end and now <= drain_deadline_ns:
                schedule.next += 1
                slot = slot_of(due)
                sent_on_schedule(slot, now - due)
                send(idle.pop(), slot, due, now)
                now = perf_counter_ns()
                due = due_of(schedule.next)
            if due >= t_end or now > drain_deadline_ns:
                if self.in_flight == 0:
                    self._finish()
            elif idle:
                wake.at(due)

        def freed(conn: Connection | None) -> None:
            idle.append(conn)
            if not wake.armed:  # armed: a connection is already waiting for the next slot
                dispatch()

        wake = WakeUp(self.loop, dispatch)
        self.on_free = freed
        try:
            dispatch()
            await self._run_until(drain_deadline_ns)
        finally:
            wake.close()
        rec.never_sent += schedule.remaining(rec.origin_ns)
