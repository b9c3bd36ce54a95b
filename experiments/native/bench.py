"""seed-rs beside the Python service on `POST /`, both modes, one worker, in one run.

Each target gets a fresh topic on the same broker, a wrk warm-up, then one measured wrk
run (1 thread, 50 connections by default); the service's CPU is the cpu-time its process
tree used during the measured run divided by the run's wall time (1.0 = one core busy),
beside the broker's and the whole machine's, so a noisy neighbour on a shared box shows.
Targets run back to back so their ratios are comparable; absolute rates are this box's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from experiments.errors import MissingToolError
from experiments.kafka import LocalKafka, ensure_kafka, unique_topic
from experiments.kafka.broker import listening_pid
from experiments.load.wrk import wrk_script
from experiments.native.service import RustService
from experiments.service_proc import ServiceProcess

SEED_BODY = b'{"client_id": "test", "name": "hello_event", "data": {"test": "value"}}'
TARGETS = (("rust", "fire-and-forget"), ("rust", "durable"),
           ("python", "fire-and-forget"), ("python", "durable"))
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_REQUESTS = re.compile(r"(\d+) requests in")
_P = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Measurement:
    impl: str
    mode: str
    rps: float
    requests: int
    non_2xx: int
    p50_ms: float | None
    p99_ms: float | None
    service_cores: float
    broker_cores: float | None
    machine_cores: float
    seconds: float


def _tree_cpu(pid: int | None) -> float:
    """User+system cpu seconds of `pid` and its descendants (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int) -> str:
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    return subprocess.run(cmd, capture_output=True, text=True, check=True,
                          timeout=seconds + 60).stdout


def measure(impl: str, mode: str, service: ServiceProcess, wrk: str, script: Path,
            broker_pid: int | None, seconds: int, warmup: int, connections: int) -> Measurement:
    url = f"{service.url}/"
    run_wrk(wrk, url, script, warmup, connections)
    before = (_tree_cpu(service.pid), _tree_cpu(broker_pid), _machine_busy(), time.monotonic())
    out = run_wrk(wrk, url, script, seconds, connections)
    after = (_tree_cpu(service.pid), _tree_cpu(broker_pid), _machine_busy(), time.monotonic())
    wall = after[3] - before[3]
    latency = {p: float(v) * _UNIT_MS[unit] for p, v, unit in _P.findall(out)}
    rps, requests, non_2xx = _RPS.search(out), _REQUESTS.search(out), _NON_2XX.search(out)
    return Measurement(
        impl=impl, mode=mode,
        rps=float(rps[1]) if rps else 0.0,
        requests=int(requests[1]) if requests else 0,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        p50_ms=latency.get("50"), p99_ms=latency.get("99"),
        service_cores=round((after[0] - before[0]) / wall, 3),
        broker_cores=round((after[1] - before[1]) / wall, 3) if broker_pid else None,
        machine_cores=round((after[2] - before[2]) / wall, 3),
        seconds=round(wall, 2),
    )


def table(rows: list[Measurement]) -> str:
    # A 503 (full queue, failed delivery) is an answer too: 2xx/s is the accepted rate.
    lines = ["| service | mode | req/s | 2xx/s | p50 ms | p99 ms | non-2xx | service cores | "
             "µs CPU/request | broker cores | machine cores |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in rows:
        per_request = 1e6 * m.service_cores / m.rps if m.rps else float("nan")
        ok_rate = m.rps * (m.requests - m.non_2xx) / m.requests if m.requests else 0.0
        lines.append(f"| {m.impl} | {m.mode} | {m.rps:,.0f} | {ok_rate:,.0f} | {m.p50_ms} | {m.p99_ms} "
                     f"| {m.non_2xx} "
                     f"| {m.service_cores:.2f} | {per_request:.0f} | {m.broker_cores} "
                     f"| {m.machine_cores:.2f} |")
    return "\n".join(lines)


def run_bench(out_dir: Path, seconds: int = 10, warmup: int = 3, connections: int = 50,
              targets: tuple[tuple[str, str], ...] = TARGETS) -> list[Measurement]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise MissingToolError("wrk", "install it (Debian: `apt-get install -y wrk`, or `make native`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    local = LocalKafka()
    kafka = ensure_kafka(None, local=local)
    broker_pid = listening_pid(kafka.bootstrap)
    rows: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            script.write_text(wrk_script(SEED_BODY))
            for impl, mode in targets:
                kind = RustService if impl == "rust" else ServiceProcess
                service = kind(mode, kafka.bootstrap, unique_topic(f"bench.{impl}"),
                               out_dir / f"{impl}-{mode}.log", workers=1)
                service.start()
                try:
                    rows.append(measure(impl, mode, service, wrk, script, broker_pid,
                                        seconds, warmup, connections))
                finally:
                    service.stop()
    finally:
        if kafka.started_here:
            local.stop()
    meta: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(), "seconds": seconds, "warmup_s": warmup,
        "connections": connections, "wrk_threads": 1, "workers": 1, "body": SEED_BODY.decode(),
        "cpus": psutil.cpu_count(), "bootstrap": kafka.bootstrap,
    }
    (out_dir / "bench.json").write_text(json.dumps(
        {"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    (out_dir / "bench.md").write_text(table(rows) + "\n")
    return rows
