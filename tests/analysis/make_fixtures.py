"""Write the fixture plan in tests/analysis/data/ (run once; the output is committed).

    .venv/bin/python tests/analysis/make_fixtures.py

Three configurations x two trials of a closed-loop plan on a 4-core machine, plus one
failed cell. Every aggregate in summary.json is computed from the same generated samples
that go into series.csv and latency.hdr, the way the load generator does it, so the files
agree with each other. The numbers are made up but shaped like a CPU-bound Python service:
throughput follows Little's law (connections / mean latency).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

DATA = Path(__file__).resolve().parent / "data"
PLAN = "fixture"
CONNECTIONS = 32
WARMUP_S = 2
DURATION_S = 10
CORES = 4
# Share of the steady rate reached in the first seconds of a run (the seed's slow start).
DURABLE_RAMP = (0.40, 0.65, 0.88)

# cell slug, mode, producer_config, steady events/s, tail factor, (seed, generator_bound) per trial
CELLS: list[tuple[str, str, dict[str, Any], float, float, list[tuple[int, bool]]]] = [
    ("mode=durable_linger.ms=0", "durable", {"linger.ms": 0}, 1800.0, 2.6, [(11, False), (12, False)]),
    ("mode=durable_linger.ms=5", "durable", {"linger.ms": 5}, 2450.0, 2.4, [(21, False), (22, False)]),
    ("mode=fire-and-forget_defaults", "fire-and-forget", {}, 4150.0, 2.0, [(31, False), (32, True)]),
]
# A cell that failed (the runner's error.txt: summary line, blank line, traceback) and one
# the plan lists but that never ran.
FAILED_CELL = "007-mode=fire-and-forget_linger.ms=5-t1"
FAILED_ERROR = (
    "PapermillExecutionError: \n"
    "---------------------------------------------------------------------------\n"
    'Exception encountered at "In [2]":\n'
    "LabError: the service did not answer /healthz within 30 s\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "experiments/runner.py", line 118, in run_plan\n'
    "    execute_cell(cell, cell_dir, extra)\n"
    "papermill.exceptions.PapermillExecutionError: \n"
    "---------------------------------------------------------------------------\n"
    'Exception encountered at "In [2]":\n'
    "LabError: the service did not answer /healthz within 30 s\n"
)
NOT_RUN_CELL = "008-mode=fire-and-forget_linger.ms=5-t2"
PROVENANCE = {
    "python": "3.11.9",
    "packages": {
        "aiohttp": "3.10.10",
        "confluent-kafka": "2.6.1",
        "fastapi": "0.115.5",
        "hdrhistogram": "0.10.8",
        "uvicorn": "0.32.0",
    },
    "kafka_version": "3.9.0",
    "machine": {
        "cpu_model": "Fixture Xeon @ 2.10GHz",
        "cpu_count": CORES,
        "memory_gb": 15.6,
        "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
        "hostname": "fixture-host",
    },
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
    "tool_version": "0.1.0",
}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def percentile_ms(histogram: HdrHistogram, p: float) -> float:
    return round(histogram.get_value_at_percentile(p) / 1000.0, 3)


def make_run(
    index: int,
    slug: str,
    mode: str,
    producer: dict[str, Any],
    steady: float,
    tail: float,
    trial: int,
    seed: int,
    generator_bound: bool,
    started: int,
) -> None:
    rng = random.Random(seed)
    cell = f"{index:03d}-{slug}-t{trial}"
    run_dir = DATA / PLAN / cell
    run_dir.mkdir(parents=True)
    rate = steady * rng.uniform(0.97, 1.03)
    mean_us = CONNECTIONS / rate * 1e6
    measured = new_histogram()
    series, cpu = [], []
    totals = dict.fromkeys(("sent", "ok", "server_errors", "events_accepted"), 0)
    acknowledged = 0
    for step, second in enumerate(range(-WARMUP_S, DURATION_S)):
        ramp = DURABLE_RAMP[step] if mode == "durable" and step < len(DURABLE_RAMP) else 1.0
        ok = round(rate * ramp * rng.uniform(0.97, 1.03))
        server_errors = 1 if rng.random() < 0.15 else 0
        per_second = new_histogram()
        for _ in range(ok + server_errors):
            # Log-normal body with a tail: the slowest 2% wait `tail` times longer.
            value = rng.lognormvariate(0, 0.35) * mean_us / ramp * 0.94
            if rng.random() < 0.02:
                value *= tail * rng.uniform(1.0, 2.0)
            per_second.record_value(max(1, round(value)))
        acknowledged += ok
        phase = "warmup" if second < 0 else "measure"
        if phase == "measure":
            measured.add(per_second)
            for key, value in zip(totals, (ok + server_errors, ok, server_errors, ok), strict=True):
                totals[key] += value
        series.append(
            {
                "second": second,
                "phase": phase,
                "sent": ok + server_errors,
                "ok": ok,
                "client_errors": 0,
                "server_errors": server_errors,
                "transport_errors": 0,
                "events_accepted": ok,
                "late": 0,
                **{
                    name: percentile_ms(per_second, p)
                    for name, p in (
                        ("p50_ms", 50),
                        ("p90_ms", 90),
                        ("p99_ms", 99),
                        ("p999_ms", 99.9),
                        ("max_ms", 100),
                    )
                },
            }
        )
        load = ok / 4150.0
        shares = {
            "generator": 30 + 55 * load + (30 if generator_bound else 0),
            "service": 40 + 150 * load,
            "broker": 12 + 18 * load,
        }
        shares = {k: round(v * rng.uniform(0.95, 1.05), 1) for k, v in shares.items()}
        shares["machine"] = round(sum(shares.values()) + rng.uniform(8, 12), 1)
        rss = {"generator": 80.0, "service": 140.0, "broker": 610.0, "machine": 3900.0}
        for component, value in shares.items():
            cpu.append(
                {
                    "second": second,
                    "component": component,
                    "cpu_percent": value,
                    "rss_mb": round(rss[component] + rng.uniform(0, 5), 1),
                }
            )

    measured_cpu = {
        c: [r["cpu_percent"] for r in cpu if r["component"] == c and r["second"] >= 0]
        for c in ("generator", "service", "broker", "machine")
    }
    lost = 12 if generator_bound else 0
    audit = {
        "acknowledged": acknowledged,
        "present": acknowledged - lost,
        "lost": lost,
        "unacknowledged": 0,
        "duplicates": 0,
    }
    # Every RunParams field, as the run notebook records them (experiments/params.py).
    params = {
        "mode": mode,
        "endpoint": "seed",
        "load_model": "closed",
        "connections": CONNECTIONS,
        "rate": 1000.0,
        "duration_s": float(DURATION_S),
        "warmup_s": float(WARMUP_S),
        "data_fields": 1,
        "field_size": 5,
        "batch_size": 1,
        "load_workers": 1,
        "producer_profile": "default",
        "producer_config": producer,
        "service_workers": 2,
        "kafka_bootstrap": "127.0.0.1:39092",
        "topic": "",
        "partitions": 3,
        "trial": trial,
        "seed": 1,
        "generator_ceiling_rps": 5200.0,
        "plan": PLAN,
        "cell": cell,
        "output_dir": f"/work/main/results/{PLAN}/{cell}",
    }
    summary = {
        "schema": "lab.run/1",
        "run": {
            "plan": PLAN,
            "cell": cell,
            "trial": trial,
            "started_at": iso(started),
            "ended_at": iso(started + WARMUP_S + DURATION_S + 3),
        },
        "params": params,
        "load": {
            "model": "closed",
            "connections": CONNECTIONS,
            "rate": None,
            "duration_s": DURATION_S,
            "warmup_s": WARMUP_S,
            "endpoint": "seed",
            "payload": {"data_fields": 1, "field_size": 5},
            "batch_size": 1,
            "workers": 1,
        },
        "service": {
            "mode": mode,
            "workers": 2,
            "topic": f"lab.{PLAN}.{seed}",
            "partitions": 3,
            "producer_config": {"acks": "all", "enable.idempotence": True, **producer},
            "url": "http://127.0.0.1:18080",
            "exit_code": 0,
        },
        "results": {
            "duration_s": DURATION_S,
            "requests": totals["sent"],
            "ok": totals["ok"],
            "client_errors": 0,
            "server_errors": totals["server_errors"],
            "transport_errors": 0,
            "events_accepted": totals["events_accepted"],
            "throughput_rps": round(totals["ok"] / DURATION_S, 1),
            "events_per_s": round(totals["events_accepted"] / DURATION_S, 1),
            "error_rate": round(totals["server_errors"] / totals["sent"], 6),
            "late": 0,
            "latency_ms": {
                **{
                    key: percentile_ms(measured, p)
                    for key, p in (
                        ("p50", 50),
                        ("p75", 75),
                        ("p90", 90),
                        ("p99", 99),
                        ("p99.9", 99.9),
                        ("p99.99", 99.99),
                        ("max", 100),
                    )
                },
                "mean": round(measured.get_mean_value() / 1000.0, 3),
            },
            "cpu_percent": {c: round(sum(v) / len(v), 1) for c, v in measured_cpu.items()},
            "generator_bound": generator_bound,
            "generator_ceiling_rps": round(rate * 1.02, 1) if generator_bound else None,
        },
        "audit": audit,
        "provenance": PROVENANCE,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (run_dir / "audit.json").write_text(json.dumps(audit, indent=2) + "\n")
    (run_dir / "latency.hdr").write_text(encode(measured) + "\n")
    write_csv(run_dir / "series.csv", series)
    write_csv(run_dir / "cpu.csv", cpu)


def iso(offset_s: int) -> str:
    minutes, seconds = divmod(offset_s, 60)
    return f"2025-01-15T10:{minutes:02d}:{seconds:02d}Z"


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(_cell(r[h]) for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def main() -> None:
    if (DATA / PLAN).exists():
        shutil.rmtree(DATA / PLAN)
    # Trials are the outer loop, as in the runner.
    index, started, cells = 1, 0, []
    for trial in (1, 2):
        for slug, mode, producer, steady, tail, trials in CELLS:
            seed, generator_bound = trials[trial - 1]
            make_run(index, slug, mode, producer, steady, tail, trial, seed, generator_bound, started)
            cells.append(f"{index:03d}-{slug}-t{trial}")
            index += 1
            started += 20
    failed = DATA / PLAN / FAILED_CELL
    failed.mkdir(parents=True)
    (failed / "error.txt").write_text(FAILED_ERROR)
    (failed / "papermill.log").write_text("")
    plan = {
        "name": PLAN,
        "description": "Fixture: durable with linger.ms 0 and 5, fire-and-forget with defaults.",
        "trials": 2,
        "base": {"endpoint": "seed", "load_model": "closed", "connections": CONNECTIONS},
        "matrix": {"mode": ["durable", "fire-and-forget"]},
        "source": "tests/analysis/make_fixtures.py",
        "cells": [*cells, FAILED_CELL, NOT_RUN_CELL],
    }
    (DATA / PLAN / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    (DATA / PLAN / "generator_ceiling.json").write_text(json.dumps({"ceiling_rps": 5200.0}) + "\n")


if __name__ == "__main__":
    main()
