"""Open loop (wrk2's model): a fixed schedule, latency measured from each intended send time.

Slot k of the global schedule is due at `t_start + k / rate`. Worker w of W takes slots
w, w+W, w+2W, ... so W processes together keep the asked spacing. Each of the worker's
connections repeatedly takes the next slot, waits until it is due and sends; when every
connection is busy (a stalled server), due slots queue in the generator and go out late,
never skipped, and their latency includes the wait. Requests sent more than 1 ms after
their slot are counted as late.

After the schedule's end, overdue slots still go out and answers are still awaited, but
only until the drain deadline: then slots nobody took are counted as never sent and
requests in flight are cut off. A collapsed service thus ends the run on time, and what
it left unfinished is counted instead of vanishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter_ns

from experiments.load.client import Sender
from experiments.load.recorder import NS_PER_S, Recorder


class Schedule:
    """Due times of one worker's share of the global schedule, in perf_counter nanoseconds."""

    def __init__(self, t_start_ns: int, t_end_ns: int, rate: float, worker: int,
                 workers: int) -> None:
        self.t_start_ns = t_start_ns
        self.t_end_ns = t_end_ns
        self.rate = rate
        self.worker = worker
        self.workers = workers
        self.next = 0

    def due(self, k: int) -> int:
        # Computed from k each time rather than accumulated, so rounding never drifts.
        return self.t_start_ns + round((k * self.workers + self.worker) * NS_PER_S / self.rate)

    def remaining(self, from_ns: int) -> int:
        """Slots due in [from_ns, end) that nobody took."""
        count, k = 0, self.next
        while (due := self.due(k)) < self.t_end_ns:
            count += due >= from_ns
            k += 1
        return count


async def run_open(sender: Sender, recorder: Recorder, connections: int,
                   schedule: Schedule, drain_deadline_ns: int) -> None:
    """Send every slot due before the schedule's end, until `drain_deadline_ns` at most."""

    async def connection() -> None:
        slot_of = recorder.slot
        sent = recorder.sent_on_schedule
        send = sender.send
        t_end = schedule.t_end_ns
        while True:
            due = schedule.due(schedule.next)
            if due >= t_end:
                return
            now = perf_counter_ns()
            if now > drain_deadline_ns:
                return
            schedule.next += 1
            if due > now:
                await asyncio.sleep((due - now) / NS_PER_S)
                now = perf_counter_ns()
            slot = slot_of(due)
            sent(slot, now - due)
            try:
                await send(slot, due)
            except asyncio.CancelledError:
                recorder.cut_off(slot)
                raise

    await drain(connections, connection, drain_deadline_ns)
    recorder.never_sent += schedule.remaining(recorder.origin_ns)


async def drain(connections: int, connection: Callable[[], Awaitable[None]], deadline_ns: int) -> None:
    """Run `connections` copies of `connection()` and cancel those still busy at the deadline."""
    tasks = [asyncio.ensure_future(connection()) for _ in range(connections)]
    timeout = max((deadline_ns - perf_counter_ns()) / NS_PER_S, 0.0)
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
