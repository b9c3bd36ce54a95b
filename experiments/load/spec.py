"""What load to apply: one immutable, validated description shared by library, CLI and workers."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from experiments.errors import LabError

Endpoint = Literal["seed", "single", "batch", "noop"]
Model = Literal["closed", "open"]
Engine = Literal["aiohttp", "raw"]

ENDPOINT_PATHS: dict[str, str] = {
    "seed": "/",
    "single": "/v1/events",
    "batch": "/v1/events/batch",
    "noop": "/_bench/noop",
}
MODELS = ("closed", "open")
# aiohttp: the original client, a coroutine per request. raw: prebuilt request bytes on
# asyncio Protocols over uvloop with httptools parsing (rawengine), ~10x less CPU per
# request. raw is the default: it passes every test the aiohttp engine passes (tests/experiments/load
# runs each engine test with both) and takes far less CPU from the service it measures.
ENGINES = ("aiohttp", "raw")
DEFAULT_ENGINE: Engine = "raw"

# Hard bounds so a typo cannot turn the generator into an hour-long flood.
MAX_DURATION_S = 3600.0
MAX_CONNECTIONS = 10_000
MAX_RATE = 1_000_000.0


class LoadSpecError(LabError):
    """A load spec that cannot be run; `field` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class LoadSpec:
    """One load: where to send, which model, how long, and what each request carries.

    `connections` is the closed loop's concurrency and the open loop's bound on requests
    in flight; `rate` (requests/s) is used by the open loop only. Both are totals over all
    `workers` processes. `field_size` is the length in characters of each `data` value.
    """

    url: str = "http://127.0.0.1:8000"
    endpoint: Endpoint = "seed"
    model: Model = "closed"
    connections: int = 50
    rate: float | None = 1000.0  # None is fine for the closed loop, which has no rate
    duration_s: float = 60.0
    warmup_s: float = 5.0
    data_fields: int = 1
    field_size: int = 16
    batch_size: int = 10
    body_file: str | None = None
    seed: int = 1
    workers: int = 1
    timeout_s: float = 10.0
    # After the window: how long overdue sends and unanswered requests may still finish.
    # What is left then is counted as unfinished, so a collapsed service cannot hold a run.
    drain_limit_s: float = 5.0
    # Load is only ever aimed at this machine unless the caller says otherwise on purpose.
    allow_remote: bool = False
    # Sent as `Authorization: Bearer <key>` on every request (a service with access control
    # on); never written to a result file.
    api_key: str | None = field(default=None, repr=False)
    engine: Engine = DEFAULT_ENGINE

    @property
    def path(self) -> str:
        return ENDPOINT_PATHS[self.endpoint]

    @property
    def target(self) -> str:
        return self.url.rstrip("/") + self.path

    @property
    def events_per_request(self) -> int | None:
        """Events each request carries, when known before the answers arrive."""
        if self.body_file is not None:
            return None
        return self.batch_size if self.endpoint == "batch" else 1

    def validate(self) -> LoadSpec:
        """Return self, or raise `LoadSpecError` naming the first bad field."""
        if self.endpoint not in ENDPOINT_PATHS:
            raise LoadSpecError("endpoint", f"{self.endpoint!r} not in {sorted(ENDPOINT_PATHS)}")
        if self.model not in MODELS:
            raise LoadSpecError("model", f"{self.model!r} not in {list(MODELS)}")
        if self.engine not in ENGINES:
            raise LoadSpecError("engine", f"{self.engine!r} not in {list(ENGINES)}")
        _check_url(self.url, self.allow_remote)
        _check_range("connections", self.connections, 1, MAX_CONNECTIONS)
        _check_range("workers", self.workers, 1, 64)
        if self.workers > self.connections:
            raise LoadSpecError("workers", "more workers than connections leaves some idle")
        if self.model == "open":
            if not isinstance(self.rate, int | float):
                raise LoadSpecError("rate", "the open loop needs a rate (requests/s)")
            _check_range("rate", self.rate, 0.001, MAX_RATE)
        _check_range("duration_s", self.duration_s, 0.001, MAX_DURATION_S)
        _check_range("warmup_s", self.warmup_s, 0.0, MAX_DURATION_S)
        _check_range("data_fields", self.data_fields, 0, 10_000)
        _check_range("field_size", self.field_size, 0, 10_000_000)
        _check_range("batch_size", self.batch_size, 1, 100_000)
        _check_range("timeout_s", self.timeout_s, 0.001, 600.0)
        _check_range("drain_limit_s", self.drain_limit_s, 0.0, 600.0)
        if self.body_file is not None and not Path(self.body_file).is_file():
            raise LoadSpecError("body_file", f"{self.body_file} is not a file")
        return self

    def share(self, index: int) -> LoadSpec:
        """The part of this load that worker `index` of `workers` applies.

        Connections are split as evenly as integers allow; the open loop's rate is split
        exactly, and each worker takes every `workers`-th slot of the one global schedule
        (see `openloop`), so together they keep the asked spacing.
        """
        base, extra = divmod(self.connections, self.workers)
        return replace(
            self,
            connections=base + (1 if index < extra else 0),
            rate=self.rate / self.workers if self.rate else self.rate,
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["api_key"] = "(set, not recorded)" if self.api_key else None
        data["path"] = self.path
        data["events_per_request"] = self.events_per_request
        if self.model == "closed":
            # The closed loop has no rate; recording one would invite a wrong comparison.
            data["rate"] = None
        return data


def request_headers(spec: LoadSpec) -> dict[str, str]:
    """The headers every request of `spec` carries, whichever engine sends it."""
    headers = {"Content-Type": "application/json"}
    if spec.api_key:
        headers["Authorization"] = f"Bearer {spec.api_key}"
    return headers


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise LoadSpecError(name, f"{value} outside [{low}, {high}]")


def _check_url(url: str, allow_remote: bool) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port == -1 or parts.netloc.endswith(":"):
        raise LoadSpecError("url", f"{url!r} is not an http://host[:port] base URL")
    if allow_remote:
        return
    host = parts.hostname
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadSpecError("url", f"{host} is not a loopback address (set allow_remote to aim elsewhere)")
