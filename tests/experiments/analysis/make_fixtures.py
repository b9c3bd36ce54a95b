"""Write the fixture plans in tests/experiments/analysis/data/ (run once; the output is committed).

    .venv/bin/python tests/experiments/analysis/make_fixtures.py

Every file follows the result contract lab.run/2 (experiments/RESULTS.md). Four plans:

- `fixture`: three configurations x two trials of a closed-loop plan on a 4-core machine,
  plus one failed cell and one that never ran. Throughput follows Little's law
  (connections / mean latency), shaped like a CPU-bound Python service.
- `saturation`: an open-loop rate sweep (both modes x 4 rates x 2 trials, `slo_p99_ms: 50`)
  against services capped by construction: durable answers at most 1,000 requests/s,
  fire-and-forget 2,500. Offered 3,000/s, durable completes ~1,000/s in the window and most
  of the schedule is never sent: the OVERLOADED run.
- `search`: a capacity search (`kind: search`, bisection on the rate) against a target the
  suite did not launch, with its search.json.
- `faults`: both modes x {service-kill, broker-pause} x 2 trials on one broker (RF 1), with
  the `faults`, `availability` and per-class audit blocks and errors.csv.

Aggregates in summary.json are computed from the same generated samples that go into
series.csv and latency.hdr, the way the load generator does it, so the files agree.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

DATA = Path(__file__).resolve().parent / "data"
SCHEMA = "lab.run/2"
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
SMALL_BOX = {**PROVENANCE, "machine": {**PROVENANCE["machine"], "cpu_count": 2}}
LATENCY_POINTS = (("p50", 50), ("p75", 75), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("p99.99", 99.99))
SERIES_POINTS = (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9), ("max_ms", 100))
SERIES_COLUMNS = (
    "second",
    "phase",
    "sent",
    "late",
    "ok",
    "events_accepted",
    "client_errors",
    "server_errors",
    "transport_errors",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "fault",
)
OVERLOAD_RULE = (
    "open loop: overloaded when the completed rate is below 99% of the offered rate or more "
    "than 1% of the offered requests were unfinished"
)
MODE_STATUS = {"durable": "200", "fire-and-forget": "202"}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def percentile_ms(histogram: HdrHistogram, p: float) -> float | None:
    if histogram.get_total_count() == 0:
        return None
    return round(histogram.get_value_at_percentile(p) / 1000.0, 3)


def latency_block(histogram: HdrHistogram) -> dict[str, Any]:
    return {
        **{key: percentile_ms(histogram, p) for key, p in LATENCY_POINTS},
        "max": percentile_ms(histogram, 100),
        "mean": round(histogram.get_mean_value() / 1000.0, 3) if histogram.get_total_count() else None,
    }


def series_latency(histogram: HdrHistogram) -> dict[str, Any]:
    return {name: percentile_ms(histogram, p) for name, p in SERIES_POINTS}


def iso(offset_s: int) -> str:
    minutes, seconds = divmod(offset_s, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2025-01-15T{10 + hours:02d}:{minutes:02d}:{seconds:02d}Z"


def write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> None:
    header = header or (list(rows[0]) if rows else [])
    lines = [",".join(header)] + [",".join(_cell(r.get(h)) for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def run_params(plan: str, cell: str, trial: int, **values: Any) -> dict[str, Any]:
    """Every RunParams field, as the run notebook records them (experiments/params.py)."""
    return {
        "mode": "durable",
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
        "producer_config": {},
        "service_workers": 2,
        "delivery_bridge": "loop",
        "bootstrap": "127.0.0.1:39092",
        "topic": "",
        "partitions": 3,
        "trial": trial,
        "seed": 1,
        "generator_ceiling_rps": 5200.0,
        "plan": plan,
        "cell": cell,
        "output_dir": f"/work/main/results/{plan}/{cell}",
        **values,
    }


def envelope(
    plan: str,
    cell: str,
    trial: int,
    started: int,
    params: dict[str, Any],
    results: dict[str, Any],
    audit: dict[str, Any],
    *,
    engine: str = "aiohttp",
    target: dict[str, Any] | None = None,
    provenance: dict[str, Any] = PROVENANCE,
    drain_limit_s: float = 5.0,
    elapsed_s: int = 15,
) -> dict[str, Any]:
    mode = params["mode"]
    return {
        "schema": SCHEMA,
        "run": {
            "plan": plan,
            "cell": cell,
            "trial": trial,
            "started_at": iso(started),
            "ended_at": iso(started + elapsed_s),
        },
        "params": params,
        "load": {
            "model": params["load_model"],
            "connections": params["connections"],
            "rate": params["rate"] if params["load_model"] == "open" else None,
            "duration_s": params["duration_s"],
            "warmup_s": params["warmup_s"],
            "endpoint": params["endpoint"],
            "payload": {"data_fields": 1, "field_size": 5},
            "batch_size": 1,
            "workers": 1,
            "engine": engine,
            "drain_limit_s": drain_limit_s,
            "client": {"engine": engine},
        },
        "target": target
        or {
            "url": "http://127.0.0.1:18080",
            "launched_by_suite": True,
            "impl": "python",
            "identity": {"server": "uvicorn", "pid": 4242},
        },
        "service": {
            "mode": mode,
            "workers": params["service_workers"],
            "topic": f"lab.{plan}.{cell}",
            "partitions": params["partitions"],
            "producer_config": {"acks": "all", "enable.idempotence": True, **params["producer_config"]},
            "url": "http://127.0.0.1:18080",
            "exit_code": 0,
        },
        "results": results,
        "audit": audit,
        "provenance": provenance,
    }


def write_run(run_dir: Path, summary: dict[str, Any], histogram: HdrHistogram, series: list[dict[str, Any]],
              cpu: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:  # fmt: skip
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (run_dir / "audit.json").write_text(json.dumps(summary["audit"], indent=2) + "\n")
    (run_dir / "latency.hdr").write_text(encode(histogram) + "\n")
    write_csv(run_dir / "series.csv", series, list(SERIES_COLUMNS))
    write_csv(run_dir / "cpu.csv", cpu, ["second", "component", "cpu_percent", "rss_mb"])
    write_csv(run_dir / "errors.csv", errors, ["second", "status", "count"])


def cpu_rows(second: int, shares: dict[str, float], rng: random.Random) -> list[dict[str, Any]]:
    rss = {"generator": 80.0, "service": 140.0, "broker": 610.0, "machine": 3900.0}
    return [
        {
            "second": second,
            "component": component,
            "cpu_percent": value,
            "rss_mb": round(rss[component] + rng.uniform(0, 5), 1),
        }
        for component, value in shares.items()
    ]


def cpu_means(cpu: list[dict[str, Any]], duration: float) -> dict[str, float]:
    measured = {
        c: [r["cpu_percent"] for r in cpu if r["component"] == c and 0 <= r["second"] < duration]
        for c in ("generator", "service", "broker", "machine")
    }
    return {c: round(sum(v) / len(v), 1) for c, v in measured.items()}


def audit_block(mode: str, acknowledged: int, lost: int, duplicates: int = 0) -> dict[str, Any]:
    status = MODE_STATUS[mode]
    return {
        "acknowledged": acknowledged,
        "present": acknowledged - lost,
        "lost": lost,
        "unacknowledged": 0,
        "duplicates": duplicates,
        "records": acknowledged - lost + duplicates,
        "acknowledged_by_class": {status: acknowledged},
        "lost_by_class": {status: lost},
    }


def closed_cohort(sent: int, ok: int, errors: int, duration: float) -> dict[str, Any]:
    """The window cohort of a closed loop: everything sent was answered before the end."""
    return {
        "offered": None,
        "offered_rps": None,
        "sent": sent,
        "sent_rps": round(sent / duration, 1),
        "completed_in_window": ok + errors,
        "completed_after_window": 0,
        "never_sent": 0,
        "in_flight_at_end": 0,
        "unfinished": 0,
        "unfinished_fraction": 0.0,
        "overloaded": None,
        "overload_reasons": [],
        "overload_rule": OVERLOAD_RULE,
        "late": 0,
        "late_fraction": 0.0,
    }


# ----------------------------------------------------------------------------- fixture
def make_closed_run(
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
) -> str:
    rng = random.Random(seed)
    cell = f"{index:03d}-{slug}-t{trial}"
    rate = steady * rng.uniform(0.97, 1.03)
    mean_us = CONNECTIONS / rate * 1e6
    measured = new_histogram()
    series, cpu, errors = [], [], []
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
        if server_errors:
            errors.append({"second": second, "status": "503", "count": server_errors})
        series.append(
            {
                "second": second,
                "phase": phase,
                "sent": ok + server_errors,
                "late": 0,
                "ok": ok,
                "events_accepted": ok,
                "client_errors": 0,
                "server_errors": server_errors,
                "transport_errors": 0,
                **series_latency(per_second),
                "fault": 0,
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
        cpu += cpu_rows(second, shares, rng)

    means = cpu_means(cpu, DURATION_S)
    lost = 12 if generator_bound else 0
    params = run_params(PLAN, cell, trial, mode=mode, producer_config=producer)
    results = {
        "duration_s": DURATION_S,
        "ok": totals["ok"],
        "client_errors": 0,
        "server_errors": totals["server_errors"],
        "transport_errors": 0,
        "status_counts": {"503": totals["server_errors"]} if totals["server_errors"] else {},
        "events_accepted": totals["events_accepted"],
        "throughput_rps": round(totals["ok"] / DURATION_S, 1),
        "events_per_s": round(totals["events_accepted"] / DURATION_S, 1),
        "error_rate": round(totals["server_errors"] / totals["sent"], 6),
        **closed_cohort(totals["sent"], totals["ok"], totals["server_errors"], DURATION_S),
        "drain_s": 0.02,
        "drain_limit_s": 5.0,
        "latency_ms": latency_block(measured),
        "latency_count": measured.get_total_count(),
        "cpu_percent": means,
        "cpu_other_percent": round(
            means["machine"] - means["generator"] - means["service"] - means["broker"], 1
        ),
        "generator_bound": generator_bound,
        "generator_ceiling_rps": round(rate * 1.02, 1) if generator_bound else None,
        "sent_including_warmup": sum(r["sent"] for r in series),
    }
    summary = envelope(PLAN, cell, trial, started, params, results, audit_block(mode, acknowledged, lost))
    write_run(DATA / PLAN / cell, summary, measured, series, cpu, errors)
    return cell


def make_fixture_plan() -> None:
    # Trials are the outer loop, as in the runner.
    index, started, cells = 1, 0, []
    for trial in (1, 2):
        for slug, mode, producer, steady, tail, trials in CELLS:
            seed, generator_bound = trials[trial - 1]
            cells.append(
                make_closed_run(
                    index, slug, mode, producer, steady, tail, trial, seed, generator_bound, started
                )
            )
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
        "source": "tests/experiments/analysis/make_fixtures.py",
        "cells": [*cells, FAILED_CELL, NOT_RUN_CELL],
        "kind": "matrix",
        "slo_p99_ms": None,
        "search": None,
    }
    (DATA / PLAN / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    (DATA / PLAN / "generator_ceiling.json").write_text(json.dumps({"ceiling_rps": 5200.0}) + "\n")


# ----------------------------------------------------------------------------- open loop
OPEN_CONNECTIONS = 200
OPEN_WARMUP_S = 1
OPEN_DURATION_S = 6
DRAIN_LIMIT_S = 5.0
# Requests per second each mode's service can answer at most, by construction.
CAPACITY = {"durable": 1000.0, "fire-and-forget": 2500.0}
SIGMA = 0.4  # log-normal spread of the service time below capacity


def simulate_open(
    rng: random.Random, rate: float, capacity: float, p99_ms: float, duration: int, warmup: int
) -> dict[str, Any]:
    """One open-loop run against a FIFO service that answers at most `capacity` per second.

    The schedule places a request every 1/rate s from the first warm-up second; a request
    waits for one of the OPEN_CONNECTIONS connections (late when it waits > 1 ms), is never
    sent once the window is over, and is cut off when its answer comes after the drain limit.
    """
    median_s = p99_ms / 1000 / math.exp(2.326 * SIGMA)
    slots = round(rate * (warmup + duration))
    free_at, completions = -math.inf, []
    requests = []  # (intended, sent or None, completed or None)
    for i in range(slots):
        intended = -warmup + i / rate
        waits_for = completions[i - OPEN_CONNECTIONS] if i >= OPEN_CONNECTIONS else -math.inf
        sent = max(intended, waits_for)
        if sent >= duration:
            requests.append((intended, None, None))
            completions.append(math.inf)
            continue
        free_at = max(free_at, sent) + 1 / capacity
        completed = max(free_at, sent + rng.lognormvariate(math.log(median_s), SIGMA))
        completions.append(completed)
        requests.append((intended, sent, completed if completed <= duration + DRAIN_LIMIT_S else None))
    return {"requests": requests, "rate": rate}


def open_run_files(
    sim: dict[str, Any], duration: int, warmup: int, shares_at: Any, rng: random.Random
) -> tuple[dict[str, Any], HdrHistogram, list[dict[str, Any]], list[dict[str, Any]], int]:
    """results, histogram, series, cpu and acknowledged count of a simulated open-loop run."""
    by_key: dict[int, HdrHistogram] = defaultdict(new_histogram)
    sent_by_key: Counter[int] = Counter()
    late_by_key: Counter[int] = Counter()
    ok_by_completion: Counter[int] = Counter()
    measured = new_histogram()
    cohort = Counter()
    last_completion = duration
    for intended, sent, completed in sim["requests"]:
        key = math.floor(intended)
        in_window = 0 <= intended < duration
        if sent is not None:
            sent_by_key[key] += 1
            if sent - intended > 0.001:
                late_by_key[key] += 1
        if completed is not None:
            ok_by_completion[math.floor(completed)] += 1
            latency_us = max(1, round((completed - intended) * 1e6))
            by_key[key].record_value(latency_us)
            last_completion = max(last_completion, completed)
            if in_window:
                measured.record_value(latency_us)
        if in_window:
            cohort["offered"] += 1
            if sent is None:
                cohort["never_sent"] += 1
            else:
                cohort["sent"] += 1
                if sent - intended > 0.001:
                    cohort["late"] += 1
                if completed is None:
                    cohort["in_flight_at_end"] += 1
                elif completed < duration:
                    cohort["completed_in_window"] += 1
                else:
                    cohort["completed_after_window"] += 1
    drain_s = round(min(last_completion - duration, DRAIN_LIMIT_S), 3)
    last_second = math.ceil(duration + drain_s) - 1 if drain_s > 0 else duration - 1
    series, cpu = [], []
    for second in range(-warmup, max(last_second, duration - 1) + 1):
        phase = "warmup" if second < 0 else "measure" if second < duration else "drain"
        ok = ok_by_completion[second]
        series.append(
            {
                "second": second,
                "phase": phase,
                "sent": sent_by_key[second],
                "late": late_by_key[second],
                "ok": ok,
                "events_accepted": ok,
                "client_errors": 0,
                "server_errors": 0,
                "transport_errors": 0,
                **series_latency(by_key[second]),
                "fault": 0,
            }
        )
        cpu += cpu_rows(second, shares_at(ok, rng), rng)
    ok_in_window = sum(ok_by_completion[s] for s in range(duration))
    offered = cohort["offered"]
    unfinished = cohort["never_sent"] + cohort["in_flight_at_end"]
    throughput = ok_in_window / duration
    offered_rps = offered / duration
    reasons = []
    if throughput < 0.99 * offered_rps:
        reasons.append(
            f"completed {throughput:,.0f} requests/s in the window, "
            f"{throughput / offered_rps:.0%} of the {offered_rps:,.0f} offered"
        )
    if unfinished / offered > 0.01:
        reasons.append(
            f"{unfinished:,} of {offered:,} offered requests unfinished ({unfinished / offered:.1%})"
        )
    means = cpu_means(cpu, duration)
    results = {
        "duration_s": duration,
        "ok": ok_in_window,
        "client_errors": 0,
        "server_errors": 0,
        "transport_errors": 0,
        "status_counts": {},
        "events_accepted": ok_in_window,
        "throughput_rps": round(throughput, 1),
        "events_per_s": round(throughput, 1),
        "error_rate": 0.0,
        "offered": offered,
        "offered_rps": round(offered_rps, 1),
        "sent": cohort["sent"],
        "sent_rps": round(cohort["sent"] / duration, 1),
        "completed_in_window": cohort["completed_in_window"],
        "completed_after_window": cohort["completed_after_window"],
        "never_sent": cohort["never_sent"],
        "in_flight_at_end": cohort["in_flight_at_end"],
        "unfinished": unfinished,
        "unfinished_fraction": round(unfinished / offered, 6),
        "overloaded": bool(reasons),
        "overload_reasons": reasons,
        "overload_rule": OVERLOAD_RULE,
        "drain_s": drain_s,
        "drain_limit_s": DRAIN_LIMIT_S,
        "late": cohort["late"],
        "late_fraction": round(cohort["late"] / max(cohort["sent"], 1), 6),
        "latency_ms": latency_block(measured),
        "latency_count": measured.get_total_count(),
        "cpu_percent": means,
        "cpu_other_percent": round(
            means["machine"] - means["generator"] - means["service"] - means["broker"], 1
        ),
        "generator_bound": False,
        "generator_ceiling_rps": None,
        "sent_including_warmup": sum(sent_by_key.values()),
    }
    acknowledged = sum(ok_by_completion.values())
    return results, measured, series, cpu, acknowledged


def open_shares(capacity: float, other: float) -> Any:
    def shares(ok: int, rng: random.Random) -> dict[str, float]:
        load = min(ok / capacity, 1.0)
        values = {"generator": 15 + 25 * load, "service": 10 + 88 * load, "broker": 5 + 10 * load}
        values = {k: round(v * rng.uniform(0.95, 1.05), 1) for k, v in values.items()}
        values["machine"] = round(sum(values.values()) + other * rng.uniform(0.9, 1.1), 1)
        return values

    return shares


SATURATION_RATES = (500, 750, 1500, 3000)
# p99 (ms) of the service time below capacity per (mode, rate), per trial: durable's 750
# holds a 50 ms budget in trial 1 only, so its capacity differs between trials.
SATURATION_P99 = {
    ("durable", 500): (18.0, 20.0),
    ("durable", 750): (38.0, 64.0),
    ("durable", 1500): (40.0, 40.0),
    ("durable", 3000): (40.0, 40.0),
    ("fire-and-forget", 500): (8.0, 9.0),
    ("fire-and-forget", 750): (9.0, 10.0),
    ("fire-and-forget", 1500): (14.0, 16.0),
    ("fire-and-forget", 3000): (20.0, 20.0),
}
# CPU of everything else on the box (percent, 100 = one core): one run shared a busy box.
BUSY_NEIGHBOUR = ("fire-and-forget", 750, 2)


def make_saturation_plan() -> None:
    plan = "saturation"
    index, started, cells = 1, 0, []
    for trial in (1, 2):
        for mode in ("durable", "fire-and-forget"):
            for rate in SATURATION_RATES:
                cell = f"{index:03d}-mode={mode}_rate={rate}-t{trial}"
                rng = random.Random(1000 + index)
                sim = simulate_open(
                    rng,
                    rate,
                    CAPACITY[mode],
                    SATURATION_P99[(mode, rate)][trial - 1],
                    OPEN_DURATION_S,
                    OPEN_WARMUP_S,
                )
                other = 31.0 if (mode, rate, trial) == BUSY_NEIGHBOUR else 4.0
                results, histogram, series, cpu, acked = open_run_files(
                    sim, OPEN_DURATION_S, OPEN_WARMUP_S, open_shares(CAPACITY[mode], other), rng
                )
                params = run_params(
                    plan,
                    cell,
                    trial,
                    mode=mode,
                    load_model="open",
                    rate=float(rate),
                    connections=OPEN_CONNECTIONS,
                    duration_s=float(OPEN_DURATION_S),
                    warmup_s=float(OPEN_WARMUP_S),
                    service_workers=1,
                    partitions=1,
                )
                summary = envelope(
                    plan,
                    cell,
                    trial,
                    started,
                    params,
                    results,
                    audit_block(mode, acked, 0),
                    engine="raw",
                    provenance=SMALL_BOX,
                    elapsed_s=13,
                )
                write_run(DATA / plan / cell, summary, histogram, series, cpu, [])
                cells.append(cell)
                index += 1
                started += 15
    info = {
        "name": plan,
        "description": "Fixture: open-loop rate sweep against services capped at 1,000 (durable) "
        "and 2,500 (fire-and-forget) requests/s.",
        "trials": 2,
        "base": {"endpoint": "seed", "load_model": "open", "connections": OPEN_CONNECTIONS},
        "matrix": {"mode": ["durable", "fire-and-forget"], "rate": list(SATURATION_RATES)},
        "source": "tests/experiments/analysis/make_fixtures.py",
        "cells": cells,
        "kind": "matrix",
        "slo_p99_ms": 50,
        "search": None,
    }
    (DATA / plan / "plan.json").write_text(json.dumps(info, indent=2) + "\n")


# ----------------------------------------------------------------------------- search
SEARCH = {"param": "rate", "low": 500, "high": 3000, "resolution": 250}
SEARCH_SLO_MS = 50
SEARCH_DURATION_S = 4
SEARCH_TRIALS = 2
SEARCH_RULE = (
    "bisection on the offered rate between a rate that holds and one that does not, until "
    "they are at most the resolution apart; a step holds when no trial was overloaded and "
    "the median p99 of its trials is within the budget"
)


def search_p99(mode: str, rate: float) -> float:
    """The service-time p99 (ms) below capacity: crosses 50 ms at 900/s (durable) and 2,200/s."""
    knee = 900.0 if mode == "durable" else 2200.0
    base = 15.0 if mode == "durable" else 8.0
    return base + (SEARCH_SLO_MS - base) * (rate / knee) ** 3


def make_search_plan() -> None:
    plan = "search"
    target = {
        "url": "http://127.0.0.1:18090",
        "launched_by_suite": False,
        "impl": "rust",
        "identity": {"server": "axum-ingest/0.3"},
    }
    index, started, cells = 1, 0, []
    configs: dict[str, Any] = {}
    for mode in ("durable", "fire-and-forget"):
        low, high = float(SEARCH["low"]), float(SEARCH["high"])
        steps: list[dict[str, Any]] = []
        holding: float | None = None
        failing: float | None = None
        pending = [low, high]
        while pending:
            value = pending.pop(0)
            runs, p99s, overloaded = [], [], []
            for trial in range(1, SEARCH_TRIALS + 1):
                cell = f"{index:03d}-mode={mode}_rate={value:g}-t{trial}"
                rng = random.Random(2000 + index)
                sim = simulate_open(
                    rng,
                    value,
                    CAPACITY[mode] if mode == "durable" else 2500.0,
                    search_p99(mode, value),
                    SEARCH_DURATION_S,
                    OPEN_WARMUP_S,
                )
                results, histogram, series, cpu, acked = open_run_files(
                    sim, SEARCH_DURATION_S, OPEN_WARMUP_S, open_shares(CAPACITY[mode], 4.0), rng
                )
                params = run_params(
                    plan,
                    cell,
                    trial,
                    mode=mode,
                    load_model="open",
                    rate=value,
                    connections=OPEN_CONNECTIONS,
                    duration_s=float(SEARCH_DURATION_S),
                    warmup_s=float(OPEN_WARMUP_S),
                    service_workers=1,
                    partitions=1,
                    target_url=target["url"],
                    service_impl="rust",
                    load_engine="raw",
                )
                summary = envelope(
                    plan,
                    cell,
                    trial,
                    started,
                    params,
                    results,
                    audit_block(mode, acked, 0),
                    engine="raw",
                    target=target,
                    provenance=SMALL_BOX,
                    elapsed_s=10,
                )
                write_run(DATA / plan / cell, summary, histogram, series, cpu, [])
                runs.append(cell)
                p99s.append(results["latency_ms"]["p99"])
                overloaded.append(results["overloaded"])
                cells.append(cell)
                index += 1
                started += 12
            holds = not any(overloaded) and statistics.median(p99s) <= SEARCH_SLO_MS
            steps.append(
                {
                    "step": len(steps) + 1,
                    "value": value,
                    "runs": runs,
                    "p99_ms": p99s,
                    "overloaded": overloaded,
                    "holds": holds,
                }
            )
            if holds:
                holding = value if holding is None else max(holding, value)
            else:
                failing = value if failing is None else min(failing, value)
            bracketed = holding is not None and failing is not None
            if not pending and bracketed and failing - holding > SEARCH["resolution"]:
                pending.append((holding + failing) / 2)
        # The runner names a configuration by its cell slug.
        configs[f"mode={mode}"] = {
            "steps": steps,
            "capacity": holding,
            "bracket": [holding, failing],
            "note": f"{len(steps)} steps of {SEARCH_TRIALS} trials; the capacity lies in the bracket",
        }
    search = {**SEARCH, "slo_p99_ms": SEARCH_SLO_MS,
              "rule": SEARCH_RULE, "configs": configs}  # fmt: skip
    info = {
        "name": plan,
        "description": "Fixture: capacity search at p99 <= 50 ms against a service the suite did not launch.",
        "trials": SEARCH_TRIALS,
        "base": {"endpoint": "seed", "load_model": "open", "connections": OPEN_CONNECTIONS},
        "matrix": {"mode": ["durable", "fire-and-forget"]},
        "source": "tests/experiments/analysis/make_fixtures.py",
        "cells": cells,
        "kind": "search",
        "slo_p99_ms": SEARCH_SLO_MS,
        "search": SEARCH,
    }
    (DATA / plan / "plan.json").write_text(json.dumps(info, indent=2) + "\n")
    (DATA / plan / "search.json").write_text(json.dumps(search, indent=2) + "\n")


# ----------------------------------------------------------------------------- faults
FAULT_AT_S = 3.0
FAULT_DURATION_S = 2.0
FAULT_RUN_S = 10
FAULT_CONNECTIONS = 50
STEADY = {"durable": 1800.0, "fire-and-forget": 3000.0}
# Acknowledged events fire-and-forget loses when its service is killed, per trial.
KILL_LOSS = (21, 34)


def fault_second(kind: str, mode: str, second: int, rng: random.Random) -> dict[str, Any]:
    """Answers and errors in one completion second of a fault run, and the latency scale."""
    start, end = FAULT_AT_S, FAULT_AT_S + FAULT_DURATION_S
    rate = STEADY[mode] * rng.uniform(0.97, 1.03)
    normal = {"ok": round(rate), "errors": {}, "scale": 1.0}
    if kind == "service-kill":
        # Down from the kill until the restarted service answers 0.6 s after the restart.
        up = end + 0.6
        if second + 1 <= start or second >= up:
            return normal
        alive = max(0.0, start - second) + max(0.0, second + 1 - up)
        return {"ok": round(rate * alive), "errors": {"transport": round(180 * (1 - alive))}, "scale": 1.0}
    # broker-pause: durable waits for acknowledgements that do not come, then times out;
    # fire-and-forget keeps answering from its buffer, slower.
    if second + 1 <= start or second >= end + 0.1:
        return normal
    if mode == "durable":
        alive = max(0.0, start - second) + max(0.0, second + 1 - (end + 0.1))
        return {"ok": round(rate * alive), "errors": {"503": round(40 * (1 - alive))}, "scale": 6.0}
    return {"ok": round(rate * 0.8), "errors": {}, "scale": 2.5}


def make_fault_run(index: int, mode: str, kind: str, trial: int, started: int) -> str:
    plan = "faults"
    cell = f"{index:03d}-mode={mode}_fault={kind}-t{trial}"
    rng = random.Random(3000 + index)
    measured = new_histogram()
    during, outside = new_histogram(), new_histogram()
    series, cpu, errors = [], [], []
    totals: Counter[str] = Counter()
    acknowledged = 0
    first_ok_after: float | None = None
    median_us = (11_000 if mode == "durable" else 6_000) * FAULT_CONNECTIONS / 50
    for second in range(-1, FAULT_RUN_S):
        answer = fault_second(kind, mode, second, rng)
        per_second = new_histogram()
        for _ in range(answer["ok"]):
            per_second.record_value(
                max(1, round(rng.lognormvariate(math.log(median_us * answer["scale"]), 0.4)))
            )
        fault = max(0.0, min(second + 1, FAULT_AT_S + FAULT_DURATION_S) - max(second, FAULT_AT_S))
        if second >= 0:
            measured.add(per_second)
            (during if fault > 0 else outside).add(per_second)
            totals["ok"] += answer["ok"]
            for status, count in answer["errors"].items():
                totals[status] += count
        if first_ok_after is None and second + 1 > FAULT_AT_S and answer["ok"]:
            gap = {"service-kill": FAULT_DURATION_S + 0.6, "broker-pause": FAULT_DURATION_S + 0.1}[kind]
            wait = gap if (kind == "service-kill" or mode == "durable") else 0.004
            first_ok_after = round(FAULT_AT_S + wait + rng.uniform(0.0, 0.01), 3)
        acknowledged += answer["ok"]
        for status, count in answer["errors"].items():
            if count:
                errors.append({"second": second, "status": status, "count": count})
        transport = answer["errors"].get("transport", 0)
        server = answer["errors"].get("503", 0)
        series.append(
            {
                "second": second,
                "phase": "warmup" if second < 0 else "measure",
                "sent": answer["ok"] + transport + server,
                "late": 0,
                "ok": answer["ok"],
                "events_accepted": answer["ok"],
                "client_errors": 0,
                "server_errors": server,
                "transport_errors": transport,
                **series_latency(per_second),
                "fault": round(fault, 3),
            }
        )
        load = answer["ok"] / 3000.0
        shares = {"generator": 20 + 30 * load, "service": 10 + 85 * load, "broker": 8 + 12 * load}
        shares = {k: round(v * rng.uniform(0.95, 1.05), 1) for k, v in shares.items()}
        shares["machine"] = round(sum(shares.values()) + rng.uniform(3, 6), 1)
        cpu += cpu_rows(second, shares, rng)

    means = cpu_means(cpu, FAULT_RUN_S)
    error_total = totals["transport"] + totals["503"]
    sent = totals["ok"] + error_total
    lost = KILL_LOSS[trial - 1] if (kind, mode) == ("service-kill", "fire-and-forget") else 0
    duplicates = 3 if (kind, mode, trial) == ("broker-pause", "durable", 2) else 0
    status_counts = {s: totals[s] for s in ("503", "transport") if totals[s]}
    results = {
        "duration_s": FAULT_RUN_S,
        "ok": totals["ok"],
        "client_errors": 0,
        "server_errors": totals["503"],
        "transport_errors": totals["transport"],
        "status_counts": status_counts,
        "events_accepted": totals["ok"],
        "throughput_rps": round(totals["ok"] / FAULT_RUN_S, 1),
        "events_per_s": round(totals["ok"] / FAULT_RUN_S, 1),
        "error_rate": round(error_total / sent, 6),
        **closed_cohort(sent, totals["ok"], error_total, FAULT_RUN_S),
        "drain_s": 0.03,
        "drain_limit_s": 5.0,
        "latency_ms": latency_block(measured),
        "latency_count": measured.get_total_count(),
        "cpu_percent": means,
        "cpu_other_percent": round(
            means["machine"] - means["generator"] - means["service"] - means["broker"], 1
        ),
        "generator_bound": False,
        "generator_ceiling_rps": None,
        "sent_including_warmup": sum(r["sent"] for r in series),
    }
    end = FAULT_AT_S + FAULT_DURATION_S
    if kind == "service-kill":
        fault_target = "the service (pid 5151, uvicorn master)"
        events = [
            {"t_s": FAULT_AT_S, "what": "SIGKILL service (pid 5151)"},
            {"t_s": end, "what": "service restarted (pid 5190)"},
        ]
    else:
        fault_target = "broker node 1 (pid 6161, leader of p0-p2)"
        events = [
            {"t_s": FAULT_AT_S, "what": "SIGSTOP broker node 1 (pid 6161)"},
            {"t_s": end, "what": "SIGCONT broker node 1 (pid 6161)"},
        ]
    faults = {
        "kind": kind,
        "target": fault_target,
        "at_s": FAULT_AT_S,
        "duration_s": FAULT_DURATION_S,
        "windows": [[FAULT_AT_S, end]],
        "events": events,
        "recovered_at_s": end,
        "service_restarted": kind == "service-kill",
        "injected": True,
    }

    def brief(histogram: HdrHistogram) -> dict[str, Any]:
        return {k: percentile_ms(histogram, p) for k, p in (("p50", 50), ("p99", 99), ("max", 100))}

    availability = {
        "fault_start_s": FAULT_AT_S,
        "first_ok_after_fault_s": first_ok_after,
        "unavailable_s": round(first_ok_after - FAULT_AT_S, 3) if first_ok_after is not None else None,
        "ok_during_fault": during.get_total_count(),
        "errors_during_fault": {
            status: sum(
                e["count"] for e in errors if e["status"] == status and FAULT_AT_S - 1 < e["second"] < end
            )
            for status in status_counts
        },
        "latency_ms_during_fault": brief(during),
        "latency_ms_outside_fault": brief(outside),
    }
    params = run_params(
        plan,
        cell,
        trial,
        mode=mode,
        connections=FAULT_CONNECTIONS,
        duration_s=float(FAULT_RUN_S),
        warmup_s=1.0,
        service_workers=1,
        partitions=3,
        fault=kind,
        fault_at_s=FAULT_AT_S,
        fault_duration_s=FAULT_DURATION_S,
        service_restart=True,
        cluster_size=1,
    )
    summary = envelope(
        plan,
        cell,
        trial,
        started,
        params,
        results,
        audit_block(mode, acknowledged, lost, duplicates),
        provenance=SMALL_BOX,
        elapsed_s=16,
    )
    summary["faults"] = faults
    summary["availability"] = availability
    write_run(DATA / plan / cell, summary, measured, series, cpu, errors)
    return cell


def make_fault_plan() -> None:
    index, started, cells = 1, 0, []
    for trial in (1, 2):
        for mode in ("durable", "fire-and-forget"):
            for kind in ("service-kill", "broker-pause"):
                cells.append(make_fault_run(index, mode, kind, trial, started))
                index += 1
                started += 20
    info = {
        "name": "faults",
        "description": "Fixture: a killed service and a paused broker, both modes, one broker (RF 1).",
        "trials": 2,
        "base": {"endpoint": "seed", "load_model": "closed", "connections": FAULT_CONNECTIONS},
        "matrix": {"mode": ["durable", "fire-and-forget"], "fault": ["service-kill", "broker-pause"]},
        "source": "tests/experiments/analysis/make_fixtures.py",
        "cells": cells,
        "kind": "matrix",
        "slo_p99_ms": None,
        "search": None,
    }
    (DATA / "faults" / "plan.json").write_text(json.dumps(info, indent=2) + "\n")


def main() -> None:
    for plan in (PLAN, "saturation", "search", "faults"):
        if (DATA / plan).exists():
            shutil.rmtree(DATA / plan)
    make_fixture_plan()
    make_saturation_plan()
    make_search_plan()
    make_fault_plan()


if __name__ == "__main__":
    main()
