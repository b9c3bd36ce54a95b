"""The batch count-down: one completion, after the last report, wherever reports come from."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from unittest.mock import MagicMock

from confluent_kafka import KafkaError

from service.kafka.delivery import QUEUE_FULL_OUTCOME, BatchCountdown, Outcome


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
