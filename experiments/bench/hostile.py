"""What hostile connections cost the service: its RSS with N of each kind, and how long it
held them (`python -m experiments.bench hostile`, results/bench/hostile.json).

Kinds, each against a fresh `python -m service` (durable, default limits unless given):
- `drip`: a POST whose body arrives a byte every second (cut off by the body deadline);
- `no-read`: pipelined requests for the OpenAPI document, answers never read (dropped at
  the write deadline, or by the pipelining bound);
- `flood`: ~245 KB of pipelined `GET /openapi.json` per connection, nothing read (the
  probe of the security review: 10 connections grew the process by ~40 MiB before).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from experiments.kafka import ensure_kafka, unique_topic
from experiments.service_proc import ServiceProcess

KINDS = ("drip", "no-read", "flood")
_OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n"


def _open(port: int, kind: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    with contextlib.suppress(OSError):
        if kind == "drip":
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n")
        elif kind == "no-read":
            sock.sendall(_OPENAPI * 12)
        else:
            sock.sendall(_OPENAPI * 6000)  # ~245 KB
    return sock


def _drip(socks: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.send(b" ")


def _established(process: psutil.Process, port: int) -> int:
    return sum(1 for c in process.net_connections()
               if c.laddr and c.laddr.port == port and c.status == "ESTABLISHED")


def measure(kind: str, connections: int, bootstrap: str, log_dir: Path, hold_s: float = 40.0,
            source: Path | None = None, **settings: Any) -> dict[str, Any]:
    """`source`: another checkout whose service runs instead (a before/after)."""
    with ServiceProcess("durable", bootstrap, unique_topic("hostile"), log_dir / f"{kind}.log",
                        source=source, **settings) as svc:
        process = psutil.Process(svc.pid)
        time.sleep(1.0)
        before = process.memory_info().rss
        socks = [_open(svc.port, kind) for _ in range(connections)]
        stop = threading.Event()
        dripper = threading.Thread(target=_drip, args=(socks, stop), daemon=True)
        if kind == "drip":
            dripper.start()
        started, peak, held_until = time.monotonic(), before, None
        while time.monotonic() - started < hold_s:
            peak = max(peak, process.memory_info().rss)
            if held_until is None and _established(process, svc.port) == 0:
                held_until = time.monotonic() - started
            time.sleep(0.25)
        after = process.memory_info().rss
        stop.set()
        for sock in socks:
            sock.close()
    return {"kind": kind, "connections": connections, "rss_before_mib": round(before / 2**20, 1),
            "rss_peak_mib": round(peak / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
            "grown_peak_mib": round((peak - before) / 2**20, 1),
            "all_dropped_after_s": None if held_until is None else round(held_until, 1),
            "watched_s": hold_s, "settings": {k: str(v) for k, v in settings.items()},
            "source": str(source) if source else "this checkout"}


def run_hostile(out: Path, connections: int = 100, hold_s: float = 40.0,
                baseline: Path | None = None) -> list[dict[str, Any]]:
    kafka = ensure_kafka(None)
    out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = out.parent / (out.stem + "-logs")
    log_dir.mkdir(exist_ok=True)
    sources = [None] if baseline is None else [None, baseline]
    rows = [measure(kind, connections, kafka.bootstrap, log_dir, hold_s, source)
            for kind in KINDS for source in sources]
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return rows
