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

SPIN = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"
# A parent that sleeps while its forked child spins: only the child's CPU is busy.
PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', {spin!r}])\n"
          "child.wait()\n")


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen]]:
    procs = {
        "spinner": subprocess.Popen([sys.executable, "-c", SPIN.format(s=3.5)]),
        "sleeper": subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3.5)"]),
        "parent": subprocess.Popen([sys.executable, "-c", PARENT.format(spin=SPIN.format(s=3.5))]),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_sampler_sees_busy_idle_and_forked_processes(processes: dict[str, subprocess.Popen],
                                                     tmp_path: Path) -> None:
    components = {name: proc.pid for name, proc in processes.items()}
    components["parent_alone"] = processes["parent"].pid
    sleep(0.3)  # let the parent fork its child
    origin = perf_counter_ns()
    with CpuSampler(components, with_children={"parent"}, origin_ns=origin) as sampler:
        sleep(2.6)
    means = {name: sampler.mean(name, 0, 2) for name in [*components, "machine"]}
    print(means)
    # On a shared 2-core box a spinner may not get a whole core; it still dwarfs a sleeper.
    assert means["spinner"] is not None and means["spinner"] > 40
    assert means["sleeper"] is not None and means["sleeper"] < 5
    assert means["parent"] is not None and means["parent"] > 40  # the child counts
    assert means["parent_alone"] is not None and means["parent_alone"] < 5  # not without it
    assert means["machine"] is not None and means["machine"] >= means["spinner"] * 0.8
    seconds = sorted({row.second for row in sampler.rows})
    assert seconds[:2] == [0, 1]

    sampler.write_csv(tmp_path / "cpu.csv")
    with (tmp_path / "cpu.csv").open() as src:
        rows = list(csv.DictReader(src))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {row["component"] for row in rows} == {*components, "machine"}
    assert all(float(row["rss_mb"]) > 0 for row in rows)


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
