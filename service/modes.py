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
# is sent, not how safely Kafka stores the event. `message.timeout.ms` bounds how long a
# durable request can wait for its delivery report (librdkafka's default is 5 minutes,
# far longer than any HTTP client waits); 10 s is our documented default.
_COMMON: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "message.timeout.ms": 10000,
    "linger.ms": 5,
}

MODE_DEFAULTS: MappingProxyType[ProducerMode, MappingProxyType[str, Any]] = MappingProxyType({
    ProducerMode.DURABLE: MappingProxyType(dict(_COMMON)),
    ProducerMode.FIRE_AND_FORGET: MappingProxyType(dict(_COMMON)),
})


def mode_defaults(mode: ProducerMode) -> dict[str, Any]:
    """A fresh, mutable copy of the librdkafka defaults for `mode`."""
    return dict(MODE_DEFAULTS[mode])
