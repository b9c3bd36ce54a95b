"""The service's one settings class: environment (`INGEST_*`) and `KAFKA_BOOTSTRAP_SERVERS`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.kafka.delivery import DeliveryBridge, DeliveryReports
from service.modes import ProducerMode

MiB = 1024 * 1024
ProducerValue = str | int | float | bool


class Settings(BaseSettings):
    """Built once (by the CLI or a test) and passed to `create_app`; never a module global."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_", extra="ignore", validate_by_alias=True
    )

    mode: ProducerMode = ProducerMode.DURABLE
    # Where delivery reports are served: `loop` by default, measured faster in every case
    # (see DeliveryBridge and experiments/plans/bridge.yaml); `thread` is the classic form.
    delivery_bridge: DeliveryBridge = DeliveryBridge.LOOP
    # `errors`: librdkafka reports failures only (fire-and-forget; see DeliveryReports).
    delivery_reports: DeliveryReports = DeliveryReports.ALL
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1

    # The project-wide variable, deliberately without the INGEST_ prefix. The second
    # choice lets code pass `bootstrap_servers=`; validate_by_name stays off because it
    # would make INGEST_BOOTSTRAP_SERVERS a silent second source.
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers"),
    )
    topic: Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")] = (
        "events.main"
    )
    create_topic: bool = True
    topic_partitions: Annotated[int, Field(ge=1)] = 1

    # librdkafka overrides: mode defaults < YAML file < this JSON object.
    producer_config: dict[str, ProducerValue] = Field(default_factory=dict)
    producer_config_file: Path | None = None

    max_body_bytes: Annotated[int, Field(gt=0)] = 1 * MiB
    max_batch_events: Annotated[int, Field(gt=0)] = 10_000
    # Events handed to the producer whose delivery report has not arrived yet.
    max_in_flight: Annotated[int, Field(gt=0)] = 50_000
    retry_after_s: Annotated[int, Field(ge=1)] = 1
    # How long a request waits for room past the in-flight bound before its 503
    # (see Publisher.wait_for_room for why it is not zero).
    shed_delay_s: Annotated[float, Field(ge=0, le=5)] = 0.05

    ready_timeout_s: Annotated[float, Field(gt=0, le=30)] = 2.0
    startup_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # Uvicorn's wait for running requests after SIGTERM, before the producer flush.
    shutdown_grace_s: Annotated[int, Field(ge=1)] = 15
    shutdown_flush_s: Annotated[float, Field(ge=0)] = 10.0

    bench_endpoints: bool = False
    # The ingest routes served by a lean ASGI handler in front of FastAPI's router (see
    # service.ingest); off, FastAPI's routing serves them: kept to measure the difference.
    hot_path: bool = True
    log_level: str = "INFO"
    access_log: bool = False

    # -- HTTP hardening (service.guard, service.auth; defaults beside their peers' in
    # service/README.md "Hardening"). The parser is selectable so both stacks stay tested.
    http_parser: Literal["auto", "httptools", "h11"] = "auto"
    max_request_line_bytes: Annotated[int, Field(ge=256)] = 8 * 1024
    max_header_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024
    max_header_count: Annotated[int, Field(ge=8)] = 100
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    max_connections: Annotated[int, Field(ge=1)] = 2048
    # Proxies whose X-Forwarded-For/-Proto are believed (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"
    # Access control: off by default; keys as {"id": "key"} JSON and/or an "id:key" file.
    require_api_key: bool = False
    api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    api_keys_file: Path | None = None
    # -- Hardening, round 2 (issue 20; service/README.md "Hardening" and "Access control"):
    # deadlines a slow client cannot reset by trickling bytes in or out, a bound on
    # pipelining, keys for the operational routes, and less said about the server.
    # The whole request (head and body) from its first byte, or from the connection's
    # opening for the first request; the head and body timeouts above fall within it.
    request_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    # How long an answer may wait on a client that does not read it before the connection
    # is dropped (counted from the moment the kernel stopped taking its bytes).
    write_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    # Requests queued behind the one being served, per connection (httptools parses
    # ahead; h11 counts those served from bytes already received). Past it the
    # connection closes after their answers.
    max_pipelined_requests: Annotated[int, Field(ge=1)] = 16
    # Keys on /readyz, /metrics and the OpenAPI pages (/healthz stays open): the ops keys
    # when any is configured (they open nothing else), else the ingest keys.
    require_ops_key: bool = False
    ops_api_keys: dict[str, SecretStr] = Field(default_factory=dict)
    ops_api_keys_file: Path | None = None
    # /docs, /redoc and /openapi.json; off, they are not routes at all (404).
    docs: bool = True
    # uvicorn's `server: uvicorn` on every answer; off by default (it names the stack).
    server_header: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        # A batch larger than the in-flight bound could never be accepted.
        if self.max_batch_events > self.max_in_flight:
            raise ValueError(
                f"max_batch_events ({self.max_batch_events}) exceeds max_in_flight "
                f"({self.max_in_flight})"
            )
        if self.delivery_reports is DeliveryReports.ERRORS and self.mode is ProducerMode.DURABLE:
            raise ValueError("delivery_reports=errors needs mode fire-and-forget: a durable "
                             "request waits for its own event's delivery report")
        return self

    def public(self) -> dict[str, Any]:
        """The settings as logged on start (producer config is logged separately, masked)."""
        return self.model_dump(mode="json", exclude={"producer_config"})


def environment(values: Mapping[str, Any]) -> dict[str, str]:
    """The environment variables that give a service these settings, by field name.

    How a launcher passes settings, as a deployment would: the variable names and their
    encodings (JSON for mappings, lowercase booleans) come from `Settings` itself, so a
    new setting needs no second declaration. An unknown name is an error; None leaves
    the setting at its default.
    """
    fields = Settings.model_fields
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown service settings {unknown}")
    env = {}
    for name, value in values.items():
        if value is None:
            continue  # the setting's own default
        alias = fields[name].validation_alias
        var = alias.choices[0] if isinstance(alias, AliasChoices) else f"INGEST_{name.upper()}"
        env[str(var)] = _encoded(value)
    return env


def _encoded(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=_encoded)
    return str(value)
