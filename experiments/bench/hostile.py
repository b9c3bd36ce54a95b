"""Hostile clients against the service: what N connections of each kind cost it, and for how long.

Each kind runs against a fresh `python -m service` (its default settings, plus any given),
so one kind's leftovers never count against the next:

- `slow_body`: a `POST /` announcing a body of `INGEST_MAX_BODY_BYTES`, all of it but
  the last bytes sent at once, then one byte every `drip_s` (a body that never ends and
  never falls silent long enough for a per-read timer);
- `non_reading`: `GET /openapi.json` pipelined `requests` times, no answer ever read;
- `pipeline_flood`: `flood_bytes` of pipelined `GET /healthz`, no answer ever read.

The clients shrink their receive buffers (`SO_RCVBUF`), so answers they do not read
back up into the service after a few KiB rather than after the kernel's megabytes.

Recorded per kind: the service's RSS before (after a warm-up of every route used),
at its peak while the connections are held, and after; how long the service held the
last of them (counted from its own sockets, psutil, not from what the clients see);
its CPU seconds over the episode; and one ordinary request made as soon as every hostile
connection has sent what it sends at once. The
figures go to a JSON file; nothing here asserts (tests/service/test_deadlines.py holds
the pass/fail checks, with generous bounds).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from experiments.bench.profile import rss_mb
from experiments.cpu import cpu_seconds, process_tree
from experiments.kafka import LocalKafka, ensure_kafka, unique_topic
from experiments.provenance import collect_provenance, git_info
from experiments.service_proc import ServiceProcess
from service.settings import Settings

log = logging.getLogger("experiments.bench.hostile")

KINDS = ("slow_body", "non_reading", "pipeline_flood")
CLIENT_RCVBUF = 4096
_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: hostile\r\n\r\n"
_OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: hostile\r\n\r\n"


@dataclass
class HostileClient:
    """One connection: bytes still to send at once, then a drip of one byte per `drip_s`."""

    sock: socket.socket
    pending: bytes
    drip: bytes = b""
    drip_s: float = 0.0
    next_drip: float = 0.0
    closed: bool = False

    def pump(self, now: float) -> None:
        """Send what the socket takes without blocking; never read."""
        if self.closed:
            return
        try:
            if self.pending:
                sent = self.sock.send(self.pending)
                self.pending = self.pending[sent:]
            elif self.drip and now >= self.next_drip:
                self.sock.send(self.drip[:1])
                self.drip = self.drip[1:]
                self.next_drip = now + self.drip_s
        except BlockingIOError:
            pass
        except OSError as exc:  # the service closed or reset it
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                raise
            self.closed = True


def connect(port: int, payload: bytes, drip: bytes = b"", drip_s: float = 0.0) -> HostileClient:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return HostileClient(sock, payload, drip, drip_s, time.monotonic() + drip_s)


def payloads(kind: str, settings: Settings, requests: int, flood_bytes: int,
             drip_bytes: int) -> tuple[bytes, bytes]:
    """What one connection of `kind` sends at once, and what it then drips."""
    if kind == "slow_body":
        size = settings.max_body_bytes
        head = (f"POST / HTTP/1.1\r\nHost: hostile\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n").encode()
        return head + b" " * (size - drip_bytes), b" " * drip_bytes
    if kind == "non_reading":
        return _OPENAPI * requests, b""
    if kind == "pipeline_flood":
        return _HEALTHZ * (flood_bytes // len(_HEALTHZ)), b""
    raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")


def held_connections(pid: int, port: int, client_ports: set[int]) -> int:
    """Sockets the service still has open to these clients (its own view, not theirs)."""
    held = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if (conn.laddr and conn.laddr.port == port and conn.raddr
                        and conn.raddr.port in client_ports):
                    held += 1
    return held


def _get(url: str, timeout: float = 10) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status = response.status
    except OSError:
        status = 0
    return status, round((time.monotonic() - started) * 1000, 1)


@dataclass
class Episode:
    kind: str
    connections: int
    samples: list[dict[str, float]] = field(default_factory=list)
    probe: dict[str, float] = field(default_factory=dict)

    def summary(self, rss_before: float, rss_after: float, cpu_s: float,
                sent_s: float, held_s: float | None) -> dict[str, Any]:
        peak = max([s["rss_mb"] for s in self.samples] + [rss_before])
        return {
            "kind": self.kind,
            "connections": self.connections,
            "rss_before_mb": rss_before,
            "rss_peak_mb": peak,
            "rss_after_mb": rss_after,
            "growth_at_peak_mb": round(peak - rss_before, 1),
            "per_connection_at_peak_kib": round((peak - rss_before) * 1024 / self.connections, 1),
            "seconds_to_send": round(sent_s, 1),
            # From the moment every connection was open until the service held none of
            # them; None: some were still held when the episode's time ran out.
            "held_s": held_s,
            "service_cpu_s": round(cpu_s, 2),
            "probe_during_attack": self.probe,
            "samples": self.samples,
        }


def run_kind(kind: str, service: ServiceProcess, settings: Settings, connections: int,
             max_s: float, requests: int, flood_bytes: int, drip_bytes: int,
             drip_s: float) -> dict[str, Any]:
    pid, port = service.pid, service.port
    for path in ("/healthz", "/openapi.json", "/readyz"):  # lazy start-up work, not the attack's
        _get(service.url + path)
    time.sleep(1.0)
    rss_before = rss_mb(pid)
    cpu_before = cpu_seconds(process_tree(pid))
    payload, drip = payloads(kind, settings, requests, flood_bytes, drip_bytes)
    episode = Episode(kind, connections)
    started = time.monotonic()
    clients = [connect(port, payload, drip, drip_s) for _ in range(connections)]
    client_ports = {c.sock.getsockname()[1] for c in clients}
    try:
        held_s: float | None = None
        sent_at: float | None = None
        next_sample = started
        while True:
            now = time.monotonic()
            for client in clients:
                client.pump(now)
            if sent_at is None and all(c.closed or not c.pending for c in clients):
                sent_at = now
                status, ms = _get(service.url + "/healthz")  # an ordinary client, meanwhile
                episode.probe = {"status": status, "ms": ms}
            if now >= next_sample:
                held = held_connections(pid, port, client_ports)
                episode.samples.append({"t_s": round(now - started, 1),
                                        "rss_mb": rss_mb(pid), "held": held})
                next_sample = now + 0.5
                if sent_at is not None and held == 0:
                    held_s = round(now - sent_at, 1)
                    break
            if now - started > max_s:
                break
            time.sleep(0.02)
    finally:
        for client in clients:
            client.sock.close()
    time.sleep(2.0)  # the service sees the closes of connections it still held
    return episode.summary(rss_before, rss_mb(pid), cpu_seconds(process_tree(pid)) - cpu_before,
                           (sent_at or time.monotonic()) - started, held_s)


def run_hostile(out: Path, connections: int = 100, kinds: tuple[str, ...] = KINDS,
                overrides: Mapping[str, str] | None = None, max_s: float = 120,
                requests: int = 2000, flood_bytes: int = 256 * 1024, drip_bytes: int = 100,
                drip_s: float = 1.0, bootstrap: str | None = None) -> dict[str, Any]:
    """Every kind against a fresh service; the document is written to `out` and returned."""
    env = {k.upper() if k.upper().startswith("INGEST_") else f"INGEST_{k.upper()}": v
           for k, v in (overrides or {}).items()}
    settings = Settings(**{k.removeprefix("INGEST_").lower(): v for k, v in env.items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    target = ensure_kafka(bootstrap)
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in kinds:
                log.info("%s: %d connections", kind, connections)
                with _service(target.bootstrap, Path(tmp) / f"{kind}.log", env) as service:
                    results.append(run_kind(kind, service, settings, connections, max_s,
                                            requests, flood_bytes, drip_bytes, drip_s))
    finally:
        if target.started_here:
            LocalKafka().stop()
    document = {
        "schema": "lab.bench.hostile/1",
        "settings": {k: v for k, v in settings.public().items()
                     if k.endswith(("_timeout_s", "_bytes", "_requests", "connections"))},
        "overrides": env,
        "clients": {"rcvbuf_bytes": CLIENT_RCVBUF, "requests": requests,
                    "flood_bytes": flood_bytes, "drip_bytes": drip_bytes, "drip_s": drip_s},
        "kinds": results,
        "git": git_info(),
        "provenance": collect_provenance(target.kafka_version),
    }
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return document


@contextlib.contextmanager
def _service(bootstrap: str, log_file: Path, env: Mapping[str, str]) -> Iterator[ServiceProcess]:
    service = ServiceProcess("durable", bootstrap, unique_topic("hostile"), log_file, env=env)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def table(document: dict[str, Any]) -> str:
    lines = ["| kind | connections | RSS before -> peak -> after (MB) | per connection at peak (KiB) "
             "| held (s) | service CPU (s) | probe |",
             "|---|---|---|---|---|---|---|"]
    for k in document["kinds"]:
        probe = k["probe_during_attack"]
        held = "still held" if k["held_s"] is None else k["held_s"]
        lines.append(f"| {k['kind']} | {k['connections']} | {k['rss_before_mb']} -> "
                     f"{k['rss_peak_mb']} -> {k['rss_after_mb']} | {k['per_connection_at_peak_kib']} "
                     f"| {held} | {k['service_cpu_s']} | {probe.get('status')} in {probe.get('ms')} ms |")
    return "\n".join(lines)
