"""Producer modes: the one place that names them and their librdkafka defaults."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Any


class ProducerMode(StrEnum):
    """When the service answers: after the broker acknowledged, or once the client buffered."""

    DURABLE = "durable"
    FIRE_AND_FORGET = "fire-and-forget"


# Both modes write with acks=all and idempotence: the mode decides when the HTTP answer
# is sent, not how safely Kafka stores the event. They differ in `message.timeout.ms`, how
# long librdkafka retries an event before giving up (its own default is 5 minutes):
# - durable, 10 s: a request waits for its event's report, so this bounds the wait within
#   what HTTP clients wait; an expired event is answered 503, not lost.
# - fire-and-forget, 30 s: no request waits and the event was already acknowledged, so an
#   expired event is an acknowledged event lost. A crashed leader's partitions move only
#   when its broker session times out: 8.0-13.4 s measured on 3 nodes, and with 10 s
#   fire-and-forget lost acknowledged events in 2 of 3 leader kills (up to 17.5%), with
#   30 s none (plan `failover`). What it costs is buffer, bounded by max_in_flight.
_COMMON: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
}

MODE_DEFAULTS: MappingProxyType[ProducerMode, MappingProxyType[str, Any]] = MappingProxyType({
    ProducerMode.DURABLE: MappingProxyType({**_COMMON, "message.timeout.ms": 10_000}),
    ProducerMode.FIRE_AND_FORGET: MappingProxyType({**_COMMON, "message.timeout.ms": 30_000}),
})


def mode_defaults(mode: ProducerMode) -> dict[str, Any]:
    """A fresh, mutable copy of the librdkafka defaults for `mode`."""
    return dict(MODE_DEFAULTS[mode])
