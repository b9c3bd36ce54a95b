"""Per-second CPU and memory of named process groups (and the whole machine), by PID.

A background thread samples at whole seconds of a caller-chosen origin, so rows line up
with the load generator's per-second series (`second` 0 = first second of the measured
window). CPU is computed from cpu-time deltas over the actual elapsed wall time: 100 means
one core busy. A component's processes are re-listed every tick, so workers a service
forks after start are counted; a process that appears between two ticks is charged with
all the CPU it used since it started.

The machine's row also carries the host's speed that second: the thread CPU time a fixed
piece of work took (`host_probe_us`). A virtual machine's cores run slower while the
host's other tenants are busy; on the 2-core box this suite was built on, the same work
took 1.5-1.7 ms, then 2.4-2.9 ms for seconds at a time, idle or loaded. A CPU-bound
service then does less per CPU second while every CPU figure above reads the same, so the
probe is what tells a slow host from a slow setting (rundir.DISTURBED_RULE). The host slows
the cores one at a time (60 s on the loaded box, each core probed every second: core 0 slow in
4 s, core 1 in 3, never both at once), and an unpinned probe runs on the idler core, away from
the service's; so each second the probe runs on every core in turn and records the slowest.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter_ns, thread_time_ns, time
from types import TracebackType

import psutil

NS_PER_S = 1_000_000_000
MACHINE = "machine"
CSV_COLUMNS = ("second", "component", "cpu_percent", "rss_mb", "host_probe_us")
# About 1.5 ms of one core on this box at the host's full speed: long enough to read in
# thread CPU time, short enough to cost the run 0.15% of a core.
HOST_PROBE_ITERATIONS = 20_000
PROBED_CORES = 8  # at most this many cores probed a second (1.5 ms each)
_CREATE_TIME_SLACK_S = 1.0
# A component's processes: a PID, PIDs, or a callable asked at every tick, for processes
# that are replaced while the load runs (a service or broker node restarted by a fault).
Roots = int | Sequence[int] | Callable[[], Sequence[int]]


@dataclass(frozen=True)
class CpuRow:
    second: int
    component: str
    cpu_percent: float
    rss_mb: float
    host_probe_us: float | None = None  # the machine's row only: see host_probe_us()


class CpuSampler:
    """Sample `components` (name -> `Roots`) every `interval_s` until stopped.

    Components named in `with_children` include every descendant of their PIDs (a
    service started with `--workers N` forks). Use as a context manager or call
    `start()` / `stop()`; `rows` holds the samples, `write_csv` writes cpu.csv.
    """

    def __init__(self, components: Mapping[str, Roots],
                 with_children: Iterable[str] = (), origin_ns: int | None = None,
                 interval_s: float = 1.0, machine: bool = True) -> None:
        self.components: dict[str, Callable[[], Sequence[int]]] = {
            name: _roots(pids) for name, pids in components.items()
        }
        self.with_children = set(with_children)
        self.origin_ns = perf_counter_ns() if origin_ns is None else origin_ns
        self.interval_ns = round(interval_s * NS_PER_S)
        self.machine = machine
        self.rows: list[CpuRow] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._cpu: dict[tuple[int, float], float] = {}
        self._machine_times: tuple[float, float] | None = None
        self._last_wall = 0.0

    def start(self) -> CpuSampler:
        self._baseline()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[CpuRow]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.rows

    def __enter__(self) -> CpuSampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def mean(self, component: str, first_second: int, end_second: int) -> float | None:
        """Mean cpu_percent of `component` over seconds [first_second, end_second)."""
        values = [r.cpu_percent for r in self.rows
                  if r.component == component and first_second <= r.second < end_second]
        return round(sum(values) / len(values), 1) if values else None

    def host_probes(self, first_second: int | None = None,
                    end_second: int | None = None) -> list[float]:
        """host_probe_us of each second in [first_second, end_second) (default: all)."""
        low = -math.inf if first_second is None else first_second
        high = math.inf if end_second is None else end_second
        return [r.host_probe_us for r in self.rows if r.component == MACHINE
                and r.host_probe_us is not None and low <= r.second < high]

    def write_csv(self, path: Path) -> None:
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(asdict(row) for row in self.rows)

    def _loop(self) -> None:
        # Ticks sit on whole intervals of the origin, so a tick's row covers one second.
        k = math.floor((perf_counter_ns() - self.origin_ns) / self.interval_ns) + 1
        while True:
            wait = (self.origin_ns + k * self.interval_ns - perf_counter_ns()) / NS_PER_S
            if wait > 0 and self._stop.wait(wait):
                return
            self._sample(second=k - 1)
            k += 1

    def _baseline(self) -> None:
        self._last_wall = time()
        self._machine_times = _machine_busy()
        for name, roots in self.components.items():
            for proc in self._members(roots(), name in self.with_children):
                with contextlib.suppress(psutil.Error):
                    self._cpu[_key(proc)] = _cpu_seconds(proc)

    def _sample(self, second: int) -> None:
        now = time()
        elapsed = max(now - self._last_wall, 1e-6)
        for name, roots in self.components.items():
            row = self._sample_component(name, roots(), second, elapsed, self._last_wall)
            if row is not None:
                self.rows.append(row)
        if self.machine:
            busy, total = _machine_busy()
            if self._machine_times is not None:
                d_busy, d_total = busy - self._machine_times[0], total - self._machine_times[1]
                percent = 100.0 * psutil.cpu_count() * d_busy / d_total if d_total > 0 else 0.0
                used = psutil.virtual_memory().used / 2**20
                self.rows.append(CpuRow(second, MACHINE, round(percent, 1), round(used, 1),
                                        slowest_core_probe_us()))
            self._machine_times = (busy, total)
        self._last_wall = now

    def _sample_component(self, name: str, roots: Sequence[int], second: int, elapsed: float,
                          last_wall: float) -> CpuRow | None:
        cpu, rss, alive = 0.0, 0, False
        for proc in self._members(roots, name in self.with_children):
            key = _key(proc)
            try:
                used = _cpu_seconds(proc)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
            alive = True
            previous = self._cpu.get(key)
            if previous is None:
                # Seen for the first time: all of its CPU is new if it started since the last
                # tick. A create time is the boot time (whole seconds) plus clock ticks, so it
                # may read up to a second early: a child forked just after a tick would
                # otherwise lose the CPU it used before it was first seen.
                previous = 0.0 if key[1] >= last_wall - _CREATE_TIME_SLACK_S else used
            cpu += max(used - previous, 0.0)
            self._cpu[key] = used
        if not alive:
            return None
        return CpuRow(second, name, round(100.0 * cpu / elapsed, 1), round(rss / 2**20, 1))

    def _members(self, roots: Sequence[int], children: bool) -> list[psutil.Process]:
        members: list[psutil.Process] = []
        for pid in roots:
            try:
                root = psutil.Process(pid)
                members.append(self._cached(root))
                if children:
                    members.extend(self._cached(child) for child in root.children(recursive=True))
            except psutil.Error:
                continue
        return members

    def _cached(self, proc: psutil.Process) -> psutil.Process:
        # Keyed by (pid, create time): a recycled PID is a different process.
        return self._procs.setdefault(_key(proc), proc)


def _roots(pids: Roots) -> Callable[[], Sequence[int]]:
    if callable(pids):
        def current() -> Sequence[int]:
            try:
                return pids()
            except Exception:  # a process between two lives: none this tick
                return ()
        return current
    fixed = [pids] if isinstance(pids, int) else list(pids)
    return lambda: fixed


def _key(proc: psutil.Process) -> tuple[int, float]:
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return proc.pid, 0.0


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _machine_busy() -> tuple[float, float]:
    times = psutil.cpu_times()
    # Linux already counts guest time inside user and nice; adding it again would inflate.
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def host_probe_us(iterations: int = HOST_PROBE_ITERATIONS) -> float:
    """Thread CPU microseconds a fixed integer loop takes now: higher when the host runs this
    machine's cores slower. Thread CPU time, not wall time, so the machine's own load (a
    busy core that makes the probe wait its turn) does not count, only the speed it runs at."""
    started = thread_time_ns()
    x = 1
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return round((thread_time_ns() - started) / 1000, 1)


def slowest_core_probe_us(iterations: int = HOST_PROBE_ITERATIONS) -> float:
    """host_probe_us() on each core this thread may run on (up to PROBED_CORES), pinned to
    it in turn: the slowest reading. Where affinity cannot be set, one unpinned reading."""
    if not hasattr(os, "sched_setaffinity"):
        return host_probe_us(iterations)
    allowed = os.sched_getaffinity(0)
    readings = []
    try:
        for core in sorted(allowed)[:PROBED_CORES]:
            os.sched_setaffinity(0, {core})  # pid 0: the calling thread
            readings.append(host_probe_us(iterations))
    finally:
        os.sched_setaffinity(0, allowed)
    return max(readings)


# -- one-shot figures for benchmarks that charge a window's CPU to its requests -------------
def process_tree(pid: int | None) -> list[psutil.Process]:
    """`pid` and its descendants now (empty when it is gone or None)."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of `procs` (those that are gone count nothing)."""
    return sum(cpu_seconds_by_mode(procs).values())


def cpu_seconds_by_mode(procs: Iterable[psutil.Process]) -> dict[str, float]:
    """CPU seconds of `procs` in user space and in the kernel (system calls, and the loopback
    network work the kernel does inside them): whether a cost over a reference is the
    program's own code or more of the same socket work is read here, not argued."""
    totals = {"user": 0.0, "kernel": 0.0}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            totals["user"] += times.user
            totals["kernel"] += times.system
    return totals


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), for deltas."""
    return _machine_busy()[0]

