"""What a run drives: the service the suite launches, or one it did not start.

A platform team benchmarks what it deploys: an instance running elsewhere on this box, a
second implementation, a service behind a load balancer. `target_url` names such a
service; the suite then starts nothing, drives the URL, audits the topic the service
writes to, records what it could learn of the target's identity, and samples the CPU of
the local process listening on the target's port, when there is one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from experiments.cpu import Roots
from experiments.errors import LabError
from experiments.kafka.broker import listening_pid
from experiments.load.spec import LoadSpecError, _check_url
from experiments.service_proc import ServiceProcess

PROBE_PATHS = ("/readyz", "/healthz", "/")


class TargetError(LabError):
    """A target that cannot be driven: malformed, not allowed, or not answering."""


class Target(Protocol):
    """The service a run drives."""

    url: str

    def start(self) -> dict[str, Any]:
        """Make the target ready; return the `target` section of the summary."""
        ...

    def pids(self) -> dict[str, Roots]:
        """Local processes to sample (name -> pids), possibly none."""
        ...

    def metrics(self) -> str:
        """The target's Prometheus text, or "" when it has none."""
        ...

    def stop(self) -> int | None:
        """Stop what the suite started (nothing for an external target); exit code or None."""
        ...


@dataclass
class LaunchedService:
    """A service process the suite starts and stops (the Python service, or another impl)."""

    process: ServiceProcess
    impl: str = "python"
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.process.url

    def start(self) -> dict[str, Any]:
        self.ready = self.process.start()
        return {"url": self.url, "launched_by_suite": True, "impl": self.impl,
                "identity": {"pid": self.process.pid, "readyz": self.ready}}

    def pids(self) -> dict[str, Roots]:
        # Asked at every tick: a service fault with a restart replaces the process.
        return {"service": lambda: [self.process.pid]}

    def metrics(self) -> str:
        return self.process.metrics()

    def stop(self) -> int | None:
        return self.process.stop()


@dataclass
class ExternalTarget:
    """A service at `url` that the suite did not start and will not stop."""

    url: str
    allow_remote: bool = False
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        try:
            _check_url(self.url, self.allow_remote)
        except LoadSpecError as exc:
            raise TargetError(f"target_url: {exc}") from None
        if urlsplit(self.url).path not in ("", "/"):
            raise TargetError(f"target_url {self.url!r}: give the base URL (the suite adds each "
                              "endpoint's path)")

    def start(self) -> dict[str, Any]:
        """Check that the target answers HTTP at all and learn what it says about itself."""
        identity: dict[str, Any] = {}
        answered = False
        errors = []
        for path in PROBE_PATHS:
            try:
                status, headers, body = _get(self.url + path, self.timeout_s)
            except OSError as exc:  # refused, reset, timed out: nothing answers there
                errors.append(f"{path}: {exc}")
                continue
            answered = True
            identity.setdefault("server", headers.get("server"))
            identity[path] = {"status": status, "body": _brief(body)}
            if path == "/readyz" and status == 200:
                break
        if not answered:
            raise TargetError(f"target_url {self.url} does not answer HTTP ({'; '.join(errors)})")
        pid = listening_pid(self.url.removeprefix("http://"))
        if pid is not None:
            identity["pid"] = pid
        return {"url": self.url, "launched_by_suite": False, "impl": "external",
                "identity": identity}

    def pids(self) -> dict[str, Roots]:
        pid = listening_pid(self.url.removeprefix("http://"))
        return {} if pid is None else {"service": pid}

    def metrics(self) -> str:
        try:
            status, _, body = _get(self.url + "/metrics", self.timeout_s)
        except OSError:
            return ""
        return body.decode("utf-8", "replace") if status == 200 else ""

    def stop(self) -> int | None:
        return None


def _get(url: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None


def _brief(body: bytes, limit: int = 300) -> Any:
    """A probe's answer for the record: parsed JSON when it is JSON, else the first bytes."""
    try:
        return json.loads(body)
    except ValueError:
        return body[:limit].decode("utf-8", "replace")
