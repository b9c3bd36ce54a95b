"""One load run, top down: workers -> merge -> files -> summary."""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns, time_ns
from typing import Any, Protocol

from experiments.cpu import CpuSampler, Roots, process_tree
from experiments.histograms import merge_histograms, summarize_ms
from experiments.load.files import collect_acks, fault_share, write_histograms, write_series
from experiments.load.merge import Merged, lag_summary_ms, merge_results
from experiments.load.payloads import body_pool
from experiments.load.recorder import NS_PER_S
from experiments.load.remote import HostRecord, LoadHosts, drive_agents, hosts_section
from experiments.load.spec import LoadSpec
from experiments.load.worker import client_name, drive_workers, event_loop_name
from experiments.provenance import collect_provenance, usable_cores
from experiments.rundir import (
    ACKS,
    CPU,
    CPU_KEYS,
    GENERATOR_BOUND_RULE,
    MACHINE,
    OVERLOAD_RULE,
    SCHEMA,
    RunDir,
    Summary,
    generator_bound,
    host_speed,
    overload,
)


class DuringLoad(Protocol):
    """Something that acts while the load runs (a fault injector), timed from the window.

    `start` is called just before the load starts, with the perf_counter nanoseconds at
    which the measured window will begin; `stop` after the load, returning the run's
    `faults` section (RESULTS.md), whose `windows` the series and the availability use.
    """

    def start(self, window_start_ns: int) -> None: ...

    def stop(self) -> dict[str, Any]: ...


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
    faults: dict[str, Any] | None = None
    hosts: LoadHosts | None = None
    host_records: list[HostRecord] | None = None  # what happened on each load host


def execute_load(spec: LoadSpec, acks_dir: Path | None = None,
                 pids: Mapping[str, Roots] | None = None,
                 during: DuringLoad | None = None,
                 hosts: LoadHosts | None = None) -> Execution:
    """Apply `spec` with its worker processes, sampling CPU, and merge what they recorded.

    With `hosts`, the workers run on those generator agents, `spec.workers` on each
    (experiments/load/remote.py); the merge and everything after it are the same.
    """
    spec.validate()
    pids = dict(pids or {})
    # One (wall, monotonic) pair maps the run's monotonic times to wall-clock times.
    wall_ref, mono_ref = time_ns(), perf_counter_ns()
    sampler: list[CpuSampler] = []
    window: list[int] = []

    def on_start(t_start_ns: int, worker_pids: list[int]) -> None:
        origin = t_start_ns + round(spec.warmup_s * NS_PER_S)
        window.append(origin)
        generator: Roots = [os.getpid(), *worker_pids]
        if hosts is not None:
            # Agents on this machine are its generator here too, with the workers they spawn.
            agents = list(worker_pids)
            generator = lambda: [os.getpid(), *(p.pid for a in agents for p in process_tree(a))]  # noqa: E731
        components: dict[str, Roots] = {"generator": generator}
        components.update(pids)
        sampler.append(CpuSampler(components, with_children=pids, origin_ns=origin).start())
        if during is not None:
            during.start(origin)

    started_at = _utc_now()
    faults: dict[str, Any] | None = None
    records: list[HostRecord] | None = None
    try:
        if hosts is None:
            results = drive_workers(spec, acks_dir, on_start)
        else:
            results, records = drive_agents(spec, hosts, acks_dir, on_start)
    finally:
        for running in sampler:
            running.stop()
        # Always undone, even when the load failed: a paused broker must not stay paused.
        if during is not None and window:
            faults = during.stop()
    ended_at = _utc_now()
    window_start_unix = (wall_ref + (window[0] - mono_ref)) / NS_PER_S
    return Execution(spec, merge_results(results, spec.duration_s), results, sampler[0],
                     started_at, ended_at, window_start_unix, faults, hosts, records)


def apply_load(spec: LoadSpec, out_dir: Path, pids: Mapping[str, Roots] | None = None,
             metadata: dict[str, Any] | None = None,
             ceiling_rps: float | None = None,
             during: DuringLoad | None = None,
             write: bool = True,
             hosts: LoadHosts | None = None) -> Summary:
    """Run `spec`, write its files into `out_dir` (RESULTS.md), return the summary.

    `pids` names other processes to sample (service, broker; each with its children);
    `metadata` keys (run, params, service, target, ...) are copied into the summary as
    given, except that `run` gains `started_at`/`ended_at` when it lacks them; `during`
    acts while the load runs (faults). With `write=False` summary.json is left to the
    caller, who adds the audit after the service has flushed and writes it once; `hosts`
    runs the workers on generator agents (summary `load_hosts`).

    Workers are started with "spawn": a script calling this needs the usual
    `if __name__ == "__main__":` guard (notebooks and `python -m` entry points do not).
    """
    spec.validate()
    run_dir = RunDir(out_dir)
    run_dir.claim()
    execution = execute_load(spec, acks_dir=run_dir.path, pids=pids, during=during, hosts=hosts)
    merged = execution.merged
    windows = fault_windows(execution.faults)
    write_series(run_dir, merged, windows)
    execution.cpu.write_csv(run_dir / CPU)
    write_histograms(run_dir, merged, execution.results, execution.window_start_unix,
                     spec.warmup_s)
    acks = collect_acks(run_dir, execution.results)
    summary = build_summary(execution, metadata or {}, ceiling_rps, acks)
    if execution.faults is not None:
        summary["faults"] = execution.faults
        summary["availability"] = availability(merged, windows, run_dir / ACKS, spec.duration_s)
    if write:
        run_dir.write_summary(summary)
    return summary


def build_summary(execution: Execution, metadata: dict[str, Any], ceiling_rps: float | None,
                  acks: int) -> Summary:
    run = dict(metadata.get("run") or {})
    run.setdefault("started_at", execution.started_at)
    run.setdefault("ended_at", execution.ended_at)
    summary: Summary = {"schema": SCHEMA}
    summary.update({k: v for k, v in metadata.items() if k not in ("run", "kafka_version")})  # type: ignore[typeddict-item]
    summary["run"] = run
    summary["load"] = load_section(execution.spec)
    summary["results"] = results_section(execution, ceiling_rps, acks)
    if execution.hosts is not None and execution.host_records is not None:
        summary["load_hosts"] = hosts_section(execution.host_records, execution.spec,
                                              execution.hosts.token_env)
        _bound_by_hosts(summary["results"], summary["load_hosts"])
        hosts = len(execution.host_records)
        summary["load"].update({"hosts": hosts, "workers_total": execution.spec.workers * hosts})
    summary["provenance"] = collect_provenance(metadata.get("kafka_version"))
    return summary


def _bound_by_hosts(results: dict[str, Any], section: dict[str, Any]) -> None:
    """With load hosts the generator is bound when any host is (its CPU against its cores);
    the ceiling half still applies to the whole rate."""
    reasons = [r for r in results["generator_bound_reasons"] if "ceiling" in r]
    reasons += [f"{host['address']}: {reason}" for host in section["hosts"]
                for reason in host["generator_bound_reasons"]]
    results["generator_bound"] = bool(reasons)
    results["generator_bound_reasons"] = reasons
    results["generator_usable_cores"] = sum(min(section["workers_per_host"], host["cores"] or 1)
                                            for host in section["hosts"])


def load_section(spec: LoadSpec) -> dict[str, Any]:
    pool = body_pool(spec, 0)
    load = spec.as_dict()
    load.update({
        "key_clock": "intended send time" if spec.model == "open" else "send time",
        "engine": spec.engine,
        "body_bytes_mean": round(sum(map(len, pool)) / len(pool), 1),
        "payload_pool_size": len(pool),
        "event_loop": event_loop_name(spec),
        "client": client_name(spec),
    })
    return load


def results_section(execution: Execution, ceiling_rps: float | None, acks: int) -> dict[str, Any]:
    spec, merged = execution.spec, execution.merged
    totals, duration, cohort = merged.totals, spec.duration_s, merged.cohort
    sent, ok = totals["sent"], totals["ok"]
    errors = totals["client_errors"] + totals["server_errors"] + totals["transport_errors"]
    end_second = math.ceil(duration)  # the recorder's window slots: seconds 0 .. end - 1
    cpu = {c: execution.cpu.mean(c, 0, end_second) for c in CPU_KEYS}
    usable = min(spec.workers, usable_cores())
    bound, reasons = generator_bound(sent / duration, ceiling_rps, cpu["generator"], usable)
    window_end_unix = execution.window_start_unix + duration
    open_loop = spec.model == "open"
    # Every slot of the window is either sent or never sent, so this is exact.
    offered = sent + merged.never_sent if open_loop else None
    unfinished = merged.never_sent + cohort["in_flight_at_end"]
    base = offered if open_loop else sent
    unfinished_fraction = round(unfinished / base, 6) if base else None
    overloaded, overload_reasons = (
        overload(offered or 0, ok, unfinished_fraction or 0.0, duration) if open_loop else (None, [])
    )
    return {
        "duration_s": duration,
        "ok": ok,
        "events_accepted": totals["events_accepted"],
        "client_errors": totals["client_errors"],
        "server_errors": totals["server_errors"],
        "transport_errors": totals["transport_errors"],
        "status_counts": merged.status_counts,
        "throughput_rps": round(ok / duration, 3),
        "events_per_s": round(totals["events_accepted"] / duration, 3),
        "error_rate": round(errors / (ok + errors), 6) if ok + errors else None,
        "offered": offered,
        "offered_rps": round(offered / duration, 3) if offered is not None else None,
        "sent": sent,
        "sent_rps": round(sent / duration, 3),
        "completed_in_window": cohort["completed_in_window"],
        "completed_after_window": cohort["completed_after_window"],
        "never_sent": merged.never_sent,
        "in_flight_at_end": cohort["in_flight_at_end"],
        "unfinished": unfinished,
        "unfinished_fraction": unfinished_fraction,
        "overloaded": overloaded,
        "overload_reasons": overload_reasons,
        "overload_rule": OVERLOAD_RULE,
        "drain_s": round(merged.drain_s, 3),
        "drain_limit_s": spec.drain_limit_s,
        "late": totals["late"],
        "late_fraction": round(totals["late"] / sent, 6) if sent else None,
        "schedule_lag_ms": lag_summary_ms(merged.lag) if open_loop else None,
        "latency_ms": summarize_ms(merged.window),
        "latency_count": merged.window.get_total_count(),
        "cpu_percent": cpu,
        "cpu_other_percent": other_cpu(cpu),
        "host_speed": host_speed(execution.cpu.host_probes(0, end_second),
                                 execution.cpu.host_probes()),
        "generator_bound": bound,
        "generator_ceiling_rps": ceiling_rps,
        "generator_bound_reasons": reasons,
        "generator_bound_rule": GENERATOR_BOUND_RULE,
        "generator_usable_cores": usable,
        "sent_including_warmup": merged.all_sent,
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


def fault_windows(faults: dict[str, Any] | None) -> list[list[float]]:
    if not faults:
        return []
    return [[float(start), float(end)] for start, end in faults.get("windows") or []]


def availability(merged: Merged, windows: list[list[float]], acks_csv: Path,
                 duration_s: float) -> dict[str, Any]:
    """What the fault did to answers (RESULTS.md): the gap from its start until the first
    2xx to a request sent after it started, outcomes while it lasted, latency during it
    against the rest of the window.

    Counts and latency are per second (a second overlapping a fault window counts as
    under the fault); the first success is exact, from the acknowledgement times.
    """
    if not windows:
        return {"fault_start_s": None, "first_ok_after_fault_s": None, "unavailable_s": None,
                "ok_during_fault": 0, "errors_during_fault": {},
                "latency_ms_during_fault": None, "latency_ms_outside_fault": None}
    start = min(w[0] for w in windows)
    first_ok = _first_ack_after(acks_csv, start)
    under = {row["second"] for row in merged.series if fault_share(row["second"], windows) > 0}
    errors: Counter[str] = Counter()
    for row in merged.errors:
        if row["second"] in under:
            errors[row["status"]] += row["count"]
    measured = math.ceil(duration_s)
    during = [h for s, h in merged.slot_hists.items() if s in under]
    outside = [h for s, h in merged.slot_hists.items() if s not in under and 0 <= s < measured]
    spectrum = ("p50", "p99", "max")

    def latency(hists: list[Any]) -> dict[str, float | None] | None:
        if not hists:
            return None
        values = summarize_ms(merge_histograms(hists))
        return {k: values[k] for k in spectrum}

    return {
        "fault_start_s": round(start, 3),
        "first_ok_after_fault_s": None if first_ok is None else round(first_ok, 3),
        "unavailable_s": None if first_ok is None else round(first_ok - start, 3),
        "ok_during_fault": sum(row["ok"] for row in merged.series if row["second"] in under),
        "errors_during_fault": dict(sorted(errors.items())),
        "latency_ms_during_fault": latency(during),
        "latency_ms_outside_fault": latency(outside),
    }


def _first_ack_after(acks_csv: Path, start_s: float) -> float | None:
    """When the first request sent (or due) at or after `start_s` was acknowledged.

    Answers to requests sent before the fault may still arrive after it started; they
    say nothing about whether the service was available, so they do not end the gap.
    """
    first = None
    with acks_csv.open(newline="") as src:
        for row in csv.DictReader(src):
            if float(row["t_sent_s"]) >= start_s:
                t = float(row["t_ack_s"])
                if first is None or t < first:
                    first = t
    return first


def other_cpu(cpu: dict[str, float | None]) -> float | None:
    """Machine CPU not used by the sampled components: other tenants, the kernel, tools.

    A large value means the box was not quiet and the run's numbers are suspect.
    """
    machine = cpu.get(MACHINE)
    if machine is None:
        return None
    parts = sum(v for k, v in cpu.items() if k != MACHINE and v is not None)
    return round(max(machine - parts, 0.0), 1)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()
