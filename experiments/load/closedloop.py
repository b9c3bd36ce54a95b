"""Closed loop (plow's model): each connection sends its next request when the last answer arrives.

Latency runs from the actual send, so a stalled server slows the generator down and the
stall shows up only once per connection: the load model that hides coordinated
omission, kept because the seed's numbers were measured this way.
"""

from __future__ import annotations

import asyncio
from time import perf_counter_ns

from experiments.load.client import Sender
from experiments.load.openloop import drain
from experiments.load.recorder import NS_PER_S, Recorder


async def run_closed(sender: Sender, recorder: Recorder, connections: int,
                     t_start_ns: int, t_end_ns: int, drain_deadline_ns: int) -> None:
    """Keep `connections` requests in flight from `t_start_ns` until `t_end_ns`.

    No request is sent at or after `t_end_ns`; answers to requests sent before it are
    awaited until `drain_deadline_ns` and counted in the second they arrive; requests
    still in flight then are cut off.
    """

    async def connection() -> None:
        delay = (t_start_ns - perf_counter_ns()) / NS_PER_S
        if delay > 0:
            await asyncio.sleep(delay)
        slot_of = recorder.slot
        sent = recorder.sent
        send = sender.send
        while True:
            t_send = perf_counter_ns()
            if t_send >= t_end_ns:
                return
            slot = slot_of(t_send)
            sent(slot)
            try:
                await send(slot, t_send)
            except asyncio.CancelledError:
                recorder.cut_off(slot)
                raise

    await drain(connections, connection, drain_deadline_ns)
