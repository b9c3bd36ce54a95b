"""One load run, top down: workers -> merge -> files -> summary."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns, time_ns
from typing import Any

import aiohttp

from experiments.cpu import CpuSampler
from experiments.errors import LabError
from experiments.load.files import collect_acks, write_histograms, write_series, write_summary
from experiments.load.merge import Merged, lag_summary_ms, merge_results
from experiments.load.payloads import body_pool
from experiments.load.recorder import NS_PER_S, summarize_ms
from experiments.load.spec import LoadSpec
from experiments.load.worker import event_loop_name, run_workers
from experiments.provenance import collect_provenance, usable_cores

SCHEMA = "lab.run/1"
CEILING_FRACTION = 0.8
CPU_FRACTION = 0.9
GENERATOR_BOUND_RULE = (
    f"generator_bound is true when the requests sent per second in the measured window "
    f"reach {CEILING_FRACTION:.0%} of the generator's own ceiling (measured beforehand "
    f"against a no-op server, when given), or when the generator's own CPU (parent and "
    f"worker processes, mean over the window) reaches {CPU_FRACTION:.0%} of the cores its "
    f"workers can use (min(workers, usable cores) x 100%). Such a run measured the "
    f"generator, not the server."
)
COMPONENTS = ("generator", "service", "broker", "machine")


class RunDirError(LabError):
    """The output directory already holds a finished run; results are never overwritten."""


@dataclass
class Execution:
    """A finished load, before anything is written."""

    spec: LoadSpec
    merged: Merged
    results: list[dict[str, Any]]
    cpu: CpuSampler
    started_at: str
    ended_at: str
    window_start_unix: float


def execute_load(spec: LoadSpec, acks_dir: Path | None = None,
                 pids: dict[str, int] | None = None) -> Execution:
    """Apply `spec` with its worker processes, sampling CPU, and merge what they recorded."""
    spec.validate()
    pids = dict(pids or {})
    # One (wall, monotonic) pair maps the run's monotonic times to wall-clock times.
    wall_ref, mono_ref = time_ns(), perf_counter_ns()
    sampler: list[CpuSampler] = []
    window: list[int] = []

    def on_start(t_start_ns: int, worker_pids: list[int]) -> None:
        origin = t_start_ns + round(spec.warmup_s * NS_PER_S)
        window.append(origin)
        components: dict[str, int | list[int]] = {"generator": [os.getpid(), *worker_pids]}
        components.update(pids)
        sampler.append(CpuSampler(components, with_children=pids, origin_ns=origin).start())

    started_at = _utc_now()
    try:
        results = run_workers(spec, acks_dir, on_start)
    finally:
        for running in sampler:
            running.stop()
    ended_at = _utc_now()
    window_start_unix = (wall_ref + (window[0] - mono_ref)) / NS_PER_S
    return Execution(spec, merge_results(results), results, sampler[0], started_at, ended_at,
                     window_start_unix)


def run_load(spec: LoadSpec, out_dir: Path, pids: dict[str, int] | None = None,
             metadata: dict[str, Any] | None = None,
             ceiling_rps: float | None = None) -> dict[str, Any]:
    """Run `spec`, write its files into `out_dir` (RESULTS.md), return the summary.

    `pids` names other processes to sample (service, broker; each with its children);
    `metadata` keys (run, params, service, ...) are copied into summary.json as given,
    except that `run` gains `started_at`/`ended_at` when it lacks them. `audit` is left
    to the caller, who audits after the service has flushed.

    Workers are started with "spawn": a script calling this needs the usual
    `if __name__ == "__main__":` guard (notebooks and `python -m` entry points do not).
    """
    spec.validate()
    out_dir = Path(out_dir)
    if (out_dir / "summary.json").exists() or (out_dir / "series.csv").exists():
        raise RunDirError(f"{out_dir} already holds a run; results are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    execution = execute_load(spec, acks_dir=out_dir, pids=pids)
    merged = execution.merged
    write_series(out_dir / "series.csv", merged.series)
    execution.cpu.write_csv(out_dir / "cpu.csv")
    write_histograms(out_dir, merged, execution.results, execution.window_start_unix,
                     spec.warmup_s)
    acks = collect_acks(out_dir, execution.results)
    summary = build_summary(execution, metadata or {}, ceiling_rps, acks)
    write_summary(out_dir / "summary.json", summary)
    return summary


def build_summary(execution: Execution, metadata: dict[str, Any], ceiling_rps: float | None,
                  acks: int) -> dict[str, Any]:
    run = dict(metadata.get("run") or {})
    run.setdefault("started_at", execution.started_at)
    run.setdefault("ended_at", execution.ended_at)
    summary: dict[str, Any] = {"schema": SCHEMA}
    summary.update({k: v for k, v in metadata.items() if k not in ("run", "kafka_version")})
    summary["run"] = run
    summary["load"] = load_section(execution.spec)
    summary["results"] = results_section(execution, ceiling_rps, acks)
    summary["provenance"] = collect_provenance(metadata.get("kafka_version"))
    return summary


def load_section(spec: LoadSpec) -> dict[str, Any]:
    pool = body_pool(spec, 0)
    load = spec.as_dict()
    load.update({
        "series_key": "intended send time" if spec.model == "open" else "send time",
        "body_bytes_mean": round(sum(map(len, pool)) / len(pool), 1),
        "payload_pool_size": len(pool),
        "event_loop": event_loop_name(spec),
        "client": f"aiohttp {aiohttp.__version__}",
    })
    return load


def results_section(execution: Execution, ceiling_rps: float | None, acks: int) -> dict[str, Any]:
    spec, merged = execution.spec, execution.merged
    totals, duration = merged.totals, spec.duration_s
    requests, ok = totals["sent"], totals["ok"]
    end_second = math.ceil(duration)  # the recorder's window slots: seconds 0 .. end - 1
    cpu = {c: execution.cpu.mean(c, 0, end_second) for c in COMPONENTS}
    usable = min(spec.workers, usable_cores())
    bound, reasons = generator_bound(requests / duration, ceiling_rps, cpu["generator"], usable)
    window_end_unix = execution.window_start_unix + duration
    return {
        "duration_s": duration,
        "requests": requests,
        "ok": ok,
        "client_errors": totals["client_errors"],
        "server_errors": totals["server_errors"],
        "transport_errors": totals["transport_errors"],
        "events_accepted": totals["events_accepted"],
        "throughput_rps": round(ok / duration, 3),
        "events_per_s": round(totals["events_accepted"] / duration, 3),
        "error_rate": round((requests - ok) / requests, 6) if requests else None,
        "late": totals["late"],
        "latency_ms": summarize_ms(merged.window),
        "cpu_percent": cpu,
        "cpu_other_percent": other_cpu(cpu),
        "generator_bound": bound,
        "generator_ceiling_rps": ceiling_rps,
        "generator_bound_reasons": reasons,
        "generator_bound_rule": GENERATOR_BOUND_RULE,
        "generator_usable_cores": usable,
        "achieved_rps": round(requests / duration, 3),
        "target_rps": spec.rate if spec.model == "open" else None,
        "late_fraction": round(totals["late"] / requests, 6) if requests else None,
        "unsent": merged.unsent,
        "schedule_lag_ms": lag_summary_ms(merged.lag) if spec.model == "open" else None,
        "latency_count": merged.window.get_total_count(),
        "requests_including_warmup": merged.all_sent,
        "acknowledged_ids": acks,
        "unparsed_answers": merged.unparsed_answers,
        "transport_error_kinds": merged.transport_error_kinds,
        "window": {
            "started_at": _iso(execution.window_start_unix),
            "ended_at": _iso(window_end_unix),
            "t0_unix": round(execution.window_start_unix, 6),
        },
        "workers": merged.workers,
    }


def generator_bound(achieved_rps: float, ceiling_rps: float | None,
                    generator_cpu: float | None, usable_cores: int) -> tuple[bool, list[str]]:
    """Apply GENERATOR_BOUND_RULE; the reasons say which half of it fired."""
    reasons = []
    if ceiling_rps and achieved_rps >= CEILING_FRACTION * ceiling_rps:
        reasons.append(f"sent {achieved_rps:.0f} req/s >= {CEILING_FRACTION:.0%} of the "
                       f"generator ceiling {ceiling_rps:.0f} req/s")
    if generator_cpu is not None and generator_cpu >= CPU_FRACTION * 100 * usable_cores:
        reasons.append(f"generator CPU {generator_cpu:.0f}% >= {CPU_FRACTION:.0%} of "
                       f"{usable_cores} usable core(s)")
    return bool(reasons), reasons


def other_cpu(cpu: dict[str, float | None]) -> float | None:
    """Machine CPU not used by the sampled components: other tenants, the kernel, tools.

    A large value means the box was not quiet and the run's numbers are suspect.
    """
    if cpu.get("machine") is None:
        return None
    parts = sum(v for k, v in cpu.items() if k != "machine" and v is not None)
    return round(max(cpu["machine"] - parts, 0.0), 1)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()
