"""The CPU sampler against processes whose CPU use is known: one spinning, one sleeping."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter_ns, sleep

import pytest

from experiments.cpu import CSV_COLUMNS, CpuSampler

# Burns a fixed amount of CPU time (not wall time), then says so and idles: the CPU the
# sampler must attribute to it is known exactly, however busy the box is.
BURN_S = 0.6
SPIN = ("import sys, time\n"
        "time.sleep(0.5)\n"  # time to be seen before it burns
        "while time.process_time() < {s}: pass\n"
        "print('done', flush=True)\n"
        "time.sleep(60)\n")
# A parent that sleeps while its forked child burns: only the child's CPU is busy.
PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', {spin!r}])\n"
          "child.wait()\n")


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen]]:
    procs = {
        "spinner": subprocess.Popen([sys.executable, "-c", SPIN.format(s=BURN_S)],
                                    stdout=subprocess.PIPE, text=True),
        "sleeper": subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
        "parent": subprocess.Popen([sys.executable, "-c", PARENT.format(spin=SPIN.format(s=BURN_S))],
                                   stdout=subprocess.PIPE, text=True),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def _cpu_seconds(rows: list, component: str) -> float:
    """What the sampler attributes to `component`, in CPU seconds (rows are 1 s apart)."""
    return sum(r.cpu_percent / 100 for r in rows if r.component == component)


def test_sampler_attributes_to_each_process_the_cpu_it_used(processes: dict[str, subprocess.Popen],
                                                            tmp_path: Path) -> None:
    """Each burner uses exactly BURN_S of CPU inside the sampled span (the sampler stops
    a tick after both said they were done), so the sum of its rows is BURN_S, whatever
    share of a core the box gave it; the sleeper's is ~0."""
    components = {name: proc.pid for name, proc in processes.items()}
    components["parent_alone"] = processes["parent"].pid
    origin = perf_counter_ns()
    # A child forked after the sampler started is counted whole too (the sampler's rule for
    # processes first seen at a tick); the start does not wait for it.
    with CpuSampler(components, with_children={"parent"}, origin_ns=origin) as sampler:
        for name in ("spinner", "parent"):
            assert processes[name].stdout.readline().strip() == "done"  # type: ignore[union-attr]
        ticks = len({r.second for r in sampler.rows})
        while len({r.second for r in sampler.rows}) < ticks + 2:
            sleep(0.1)
    used = {name: _cpu_seconds(sampler.rows, name) for name in components}
    print(used)
    # Rows are per elapsed second (ticks land within a few ms of whole seconds): 10% slack.
    assert used["spinner"] == pytest.approx(BURN_S, rel=0.1, abs=0.03)
    assert used["parent"] == pytest.approx(BURN_S, rel=0.1, abs=0.05)  # the child counts
    assert used["parent_alone"] < 0.05  # not without it
    assert used["sleeper"] < 0.05
    assert _cpu_seconds(sampler.rows, "machine") >= used["spinner"] * 0.8
    seconds = sorted({row.second for row in sampler.rows})
    assert seconds[:2] == [0, 1]

    sampler.write_csv(tmp_path / "cpu.csv")
    with (tmp_path / "cpu.csv").open() as src:
        rows = list(csv.DictReader(src))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {row["component"] for row in rows} == {*components, "machine"}
    assert all(float(row["rss_mb"]) > 0 for row in rows)
    # The host's speed rides on the machine's rows only: every tick timed the probe.
    assert all(float(row["host_probe_us"]) > 0 for row in rows if row["component"] == "machine")
    assert all(row["host_probe_us"] == "" for row in rows if row["component"] != "machine")
    assert len(sampler.host_probes()) == len(seconds) and sampler.host_probes(0, 1) == [
        r.host_probe_us for r in sampler.rows if r.component == "machine" and r.second == 0]


def test_sampler_skips_processes_that_are_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with CpuSampler({"gone": proc.pid}, machine=False, interval_s=0.2) as sampler:
        sleep(0.5)
    assert sampler.rows == []


def test_a_replaced_process_is_followed_when_the_component_is_a_callable() -> None:
    """A fault restarts the service or a broker node: its new pid must be sampled."""
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    second = subprocess.Popen([sys.executable, "-c", SPIN.format(s=30)])
    current = [first.pid]
    try:
        with CpuSampler({"service": lambda: list(current),
                         "fixed": first.pid}) as sampler:
            sleep(1.3)
            first.kill()
            first.wait()
            current[:] = [second.pid]  # what ServiceProcess.pid says after the restart
            sleep(2.2)
        by_second = {row.second: row for row in sampler.rows if row.component == "service"}
        fixed_seconds = {row.second for row in sampler.rows if row.component == "fixed"}
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
    # The fixed pid died: no rows after it; the callable's component goes on, now busy.
    assert max(fixed_seconds) <= 1
    assert max(by_second) >= 2
    assert by_second[max(by_second)].cpu_percent > by_second[0].cpu_percent


def test_the_host_probe_runs_on_every_core_in_turn_and_keeps_the_slowest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The host slows one core at a time; a probe left to the scheduler runs on the idler one.
    Each core is probed pinned to it, the slowest reading kept, the thread's affinity restored."""
    import os

    from experiments import cpu

    allowed = os.sched_getaffinity(0)
    seen: list[set[int]] = []

    def probe(iterations: int = 0) -> float:
        seen.append(set(os.sched_getaffinity(0)))
        return 1500.0 + 100.0 * min(seen[-1])  # a higher core number, a slower core

    monkeypatch.setattr(cpu, "host_probe_us", probe)
    probed = sorted(allowed)[:cpu.PROBED_CORES]
    assert cpu.slowest_core_probe_us() == 1500.0 + 100.0 * probed[-1]
    assert seen == [{core} for core in probed]
    assert os.sched_getaffinity(0) == allowed
