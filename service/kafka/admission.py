"""Admission: whether a request's events may be produced now, decided before any is.

Two bounds apply to events produced but not yet reported: the service's own
`max_in_flight` and librdkafka's `queue.buffering.max.messages`. A request that does not
fit is refused whole (503 + Retry-After), so an overload never half-publishes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from service.errors import Overloaded
from service.kafka.errors import QUEUE_FULL

IN_FLIGHT = "too_many_in_flight"
_STEP_S = 0.01


class Admission:
    def __init__(self, in_flight: Callable[[], int], max_in_flight: int, max_queue: int,
                 retry_after: int, shed_delay_s: float,
                 count_rejected: Callable[[str, int], None]) -> None:
        self.in_flight = in_flight
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.shed_delay_s = shed_delay_s
        self.count_rejected = count_rejected

    def _refusal(self, count: int) -> tuple[str, str] | None:
        in_flight = self.in_flight()
        if in_flight + count > self.max_in_flight:
            return IN_FLIGHT, f"{in_flight} events in flight; the bound is {self.max_in_flight}"
        if in_flight + count > self.max_queue:
            return QUEUE_FULL, "the producer buffer is full; retry later"
        return None

    def fits(self, count: int) -> bool:
        return self._refusal(count) is None

    def _refuse(self, refusal: tuple[str, str], count: int | None) -> Overloaded:
        reason, message = refusal
        if count is not None:
            self.count_rejected(reason, count)
        return Overloaded(message, retry_after=self.retry_after, reason=reason)

    def check(self, count: int) -> None:
        """Right before producing: no await may separate this check from the produce calls."""
        refusal = self._refusal(count)
        if refusal is not None:
            raise self._refuse(refusal, count)

    async def wait(self, count: int | None = None) -> None:
        """Wait up to `shed_delay_s` for room for `count` more events, else 503.

        Refusing at once looks cheapest but collapses under a closed-loop overload: the
        event loop then spins on 503s and holds the GIL that the poll thread needs for
        every single delivery report (confluent-kafka takes it once per message), so
        the backlog drains at a fraction of the normal rate. A short wait lets the loop
        idle and the reports through; a request that finds room in it goes ahead.
        `count=None` is the check before a batch body is read: a request that cannot
        fit even one event is shed unparsed, and its unknown events are not counted.
        """
        needed = count or 1
        refusal = self._refusal(needed)
        deadline = time.monotonic() + self.shed_delay_s
        while refusal is not None and time.monotonic() < deadline:
            await asyncio.sleep(_STEP_S)
            refusal = self._refusal(needed)
        if refusal is not None:
            raise self._refuse(refusal, count)
