"""The effective librdkafka configuration: mode defaults < YAML file < JSON from the env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.errors import ConfigError
from service.modes import ProducerMode, mode_defaults
from service.settings import Settings

# The librdkafka properties whose values may be logged at start-up and served by /readyz:
# tuning and behaviour, never identity or credentials. Every other property (passwords,
# key passphrases and PEMs, SASL user names, token endpoints, file locations, callbacks,
# and whatever a future librdkafka adds) shows as SET_MARK, never its value: masking by
# name pattern missed sasl.oauthbearer.assertion.private.key.passphrase (issue 20).
# tests/service/test_producer_config.py walks every property the bundled librdkafka
# documents against this list.
SHOWN = frozenset({
    "bootstrap.servers", "client.id", "acks", "request.required.acks", "enable.idempotence",
    "enable.gapless.guarantee", "linger.ms", "queue.buffering.max.ms", "batch.size",
    "batch.num.messages", "compression.type", "compression.codec", "compression.level",
    "message.timeout.ms", "delivery.timeout.ms", "request.timeout.ms", "retries",
    "message.send.max.retries", "retry.backoff.ms", "retry.backoff.max.ms",
    "queue.buffering.max.messages", "queue.buffering.max.kbytes", "message.max.bytes",
    "message.copy.max.bytes", "max.in.flight.requests.per.connection", "max.in.flight",
    "partitioner", "sticky.partitioning.linger.ms", "delivery.report.only.error",
    "socket.timeout.ms", "socket.keepalive.enable", "socket.nagle.disable",
    "socket.send.buffer.bytes", "socket.receive.buffer.bytes", "socket.connection.setup.timeout.ms",
    "connections.max.idle.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms",
    "metadata.max.age.ms", "topic.metadata.refresh.interval.ms", "topic.metadata.refresh.sparse",
    "topic.metadata.refresh.fast.interval.ms", "statistics.interval.ms", "log_level", "debug",
    "api.version.request", "api.version.request.timeout.ms", "broker.version.fallback",
    "broker.address.family", "broker.address.ttl", "security.protocol", "sasl.mechanism",
    "sasl.mechanisms", "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification", "client.dns.lookup", "client.rack",
})
SET_MARK = "(set)"
# Properties an AdminClient needs to reach the same cluster as the producer (https.*: the
# OIDC token endpoint's TLS, for SASL/OAUTHBEARER).
_CONNECTION_PREFIXES = (
    "bootstrap.", "security.", "sasl.", "ssl.", "https.", "client.", "socket.", "broker.",
    "reconnect.", "metadata.", "api.", "enable.ssl", "enable.sasl", "retry.backoff",
)


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of librdkafka property -> scalar value."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read producer config file {path}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ConfigError(f"producer config file {path} must hold a mapping of property names")
    bad = [k for k, v in loaded.items() if not isinstance(v, str | int | float | bool)]
    if bad:
        raise ConfigError(f"producer config file {path}: non-scalar values for {sorted(bad)}")
    return loaded


def effective_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    config.update(mode_defaults(settings.mode))
    if settings.producer_config_file is not None:
        config.update(load_config_file(settings.producer_config_file))
    config.update(settings.producer_config)
    return config


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as it may leave the process: values of SHOWN properties, SET_MARK
    for every other property that is set."""
    return {k: v if k in SHOWN else SET_MARK for k, v in sorted(config.items())}


def admin_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k.startswith(_CONNECTION_PREFIXES)}


def weaker_than_mode(mode: ProducerMode, config: dict[str, Any]) -> list[str]:
    """Overrides that make the mode's answer mean less than it promises: a durable 'delivered'
    that is not on all in-sync replicas, or a fire-and-forget 'accepted' that expires sooner
    than the mode's default (see service/modes.py for why that loses events on a failover)."""
    warnings = []
    if mode is ProducerMode.FIRE_AND_FORGET:
        floor = mode_defaults(mode)["message.timeout.ms"]
        timeout = int(config.get("message.timeout.ms", floor))
        if timeout < floor:
            warnings.append(
                f"message.timeout.ms={timeout}: accepted events expire before a leader failover "
                f"may end (it took up to 13.4 s on 3 nodes); below {floor} they can be lost")
        return warnings
    if str(config.get("acks", "all")).lower() not in ("all", "-1"):
        warnings.append(f"acks={config.get('acks')}: a durable answer no longer means all ISRs")
    if str(config.get("enable.idempotence", "false")).lower() not in ("true", "1"):
        warnings.append("enable.idempotence is off: retries may duplicate or reorder events")
    return warnings
