"""seed-rs beside the Python service on `POST /`, both modes, one worker, in one run.

Each target gets a fresh topic on the same broker, a wrk warm-up, then one measured wrk
run (1 thread, 50 connections by default); the service's CPU is the cpu-time its process
tree used during the measured run divided by the run's wall time (1.0 = one core busy),
beside the broker's and the whole machine's, so a noisy neighbour on a shared box shows.
Targets run back to back so their ratios are comparable; absolute rates are this box's.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from experiments.cpu import cpu_seconds, machine_busy_seconds, process_tree
from experiments.fidelity import Outcome, check
from experiments.fidelity import table as fidelity_table
from experiments.kafka import LocalKafka, ensure_kafka, unique_topic
from experiments.kafka.broker import listening_pid
from experiments.load.wrk import find_wrk, wrk_once, wrk_script
from experiments.native.service import RustService
from experiments.service_proc import ServiceProcess

SEED_BODY = b'{"client_id": "test", "name": "hello_event", "data": {"test": "value"}}'
TARGETS = (("rust", "fire-and-forget"), ("rust", "durable"),
           ("python", "fire-and-forget"), ("python", "durable"))


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


def measure(impl: str, mode: str, service: ServiceProcess, wrk: str, script: Path,
            broker_pid: int | None, seconds: int, warmup: int, connections: int) -> Measurement:
    url = f"{service.url}/"
    wrk_once(wrk, url, script, warmup, connections, check=True)

    def now() -> tuple[float, float, float, float]:
        return (cpu_seconds(process_tree(service.pid)), cpu_seconds(process_tree(broker_pid)),
                machine_busy_seconds(), time.monotonic())

    before = now()
    run = wrk_once(wrk, url, script, seconds, connections, check=True)
    after = now()
    wall = after[3] - before[3]
    return Measurement(
        impl=impl, mode=mode,
        rps=run.rps or 0.0,
        requests=run.requests or 0,
        non_2xx=run.non_2xx,
        p50_ms=run.p50_ms, p99_ms=run.p99_ms,
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
    wrk = find_wrk("install it (Debian: `apt-get install -y wrk`, or `make native`)")
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


def run_fidelity(out_dir: Path) -> dict[str, list[Outcome]]:
    """The fidelity corpus (experiments/fidelity.py) through each target: what each stores."""
    out_dir.mkdir(parents=True, exist_ok=True)
    local = LocalKafka()
    kafka = ensure_kafka(None, local=local)
    results: dict[str, list[Outcome]] = {}
    try:
        for impl, mode in TARGETS:
            kind = RustService if impl == "rust" else ServiceProcess
            topic = unique_topic(f"fidelity.{impl}")
            service = kind(mode, kafka.bootstrap, topic, out_dir / f"{impl}-{mode}.log")
            service.start()
            try:
                results[f"{impl}, {mode}"] = check(service.url, kafka.bootstrap, topic)
            finally:
                service.stop()
    finally:
        if kafka.started_here:
            local.stop()
    (out_dir / "fidelity.json").write_text(json.dumps(
        {"at": datetime.now(UTC).isoformat(),
         "results": {k: [o.as_dict() for o in v] for k, v in results.items()}}, indent=2) + "\n")
    (out_dir / "fidelity.md").write_text(fidelity_table(results) + "\n")
    return results
