"""Delivery results and the count-down that lets one batch request wait on one future."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, Message

from service.kafka.errors import QUEUE_FULL, WAIT_TIMED_OUT, is_retriable


class DeliveryBridge(StrEnum):
    """Where delivery reports are served.

    `loop` (the default) polls with `poll(0)` from a task on the event loop itself (and,
    while requests wait and nothing is ready, blocks in `poll()` on a helper thread).
    `thread` is confluent-kafka's classic asyncio pattern: a dedicated thread polls and
    hands results over with `call_soon_threadsafe`. confluent-kafka takes the GIL once
    per delivery report, so with a busy event loop the thread pays a GIL hand-off per
    event. Measured on 2 cores with 50 connections, `loop` answered 1.0-1.07x as many
    `POST /` requests, 1.2x the events of durable batches and 3x those of
    fire-and-forget batches (the `bridge` plan: 1.27x durable and 2.0x fire-and-forget
    batch events/s, and the thread shed 35% of fire-and-forget batches as 503s), so
    `loop` is the default; `thread` stays selectable so experiments can show the cost.
    """

    THREAD = "thread"
    LOOP = "loop"


class DeliveryReports(StrEnum):
    """Which delivery reports librdkafka hands to the service.

    `all` (the default in both modes): one per event. They are the lab's instrument: the
    delivery-latency histogram and the exact count of delivered events come from them, and
    a durable request waits for its own. `errors` (fire-and-forget only) sets librdkafka's
    `delivery.report.only.error`: failures are still reported, counted and logged, while
    successes are not. The in-flight bound then counts what librdkafka holds
    (`len(producer)`), the delivered count is produced - failed - held (exact once the
    queue drains) and the delivery-latency histogram stays empty. What it saves per event
    is measured by `make bench` beside the default.
    """

    ALL = "all"
    ERRORS = "errors"


Account = Callable[[KafkaError | None, Message], None]
Complete = Callable[[asyncio.Future[Any], Any], None]


class Outcome(NamedTuple):
    """One event's delivery result; `error` is a librdkafka error name or None."""

    error: str | None
    retriable: bool
    partition: int
    offset: int


_new_outcome = tuple.__new__  # Outcome(...) without the NamedTuple's Python-level __new__


def outcome_of(err: KafkaError | None, msg: Message) -> Outcome:
    if err is None:
        return _new_outcome(Outcome, (None, False, msg.partition() or 0, msg.offset() or 0))
    return Outcome(err.name(), is_retriable(err), -1, -1)


QUEUE_FULL_OUTCOME = Outcome(QUEUE_FULL, True, -1, -1)
TIMED_OUT_OUTCOME = Outcome(WAIT_TIMED_OUT, True, -1, -1)


def resolve_all(ready: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in ready:
        if not future.done():
            future.set_result(result)


def expire_single(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(TIMED_OUT_OUTCOME)


class Deadlines:
    """How long a request waits for its delivery report at most, checked by one sweep.

    librdkafka promises every report within `message.timeout.ms`; this only guards against
    a lost one. A timer per durable request (`call_later` and its `cancel`) cost 2-3 us of
    the loop's CPU each, measured; every wait here has the same length, so the entries
    are in deadline order and a periodic `sweep` looks only at the front of a deque.
    """

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._entries: collections.deque[
            tuple[float, asyncio.Future[Any], Callable[[asyncio.Future[Any]], None]]
        ] = collections.deque()

    def add(self, now: float, future: asyncio.Future[Any],
            expire: Callable[[asyncio.Future[Any]], None] = expire_single) -> None:
        """`future` gets `expire(future)` unless done by `now + wait_s` (the next sweep)."""
        entries = self._entries
        # Reports come back nearly in order: dropping the settled front here keeps the deque
        # short, so a settled future is not kept alive (and promoted by the GC) until a sweep.
        while entries and entries[0][1].done():
            entries.popleft()
        entries.append((now + self.wait_s, future, expire))

    def sweep(self, now: float) -> int:
        """Drop the settled entries at the front, expire those past their deadline; how many
        expired. Settled entries behind an unsettled one wait for a later sweep."""
        entries, expired = self._entries, 0
        while entries:
            deadline, future, expire = entries[0]
            if not future.done():
                if deadline > now:
                    break
                expire(future)
                expired += 1
            entries.popleft()
        return expired

    def __len__(self) -> int:
        return len(self._entries)


class BatchCountdown:
    """The count-down of one batch request; `on_delivery` runs on the poll thread."""

    __slots__ = ("account", "complete", "future", "lock", "outcomes", "remaining")

    def __init__(self, size: int, future: asyncio.Future[list[Outcome | None]],
                 account: Account, complete: Complete) -> None:
        self.future = future
        self.outcomes: list[Outcome | None] = [None] * size
        self.remaining = size
        self.lock = threading.Lock()
        self.account = account
        self.complete = complete

    def on_delivery(self, index: int, err: KafkaError | None, msg: Message) -> None:
        self.account(err, msg)
        self.outcomes[index] = outcome_of(err, msg)
        with self.lock:
            self.remaining -= 1
            done = self.remaining == 0
        if done:
            self.complete(self.future, self.outcomes)

    def expire(self, future: asyncio.Future[Any]) -> None:
        """Deadlines' expiry: whatever reports arrived, the rest as not reported."""
        if not future.done():
            future.set_result(list(self.outcomes))

    def settle_unproduced(self, first: int) -> None:
        """Loop thread: events from `first` on were never produced; count them as done."""
        for i in range(first, len(self.outcomes)):
            self.outcomes[i] = QUEUE_FULL_OUTCOME
        with self.lock:
            self.remaining -= len(self.outcomes) - first
            done = self.remaining == 0
        if done and not self.future.done():
            self.future.set_result(self.outcomes)


