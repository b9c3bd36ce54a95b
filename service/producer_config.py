"""The effective librdkafka configuration: mode defaults < YAML file < JSON from the env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.errors import ConfigError
from service.modes import ProducerMode, mode_defaults
from service.settings import Settings

# Substrings of librdkafka property names whose values must never be logged or served.
_SECRET_MARKERS = ("password", "secret", ".pem", "oauthbearer.config", "jaas")
# Properties an AdminClient needs to reach the same cluster as the producer.
_CONNECTION_PREFIXES = (
    "bootstrap.", "security.", "sasl.", "ssl.", "client.", "socket.", "broker.",
    "reconnect.", "metadata.", "api.", "enable.ssl", "retry.backoff",
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
    return {
        k: "***" if any(m in k.lower() for m in _SECRET_MARKERS) else v
        for k, v in sorted(config.items())
    }


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
