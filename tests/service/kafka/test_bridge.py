"""The publisher's own checks that need no broker (pure logic, no produce)."""

from __future__ import annotations

import asyncio

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
