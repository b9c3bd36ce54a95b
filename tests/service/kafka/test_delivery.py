"""The batch count-down (one completion, after the last report, wherever reports come from)
and the deadlines that answer a request whose report never came."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from unittest.mock import MagicMock

from confluent_kafka import KafkaError

from service.kafka.delivery import (
    QUEUE_FULL_OUTCOME,
    TIMED_OUT_OUTCOME,
    BatchCountdown,
    Deadlines,
    Outcome,
)


def _msg(offset: int) -> Any:
    msg = MagicMock()
    msg.partition.return_value = 0
    msg.offset.return_value = offset
    return msg


def _countdown(size: int) -> tuple[BatchCountdown, list[Any], list[Any]]:
    loop = asyncio.new_event_loop()
    accounted: list[Any] = []
    completed: list[Any] = []
    countdown = BatchCountdown(size, loop.create_future(),
                               lambda err, msg: accounted.append(err),
                               lambda fut, result: completed.append(result))
    loop.close()
    return countdown, accounted, completed


def test_completes_once_after_the_last_report_from_many_threads() -> None:
    countdown, accounted, completed = _countdown(400)

    def report(indexes: range) -> None:
        for i in indexes:
            countdown.on_delivery(i, None, _msg(i))

    threads = [threading.Thread(target=report, args=(range(k, 400, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accounted) == 400
    assert len(completed) == 1
    assert completed[0] == [Outcome(None, False, 0, i) for i in range(400)]


def test_unproduced_tail_counts_as_done_and_failures_keep_their_reason() -> None:
    countdown, _, completed = _countdown(4)
    countdown.on_delivery(0, None, _msg(10))
    countdown.on_delivery(1, KafkaError(KafkaError._MSG_TIMED_OUT), _msg(-1))
    assert not completed
    countdown.settle_unproduced(2)
    # settled on the loop side: the future is resolved directly, not via `complete`
    assert not completed
    assert countdown.future.done()
    outcomes = countdown.future.result()
    assert outcomes[0] == Outcome(None, False, 0, 10)
    assert outcomes[1].error == "_MSG_TIMED_OUT" and outcomes[1].retriable
    assert outcomes[2:] == [QUEUE_FULL_OUTCOME, QUEUE_FULL_OUTCOME]


def test_deadlines_expire_only_unsettled_waits_past_their_deadline() -> None:
    loop = asyncio.new_event_loop()
    try:
        deadlines = Deadlines(10.0)
        settled, waiting, later = (loop.create_future() for _ in range(3))
        deadlines.add(0.0, settled)
        deadlines.add(1.0, waiting)
        deadlines.add(5.0, later)
        settled.set_result("delivered")
        assert deadlines.sweep(9.0) == 0 and len(deadlines) == 2  # the settled one is gone
        assert not waiting.done()
        assert deadlines.sweep(11.0) == 1
        assert waiting.result() == TIMED_OUT_OUTCOME and settled.result() == "delivered"
        assert not later.done() and len(deadlines) == 1
        later.cancel()  # a request whose client went away
        assert deadlines.sweep(100.0) == 0 and len(deadlines) == 0
    finally:
        loop.close()


def test_an_expired_batch_keeps_the_reports_that_arrived() -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        countdown = BatchCountdown(2, future, lambda err, msg: None, lambda fut, result: None)
        countdown.on_delivery(0, None, _msg(7))
        deadlines = Deadlines(1.0)
        deadlines.add(0.0, future, countdown.expire)
        assert deadlines.sweep(2.0) == 1
        first, second = future.result()
        assert first == Outcome(None, False, 0, 7) and second is None
    finally:
        loop.close()
