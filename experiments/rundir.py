"""The run directory and the plan directory around it: one owner for the name of every
file in them, the summary's shape, whether a run finished, and the two rules a summary
states (overloaded, generator-bound).

Writers (experiment.py, the load generator, the audit, the runner) and readers (the
runner's resume, the capacity search, the analysis) all go through here, so a file is
named, and a run judged finished, in one place. The contract in words is
experiments/RESULTS.md (schema lab.run/2).
"""

from __future__ import annotations

import csv
import json
import math
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from hdrh.histogram import HdrHistogram

from experiments.cpu import MACHINE
from experiments.errors import LabError
from experiments.histograms import decode_histogram, merge_histograms

SCHEMA = "lab.run/2"

# A run directory: results/<plan>/<cell-id>/
SUMMARY = "summary.json"
SERIES = "series.csv"
ERRORS = "errors.csv"
CPU = "cpu.csv"
LATENCY = "latency.hdr"
HISTOGRAMS_DIR = "histograms"
INTERVALS_DIR = "intervals"
ACKS = "acks.csv"
AUDIT = "audit.json"
METRICS = "metrics.prom"
SERVICE_LOG = "service.log"
# What the runner leaves in a cell it executed through papermill.
ERROR = "error.txt"
PAPERMILL_LOG = "papermill.log"
NOTEBOOK = "notebook.ipynb"
# A plan directory: results/<plan>/, beside its run directories.
PLAN = "plan.json"
SEARCH = "search.json"
GENERATOR_CEILING = "generator_ceiling.json"
ANALYSIS = "analysis.ipynb"
KERNEL_LOG = "kernel.log"  # the plan's run kernel's own process output (the runner)
TIMINGS = "timings.json"  # per cell: wall time, its load phase, the rest (the runner)
DISTURBED_DIR = "_disturbed"  # runs set aside because other load shared the box (the runner)

# series.csv: `sent`, `late` and the percentiles by key time (intended send time in the
# open loop, send time in the closed loop); the outcomes by completion time.
KEY_CLOCK_COUNTERS = ("sent", "late")
COMPLETION_CLOCK_COUNTERS = ("ok", "events_accepted", "client_errors", "server_errors", "transport_errors")
SERIES_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
SERIES_COLUMNS = (
    "second", "phase", *KEY_CLOCK_COUNTERS, *COMPLETION_CLOCK_COUNTERS,
    *SERIES_PERCENTILES, "max_ms", "fault",
)
ERRORS_COLUMNS = ("second", "status", "count")
ACKS_COLUMNS = ("event_id", "t_ack_s", "status", "t_sent_s")
TRANSPORT = "transport"  # the status of an outcome without an HTTP answer

# The processes whose CPU a run samples (cpu.csv, `results.cpu_percent`); MACHINE is the
# whole box beside them. PROXY is the latency proxy before every listener of a run behind
# one (experiments/network): absent from cpu.csv and null in `cpu_percent` on loopback.
PROXY = "proxy"
COMPONENTS = ("generator", "service", "broker", PROXY)
# Components sampled only in some runs: a report leaves them out where no run has one.
OPTIONAL_COMPONENTS = frozenset({PROXY})
CPU_KEYS = (*COMPONENTS, MACHINE)

# CPU of everything else on the box above this share of the machine makes a run suspect:
# the service, broker and generator shared their cores with something the suite did not run.
CPU_OTHER_SHARE = 0.10
# A second is slow when the host speed probe (cpu.host_probe_us) took more than
# HOST_SLOW_FACTOR times its best reading (the slowest core's: cpu.slowest_core_probe_us; the
# figures below are from the single unpinned probe before it). This VM's host runs its cores
# at two speeds: the probe reads 1.5-1.7 ms or 2.4-2.9 ms, back-to-back readings agree, and
# the slow state lasts seconds (idle box: 45% of readings in one 30-s sample, 20% in another).
# Cores busy without a pause see it least: 0-3 slow seconds in fire-and-forget windows (the
# service at its full core), 1-9 of 15 in durable ones, whose cores idle between requests. It
# matters most where CPU sets the throughput (the service at CPU_BOUND_FRACTION of its
# workers' cores, or the machine at that share of its cores): such a run is disturbed with
# more than HOST_SLOW_SHARE of the window slow. Other runs felt it only past
# HOST_SLOW_SHARE_ANY: over runs I-L, durable defaults trials were within 3% of their
# configuration's median with 5 or fewer slow seconds of 15, and 6% and 10% below it with 7
# (its closed loop waits on the service's and the broker's every request); durable with linger
# 20 ms was within 1.5% even with 9.
HOST_SLOW_FACTOR = 1.4
HOST_SLOW_SHARE = 0.25
HOST_SLOW_SHARE_ANY = 0.4
CPU_BOUND_FRACTION = 0.9
DISTURBED_RULE = (
    f"A run is disturbed when processes the suite did not start (the machine's CPU less the "
    f"generator's, the service's and the broker's) used more than {CPU_OTHER_SHARE:.0%} of "
    f"the machine over its measured window, or when it ran on a slow host in more than "
    f"{HOST_SLOW_SHARE_ANY:.0%} of the window's seconds, or in more than {HOST_SLOW_SHARE:.0%} "
    f"of them when CPU-bound (the service at {CPU_BOUND_FRACTION:.0%} or more of its workers' "
    f"cores, or the whole machine at {CPU_BOUND_FRACTION:.0%} or more of its cores). A "
    f"second is slow when a fixed piece of work, timed in thread "
    f"CPU time once a second, took more than {HOST_SLOW_FACTOR}x its best time in the run or "
    f"in the plan's earlier runs. The rule reads the box, never the run's result, so "
    f"setting such a run aside cannot pick the trials that agree."
)


def host_speed(window_probes: list[float], run_probes: list[float]) -> dict[str, Any] | None:
    """summary.json `results.host_speed`: the speed probe's readings over the window and its
    best over the whole run (warm-up and drain too). None without readings."""
    if not window_probes or not run_probes:
        return None
    best = min(run_probes)
    return {"probe_best_us": best, "probe_median_us": sorted(window_probes)[len(window_probes) // 2],
            "slow_seconds": _slow_seconds(window_probes, best), "window_probes_us": window_probes,
            "slow_factor": HOST_SLOW_FACTOR}


def host_slow(speed: dict[str, Any] | None, best_before: float | None = None,
              share: float = HOST_SLOW_SHARE) -> bool:
    """Whether more than `share` of a run's window was slow by its `results.host_speed`,
    against the run's best reading or `best_before` (the plan's best before it), whichever
    is lower."""
    probes = (speed or {}).get("window_probes_us") or []
    if not probes:
        return False
    best = speed["probe_best_us"] if best_before is None else min(speed["probe_best_us"], best_before)
    return _slow_seconds(probes, best) > share * len(probes)


def slow_reading(probe_us: float, best_us: float) -> bool:
    """A host speed probe reading slow against the best one (HOST_SLOW_FACTOR)."""
    return probe_us > HOST_SLOW_FACTOR * best_us


def _slow_seconds(probes: list[float], best: float) -> int:
    return sum(slow_reading(p, best) for p in probes)


OVERLOAD_FRACTION = 0.99
UNFINISHED_FRACTION = 0.01
OVERLOAD_RULE = (
    f"An open-loop run is overloaded when the 2xx answers completed inside the measured "
    f"window fall below {OVERLOAD_FRACTION:.0%} of the requests the schedule offered in it "
    f"(one request of slack for the window's edges), or when more than "
    f"{UNFINISHED_FRACTION:.0%} of the offered requests were unfinished (never sent, or "
    f"still in flight at the drain limit). Its throughput is then what the service "
    f"completed, not what was offered, and it has no steady rate."
)
CEILING_FRACTION = 0.8
CPU_FRACTION = 0.9
GENERATOR_BOUND_RULE = (
    f"generator_bound is true when the requests sent per second in the measured window "
    f"reach {CEILING_FRACTION:.0%} of the generator's own ceiling (measured beforehand "
    f"against a no-op server with the same engine, connections and workers, when given), "
    f"or when the generator's own CPU (parent and worker processes, mean over the window) "
    f"reaches {CPU_FRACTION:.0%} of the cores its workers can use (min(workers, usable "
    f"cores) x 100%). Such a run measured the generator, not the server."
)


def overload(offered: int, ok: int, unfinished_fraction: float,
             duration_s: float) -> tuple[bool, list[str]]:
    """Apply OVERLOAD_RULE; the reasons say which half fired, with the numbers."""
    reasons = []
    if ok < OVERLOAD_FRACTION * offered - 1:
        reasons.append(
            f"completed {ok / duration_s:.0f} 2xx answers/s in the window, "
            f"{ok / offered if offered else 0:.1%} of the {offered / duration_s:.0f} req/s offered"
        )
    if unfinished_fraction > UNFINISHED_FRACTION:
        reasons.append(f"{unfinished_fraction:.1%} of the offered requests were unfinished")
    return bool(reasons), reasons


def disturbed(summary: Summary | dict[str, Any], best_probe_us: float | None = None) -> bool:
    """Apply DISTURBED_RULE to a run's summary (`best_probe_us`: the plan's best speed probe
    before it); unknown CPU or cores is not disturbed, nor is a run without probe readings."""
    return other_load(summary) or slowed_by_host(summary, best_probe_us)


def other_load(summary: Summary | dict[str, Any]) -> bool:
    """The other-load half of DISTURBED_RULE: everything else above CPU_OTHER_SHARE."""
    other = (summary.get("results") or {}).get("cpu_other_percent")
    cores = _cores(summary)
    return other is not None and bool(cores) and float(other) > disturbed_limit(float(cores))


def slowed_by_host(summary: Summary | dict[str, Any], best_probe_us: float | None = None) -> bool:
    """The host half of DISTURBED_RULE: slow in more than HOST_SLOW_SHARE_ANY of the window,
    or in more than HOST_SLOW_SHARE of it when CPU-bound."""
    share = HOST_SLOW_SHARE if cpu_bound(summary) else HOST_SLOW_SHARE_ANY
    return host_slow((summary.get("results") or {}).get("host_speed"), best_probe_us, share)


def cpu_bound(summary: Summary | dict[str, Any]) -> bool:
    """Whether CPU set the run's pace by DISTURBED_RULE: the service at CPU_BOUND_FRACTION of
    its workers' cores, or the machine at that share of its cores."""
    cpu = (summary.get("results") or {}).get("cpu_percent") or {}
    cores = _cores(summary)
    workers = (summary.get("params") or {}).get("service_workers") or 1
    service, machine = cpu.get("service"), cpu.get(MACHINE)
    return bool(
        (service is not None and service >= CPU_BOUND_FRACTION * 100 * min(workers, cores or workers))
        or (machine is not None and cores and machine >= CPU_BOUND_FRACTION * 100 * cores)
    )


def _cores(summary: Summary | dict[str, Any]) -> Any:
    return ((summary.get("provenance") or {}).get("machine") or {}).get("cpu_count")


def disturbed_limit(cores: Any) -> Any:
    """DISTURBED_RULE's bound on everything else's CPU percent, for a machine of `cores` (a
    number, or a column of them)."""
    return cores * 100 * CPU_OTHER_SHARE


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


class RunSection(TypedDict, total=False):
    plan: str
    cell: str
    trial: int
    started_at: str  # UTC ISO 8601
    ended_at: str


class Results(TypedDict, total=False):
    """summary.json `results`: aggregates over the measured window (RESULTS.md)."""

    duration_s: float
    ok: int
    events_accepted: int
    client_errors: int
    server_errors: int
    transport_errors: int
    status_counts: dict[str, int]
    throughput_rps: float
    events_per_s: float
    error_rate: float | None
    offered: int | None
    offered_rps: float | None
    sent: int
    sent_rps: float
    completed_in_window: int
    completed_after_window: int
    never_sent: int
    in_flight_at_end: int
    unfinished: int
    unfinished_fraction: float | None
    overloaded: bool | None
    overload_reasons: list[str]
    overload_rule: str
    drain_s: float
    drain_limit_s: float
    late: int
    late_fraction: float | None
    schedule_lag_ms: dict[str, float | None] | None
    latency_ms: dict[str, float | None]  # histograms.PERCENTILES keys, max, mean
    latency_count: int
    cpu_percent: dict[str, float | None]  # CPU_KEYS
    cpu_other_percent: float | None
    host_speed: dict[str, Any] | None  # rundir.host_speed: the host's speed over the window
    generator_bound: bool
    generator_ceiling_rps: float | None
    generator_bound_reasons: list[str]
    generator_bound_rule: str
    generator_usable_cores: int
    sent_including_warmup: int
    acknowledged_ids: int
    unparsed_answers: int
    transport_error_kinds: dict[str, int]
    window: dict[str, Any]
    workers: list[dict[str, Any]]


class NetworkSection(TypedDict, total=False):
    """summary.json `network`: the round trips a run on the suite's own cluster asked of the
    network between its parts, and those it measured before its load (experiments/network,
    RESULTS.md)."""

    profile: str  # the `network` parameter: loopback, same-zone, cross-zone, cross-region, <N>ms
    proxied: bool  # false: loopback, no proxy, nothing measured
    asked: dict[str, dict[str, int]]  # link kind (client, broker) -> rtt_ms, jitter_ms
    toxics: dict[str, dict[str, dict[str, int]]] | None  # link kind -> stream -> latency, jitter
    measured_rtt_ms: dict[str, float] | None  # listener (client, replication, controller) -> median
    links: list[dict[str, Any]]  # one per node and listener, asked against measured
    missed: bool  # some link is off target by miss_rule: the report marks the run
    miss_reasons: list[str]
    miss_rule: str
    proxy: dict[str, Any] | None  # impl, version, pid
    calibration_s: float
    proxy_cpu_percent: float | None  # `results.cpu_percent.proxy`, repeated beside the links
    proxy_cpu_us_per_event: float | None


class Summary(TypedDict, total=False):
    """summary.json: what the load generator writes, what the run adds (audit, faults),
    what the runner's resume, the search and the analysis read."""

    schema: str
    run: RunSection
    params: dict[str, Any]
    load: dict[str, Any]
    service: dict[str, Any]
    target: dict[str, Any]
    kafka: dict[str, Any]
    results: Results
    faults: dict[str, Any]
    availability: dict[str, Any]
    audit: dict[str, Any]
    provenance: dict[str, Any]
    network: NetworkSection
    load_hosts: dict[str, Any]  # runs with generator agents (experiments/load/remote.py)
    timings_s: dict[str, float]  # wall seconds per phase of the run (experiment.Stopwatch)


@dataclass(frozen=True)
class RunDir:
    """One run's directory: its files, and whether the run finished."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    def worker_histogram(self, worker: int) -> Path:
        return self.path / HISTOGRAMS_DIR / f"worker-{worker}.hdr"

    def worker_intervals(self, worker: int) -> Path:
        return self.path / INTERVALS_DIR / f"worker-{worker}.hlog"

    def ack_part(self, worker: int) -> Path:
        """Worker `worker`'s acknowledged ids, until they are gathered into acks.csv."""
        return self.path / f"acks.w{worker}.part"

    def refuse_overwrite(self) -> None:
        """RunDirError when a run already wrote here: results are never overwritten."""
        if (self / SUMMARY).exists() or (self / SERIES).exists():
            raise RunDirError(f"{self.path} already holds a run; results are never overwritten")

    def claim(self) -> None:
        """Make the directory for a new run (refused where a run already wrote)."""
        self.refuse_overwrite()
        self.path.mkdir(parents=True, exist_ok=True)

    def write_summary(self, summary: Summary) -> None:
        (self / SUMMARY).write_text(json.dumps(_finite(summary), indent=2, default=str) + "\n")

    def outcome(self) -> tuple[Summary | None, str]:
        """The summary of a finished run, or None and why the run has no result.

        The one rule: a run finished when its summary.json is readable and of this
        suite's schema, and no error.txt says its cell failed. The runner writes error.txt
        even after a summary, and a summary written before a failure is not a result.
        """
        path = self / SUMMARY
        if (self / ERROR).exists() or not path.exists():
            return None, self._error_text()
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return None, f"unreadable summary.json: {exc}"
        schema = summary.get("schema") if isinstance(summary, dict) else None
        if schema != SCHEMA:
            # lab.run/1 counted throughput by intended send time: mixing it in would put
            # rates the service never reached beside the ones it did.
            return None, (
                f"summary.json schema {schema!r}, expected {SCHEMA!r}: written by another version "
                "of the suite; re-run the cell (or report it with that version)"
            )
        return summary, ""

    def finished(self) -> bool:
        return self.outcome()[0] is not None

    def failed(self) -> str:
        """Why the run has no result; empty when it finished."""
        return self.outcome()[1]

    def write_error(self, exc: BaseException) -> Path:
        """Record a failed cell: the exception, then its traceback (call inside `except`)."""
        path = self / ERROR
        path.write_text(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        return path

    def clear_error(self) -> None:
        (self / ERROR).unlink(missing_ok=True)

    def _error_text(self) -> str:
        path = self / ERROR
        if not path.exists():
            return "no summary.json and no error.txt"
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        # A traceback ends with the exception itself, which is the line worth showing.
        return lines[-1][:300] if lines else "empty error.txt"

    def read_histogram(self) -> HdrHistogram | None:
        """The run's merged latency histogram; rebuilt from the per-worker ones if missing."""
        merged = self / LATENCY
        if merged.exists():
            return decode_histogram(merged.read_text())
        parts_dir = self / HISTOGRAMS_DIR
        parts = sorted(parts_dir.glob("*")) if parts_dir.is_dir() else []
        histograms = [decode_histogram(p.read_text()) for p in parts if p.is_file()]
        return merge_histograms(histograms) if histograms else None


# Files that make a directory a run's even when its name does not start with a number.
RUN_MARKERS = (SUMMARY, ERROR, SERIES, NOTEBOOK, PAPERMILL_LOG, LATENCY)


@dataclass(frozen=True)
class PlanDir:
    """A plan's directory: the runner's files and one run directory per cell."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def run(self, cell_id: str) -> RunDir:
        return RunDir(self.path / cell_id)

    def runs(self) -> list[RunDir]:
        """The run directories, by name: numbered cells, or directories holding a run file."""
        def is_run(path: Path) -> bool:
            if not path.is_dir() or path.name.startswith((".", "_")):
                return False
            return path.name[:1].isdigit() or any((path / name).exists() for name in RUN_MARKERS)

        return [RunDir(p) for p in sorted(self.path.iterdir()) if is_run(p)]

    def set_aside(self, cell_id: str) -> Path:
        """Move a cell's run into DISTURBED_DIR (kept, numbered by attempt) so it can run again;
        its entry in TIMINGS moves to the same name, so the next attempt's does not replace it."""
        aside = self.path / DISTURBED_DIR
        aside.mkdir(exist_ok=True)
        attempt = 1 + sum(1 for p in aside.glob(f"{cell_id}.*"))
        target = aside / f"{cell_id}.{attempt}"
        (self.path / cell_id).rename(target)
        timings = self.timings()
        if cell_id in timings:
            timings[target.name] = timings.pop(cell_id)
            self._write_timings(timings)
        return target

    def timings(self) -> dict[str, Any]:
        """TIMINGS: per cell (and per run set aside), what it cost; empty before the first."""
        return _read_object(self / TIMINGS)

    def add_timing(self, name: str, entry: dict[str, Any]) -> None:
        self._write_timings({**self.timings(), name: entry})

    def _write_timings(self, timings: dict[str, Any]) -> None:
        (self / TIMINGS).write_text(json.dumps(timings, indent=2) + "\n")

    def set_aside_runs(self) -> list[RunDir]:
        """The runs set aside by DISTURBED_RULE, by name."""
        aside = self.path / DISTURBED_DIR
        return [RunDir(p) for p in sorted(aside.iterdir()) if p.is_dir()] if aside.is_dir() else []

    def write_plan(self, described: dict[str, Any]) -> None:
        (self / PLAN).write_text(json.dumps(described, indent=2) + "\n")

    def read_plan(self) -> dict[str, Any]:
        return _read_object(self / PLAN)

    def read_search(self) -> dict[str, Any] | None:
        return _read_object(self / SEARCH) or None


class RunDirError(LabError):
    """The directory already holds a run; results are never overwritten."""


def _read_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the runner (plan.json, search.json, timings.json); empty when
    absent or bad."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def write_rows(path: Path, columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON; they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
