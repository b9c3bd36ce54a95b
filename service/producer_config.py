"""The effective librdkafka configuration: mode defaults < YAML file < JSON from the env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.errors import ConfigError
from service.modes import ProducerMode, mode_defaults
from service.settings import Settings

# librdkafka properties whose values may be shown (in /readyz and the start-up log):
# addresses, delivery semantics, batching, sizes, timeouts and the names of protocols and
# algorithms. Every other property present is shown as WITHHELD, never its value:
# credentials, key material, the paths and URLs that lead to them, user and principal
# names, and whatever librdkafka adds later until someone decides it is safe to show.
# tests/service/test_producer_config.py walks every property librdkafka documents.
SHOWN_PROPERTIES = frozenset({
    # where and who
    "bootstrap.servers", "metadata.broker.list", "client.id", "client.rack",
    "client.dns.lookup", "broker.address.family", "broker.address.ttl",
    # delivery semantics
    "acks", "request.required.acks", "enable.idempotence", "enable.gapless.guarantee",
    "message.timeout.ms", "delivery.timeout.ms", "request.timeout.ms",
    "transaction.timeout.ms", "message.send.max.retries", "retries", "retry.backoff.ms",
    "retry.backoff.max.ms", "max.in.flight.requests.per.connection", "max.in.flight",
    "partitioner", "sticky.partitioning.linger.ms", "delivery.report.only.error",
    # batching, buffers, sizes
    "linger.ms", "queue.buffering.max.ms", "queue.buffering.max.messages",
    "queue.buffering.max.kbytes", "queue.buffering.backpressure.threshold",
    "batch.num.messages", "batch.size", "compression.type", "compression.codec",
    "compression.level", "message.max.bytes", "message.copy.max.bytes",
    "receive.message.max.bytes",
    # connections and metadata
    "socket.timeout.ms", "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
    "socket.keepalive.enable", "socket.nagle.disable", "socket.max.fails",
    "socket.connection.setup.timeout.ms", "connections.max.idle.ms", "reconnect.backoff.ms",
    "reconnect.backoff.max.ms", "topic.metadata.refresh.interval.ms", "metadata.max.age.ms",
    "topic.metadata.refresh.fast.interval.ms", "topic.metadata.refresh.sparse",
    "topic.metadata.propagation.max.ms", "api.version.request.timeout.ms",
    "enable.metrics.push", "statistics.interval.ms",
    # logging
    "debug", "log_level", "log.queue", "log.thread.name", "log.connection.close",
    # security: which protocol and mechanism, never the credentials or where they are
    "security.protocol", "sasl.mechanism", "sasl.mechanisms", "sasl.oauthbearer.method",
    "ssl.endpoint.identification.algorithm", "enable.ssl.certificate.verification",
    "ssl.cipher.suites", "ssl.curves.list", "ssl.sigalgs.list",
})
WITHHELD = "***"
# Properties an AdminClient needs to reach the same cluster as the producer: the address,
# and every TLS, SASL and HTTPS (OAUTHBEARER/OIDC token endpoint) setting.
_CONNECTION_PREFIXES = (
    "bootstrap.", "security.", "sasl.", "ssl.", "https.", "client.", "socket.", "broker.",
    "reconnect.", "metadata.", "api.", "enable.ssl", "enable.sasl.", "retry.backoff",
)


def load_config_file(path: Path) -> dict[str, Any]:
    """A YAML mapping of librdkafka property -> scalar value."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read producer config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # The parser's message quotes the offending line, which may hold a secret: say
        # only where it is, and drop the cause so no traceback prints it either.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"producer config file {path} is not valid YAML{where}") from None
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
    """The config as it may be shown: values of `SHOWN_PROPERTIES`, WITHHELD for the rest."""
    return {k: v if k in SHOWN_PROPERTIES else WITHHELD for k, v in sorted(config.items())}


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
