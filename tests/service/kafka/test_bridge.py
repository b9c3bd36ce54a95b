"""The publisher's own checks that need no broker (pure logic, no produce)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from service.errors import ConfigError, Overloaded
from service.events import parse_event, to_records
from service.kafka import Publisher
from service.metrics import Metrics
from service.modes import ProducerMode
from service.settings import Settings


def _publisher(**config: object) -> Publisher:
    defaults = Settings(bootstrap_servers="127.0.0.1:1", topic="t")
    return Publisher({"bootstrap.servers": "127.0.0.1:1", **config}, "t", ProducerMode.DURABLE,
                     Metrics(), max_in_flight=4, retry_after=3,
                     shed_delay_s=defaults.shed_delay_s, bridge=defaults.delivery_bridge,
                     reports=defaults.delivery_reports)


def test_unknown_producer_property_fails_at_start() -> None:
    publisher = _publisher(**{"no.such.property": 1})
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ConfigError, match=r"no\.such\.property"):
            publisher.start(loop)
    finally:
        loop.close()


def test_limits_come_from_the_effective_config() -> None:
    publisher = _publisher(**{"queue.buffering.max.messages": 7, "message.max.bytes": 5000,
                              "message.timeout.ms": 2000})
    assert (publisher.admission.max_queue, publisher.max_message_bytes) == (7, 5000)
    assert publisher.report_wait_s == pytest.approx(7.0)


def test_a_batch_over_the_in_flight_bound_is_refused_whole() -> None:
    publisher = _publisher()
    records = to_records([parse_event(b'{"client_id": "c", "name": "n", "data": {}}')] * 5, "t")
    with pytest.raises(Overloaded) as info:
        publisher.publish_batch_nowait(records)
    assert info.value.fields["reason"] == "too_many_in_flight"
    assert info.value.headers() == {"Retry-After": "3"}
    assert publisher._produced == 0


def test_a_request_past_the_bound_waits_briefly_for_room() -> None:
    publisher = _publisher()
    publisher.admission.shed_delay_s = 0.2
    publisher._produced = 4  # the bound (4) is reached

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.05, setattr, publisher, "_reported", 1)
        await publisher.wait_for_room(1)  # room appears within the delay: admitted
        with pytest.raises(Overloaded) as info:
            await publisher.wait_for_room(2)  # never fits: refused once the delay is over
        assert info.value.fields["reason"] == "too_many_in_flight"

    asyncio.run(scenario())


class _ReportingProducer:
    """Pure logic: `poll(0)` finds nothing; a blocking `poll()` delivers what was produced."""

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.polls: list[tuple[str, float]] = []

    def produce(self, topic: str, value: bytes, key: str, *, on_delivery: Any,
                **extra: Any) -> None:
        self.pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        self.polls.append((threading.current_thread().name, timeout))
        if timeout == 0 or not self.pending:
            return 0
        callbacks, self.pending = self.pending, []
        for callback in callbacks:
            callback(None, _Delivered())
        return len(callbacks)

    def __len__(self) -> int:
        return len(self.pending)


class _Delivered:
    def latency(self) -> float:
        return 0.001

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


def _poll_while(publisher: Publisher, producer: _ReportingProducer, request: Any) -> Any:
    async def scenario() -> Any:
        publisher._producer = producer  # type: ignore[assignment]
        publisher._waiter = ThreadPoolExecutor(1, thread_name_prefix="kafka-poll-wait")
        publisher._loop = asyncio.get_running_loop()
        task = asyncio.create_task(publisher._poll_on_loop())
        try:
            return await asyncio.wait_for(request(), 10)
        finally:
            publisher._stop.set()
            await task
            publisher._waiter.shutdown()
    return asyncio.run(scenario())


def test_a_waiting_durable_request_is_answered_from_a_blocking_poll() -> None:
    # The `loop` bridge must not wait for a timer while a single event's report is due: it
    # blocks in poll() on its helper thread, which serves the report as it arrives.
    publisher, producer = _publisher(), _ReportingProducer()
    record = to_records([parse_event(b'{"client_id": "c", "name": "n", "data": {}}')], "t")[0]
    outcome = _poll_while(publisher, producer, lambda: publisher.publish(record))
    assert (outcome.error, outcome.offset) == (None, 7)
    assert any(name.startswith("kafka-poll-wait") and timeout > 0
               for name, timeout in producer.polls)
    assert all(timeout == 0 for name, timeout in producer.polls
               if not name.startswith("kafka-poll-wait"))


def test_a_waiting_batch_is_served_on_the_loop_not_the_helper_thread() -> None:
    # A batch's stream of reports served on the helper thread contends with the loop for the
    # GIL: with a batch waiting, the bridge only ever polls on the loop without blocking.
    publisher, producer = _publisher(), _ReportingProducer()
    records = to_records([parse_event(b'{"client_id": "c", "name": "n", "data": {}}')] * 3, "t")

    async def batch_then_release() -> Any:
        waiting = asyncio.ensure_future(publisher.publish_batch(records))
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert not waiting.done()  # nothing polls with a timeout, so nothing was delivered
        polled_on_loop = list(producer.polls)
        for callback in producer.pending:  # the reports arrive, as poll(0) would serve them
            callback(None, _Delivered())
        producer.pending = []
        publisher._hand_over(on_loop=True)
        return polled_on_loop, await waiting

    polled, outcomes = _poll_while(publisher, producer, batch_then_release)
    assert polled and all(timeout == 0 and not name.startswith("kafka-poll-wait")
                          for name, timeout in polled)
    assert [o.offset for o in outcomes] == [7, 7, 7]


def test_a_finished_batch_leaves_no_blocking_poll_for_the_next_batch() -> None:
    # The first batch's deadline stays queued until the next sweep: that must not make the
    # bridge block on its helper thread, where the next batch's reports would be served.
    publisher, producer = _publisher(), _ReportingProducer()
    records = to_records([parse_event(b'{"client_id": "c", "name": "n", "data": {}}')] * 3, "t")

    def deliver() -> None:
        for callback in producer.pending:
            callback(None, _Delivered())
        producer.pending = []
        publisher._hand_over(on_loop=True)

    async def two_batches() -> Any:
        first = asyncio.ensure_future(publisher.publish_batch(records))
        await asyncio.sleep(0.01)
        deliver()
        await first
        assert publisher.deadlines  # not swept yet
        producer.polls.clear()
        await asyncio.sleep(0.05)  # between batches
        second = asyncio.ensure_future(publisher.publish_batch(records))
        for _ in range(10):
            await asyncio.sleep(0.005)
        polled = list(producer.polls)
        deliver()
        return polled, await second

    polled, outcomes = _poll_while(publisher, producer, two_batches)
    assert polled and all(timeout == 0 and not name.startswith("kafka-poll-wait")
                          for name, timeout in polled)
    assert [o.offset for o in outcomes] == [7, 7, 7]
