"""Open loop (wrk2's model): a fixed schedule, latency measured from each intended send time.

Slot k of the global schedule is due at `t_start + k / rate`. Worker w of W takes slots
w, w+W, w+2W, ... so W processes together keep the asked spacing. Each of the worker's
connections repeatedly takes the next slot, waits until it is due and sends; when every
connection is busy (a stalled server), due slots queue in the generator and go out late,
never skipped, and their latency includes the wait. Requests sent more than 1 ms after
their slot are counted as late.
"""

from __future__ import annotations

import asyncio
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

    def remaining(self) -> int:
        """Slots before the end that nobody took (only after the give-up deadline)."""
        count, k = 0, self.next
        while self.due(k) < self.t_end_ns:
            count, k = count + 1, k + 1
        return count


async def run_open(sender: Sender, recorder: Recorder, connections: int,
                   schedule: Schedule, give_up_ns: int) -> None:
    """Send every slot due before the schedule's end; stop taking slots after `give_up_ns`.

    `give_up_ns` bounds the run when the server never recovers: slots still waiting for
    a connection then are counted as `unsent` instead of being sent ever later.
    """

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
            if now > give_up_ns:
                return
            schedule.next += 1
            if due > now:
                await asyncio.sleep((due - now) / NS_PER_S)
                now = perf_counter_ns()
            slot = slot_of(due)
            sent(slot, now - due)
            await send(slot, due)

    await asyncio.gather(*(connection() for _ in range(connections)))
    recorder.unsent += schedule.remaining()
