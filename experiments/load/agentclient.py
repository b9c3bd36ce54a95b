"""The control protocol of a generator agent, seen from the run: one client per agent.

Plain HTTP with JSON bodies (as OpenMessaging Benchmark's workers), standard library only,
so the run needs nothing on its side. Every request carries the shared token and the
controller's version; the agent refuses either when it differs, and the refusals come
back here as `AgentError`s whose message says what to do.

Clocks: the agents' start time is a wall-clock time (perf_counter is CLOCK_MONOTONIC,
whose zero differs per host). Each agent's wall clock is compared with the run's by
NTP's method: of a few round trips, the one with the shortest round trip gives the offset
(agent clock minus ours at the midpoint), uncertain by at most half that round trip.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from time import time_ns
from typing import Any

from experiments.errors import LabError

PROTOCOL = 1
TOKEN_HEADER = "Authorization"
VERSION_HEADER = "X-Lab-Agent-Version"
DEFAULT_PORT = 7070
DEFAULT_TOKEN_ENV = "LAB_AGENT_TOKEN"
MIN_TOKEN_CHARS = 16
CLOCK_ROUNDS = 8
REQUEST_TIMEOUT_S = 5.0
_LOAD_DIR = Path(__file__).parent


def _code_version() -> str:
    """The protocol, the package version and a digest of the code that makes a result.

    Two hosts whose engines, recorder or histogram layout differ would merge numbers that
    mean different things; the digest catches an agent left running from another checkout.
    """
    digest = hashlib.sha256()
    for path in sorted([*_LOAD_DIR.glob("*.py"), _LOAD_DIR.parent / "histograms.py"]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    try:
        package = metadata.version("kafka-ingestion-lab")
    except metadata.PackageNotFoundError:
        package = "unknown"
    return f"{PROTOCOL}/{package}/{digest.hexdigest()[:12]}"


AGENT_VERSION = _code_version()


class AgentError(LabError):
    """An agent refused a request or could not be reached; `kind` says which."""

    def __init__(self, address: str, kind: str, message: str) -> None:
        super().__init__(f"load agent {address}: {message}")
        self.address = address
        self.kind = kind  # token | version | busy | refused | unreachable | protocol


@dataclass(frozen=True)
class ClockOffset:
    """The agent's wall clock minus ours, and how far that estimate can be off."""

    offset_ns: int
    uncertainty_ns: int  # half the shortest round trip
    rounds: int


class AgentClient:
    """Requests to one agent at `address` ("host:port")."""

    def __init__(self, address: str, token: str, version: str = AGENT_VERSION,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.address = address
        self.base = address if address.startswith("http://") else f"http://{address}"
        self._token = token
        self.version = version
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={TOKEN_HEADER: f"Bearer {self._token}", VERSION_HEADER: self.version,
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets, bad JSON
            raise AgentError(self.address, "unreachable", f"no answer ({exc})") from None

    def _refusal(self, exc: urllib.error.HTTPError) -> AgentError:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        kind = body.get("error", "protocol")
        if kind == "token":
            message = "refused the token (set the same token in both environments)"
        elif kind == "version":
            message = (f"runs version {body.get('agent_version')}, this run {self.version}: start "
                       f"the agent from the same checkout as the run")
        elif kind == "busy":
            message = f"busy with run {body.get('run_id')} (one run at a time); try again when it ends"
        else:
            message = body.get("message") or f"HTTP {exc.code}"
        return AgentError(self.address, kind, message)

    def hello(self) -> dict[str, Any]:
        return self.request("GET", "/v1/hello")

    def clock_offset(self, rounds: int = CLOCK_ROUNDS) -> ClockOffset:
        samples = []
        for _ in range(rounds):
            sent = time_ns()
            agent = int(self.request("GET", "/v1/clock")["wall_ns"])
            received = time_ns()
            samples.append((sent, agent, received))
        return estimate_offset(samples)

    def prepare(self, run_id: str, spec: dict[str, Any], indices: list[int],
                record_acks: bool) -> dict[str, Any]:
        return self.request("POST", "/v1/runs", {"run_id": run_id, "spec": spec,
                                                 "indices": indices, "record_acks": record_acks})

    def start(self, run_id: str, start_wall_ns: int) -> dict[str, Any]:
        """Start the prepared run at `start_wall_ns` on the agent's own wall clock."""
        return self.request("POST", f"/v1/runs/{run_id}/start", {"start_wall_ns": start_wall_ns})

    def status(self, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/runs/{run_id}")

    def fetch_acks(self, run_id: str, worker: int, dest: Path) -> None:
        request = urllib.request.Request(
            f"{self.base}/v1/runs/{run_id}/acks/{worker}",
            headers={TOKEN_HEADER: f"Bearer {self._token}", VERSION_HEADER: self.version})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer, dest.open("wb") as out:
                while chunk := answer.read(1 << 20):
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except OSError as exc:
            raise AgentError(self.address, "unreachable", f"acks of worker {worker} lost ({exc})") from None

    def release(self, run_id: str) -> None:
        self.request("DELETE", f"/v1/runs/{run_id}")


def estimate_offset(samples: list[tuple[int, int, int]]) -> ClockOffset:
    """NTP's estimate from (sent, agent clock, received) triples: the shortest round trip
    bounds the error best, since the agent read its clock somewhere inside it."""
    if not samples:
        raise ValueError("no clock samples")
    sent, agent, received = min(samples, key=lambda s: s[2] - s[0])
    return ClockOffset(offset_ns=agent - (sent + received) // 2,
                       uncertainty_ns=(received - sent + 1) // 2, rounds=len(samples))


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class LocalAgent:
    address: str
    pid: int


@contextmanager
def start_local_agents(count: int, token: str, token_env: str = DEFAULT_TOKEN_ENV,
                       extra_args: tuple[str, ...] = ()) -> Iterator[list[LocalAgent]]:
    """`count` agents on this machine, each its own process on a free loopback port
    (the tests' and the footprint probe's several hosts); stopped on exit."""
    env = {**os.environ, token_env: token}
    procs: list[subprocess.Popen[str]] = []
    agents: list[LocalAgent] = []
    try:
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, "-m", "experiments.load", "agent", "--port", "0",
                 "--token-env", token_env, *extra_args],
                env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("listening "):
                raise LabError(f"load agent did not start (exit {proc.poll()}): {line!r}")
            agents.append(LocalAgent(line.split()[1], proc.pid))
        yield agents
    finally:
        for proc in procs:
            stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen[str]) -> None:
    """Terminate an agent started in its own session, with its workers."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
