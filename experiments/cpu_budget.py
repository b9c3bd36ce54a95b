"""CPU budgets per component of a run: a cgroup of its own, as a container limit gives one.

On a small machine the service, the broker and the load generator share the cores, and
whichever is busy at a moment takes from the others: a broker's burst of log work makes
the service slower for that trial only, which is run-to-run spread the report then has
to explain. A budget fixes each component's share. Two kinds, both cgroup v1 (the
machines this suite runs on mount v1 controllers, writable by root):

- `cores=[...]` (cpuset): the component runs on those cores only, never preempted there
  by the others; no throttling, so latencies keep their shape;
- `cpus=x` (cpu quota, like `docker run --cpus`): at most x cores' worth of time per
  100 ms period, wherever it runs; beyond it the component waits for the next period,
  which adds up to a period to a request that hits the limit.

`CpuBudgets.available()` says why not, where the controllers are missing or read-only,
so a run that asks for a budget is refused before anything starts. Every process of a
component (and every thread: writing a pid to `cgroup.procs` moves its whole thread
group; children forked later inherit it) is moved in by pid; `close` moves them back to
the root group and removes the groups, so nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path(os.environ.get("LAB_CGROUP_ROOT", "/sys/fs/cgroup"))
PERIOD_US = 100_000


class BudgetError(RuntimeError):
    """A CPU budget cannot be applied on this machine, or asks for what it does not have."""


@dataclass(frozen=True)
class Budget:
    """One component's share: a set of cores (cpuset), a quota in cores, or both."""

    cores: tuple[int, ...] = ()
    cpus: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.cores and not self.cpus

    def describe(self) -> str:
        parts = []
        if self.cores:
            parts.append("cores " + ",".join(str(c) for c in self.cores))
        if self.cpus:
            parts.append(f"{self.cpus:g} CPU quota")
        return " + ".join(parts) or "none"


def parse_cores(text: str) -> tuple[int, ...]:
    """'0', '1-3', '0,2' -> the core numbers; '' -> none."""
    cores: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        cores.extend(range(int(low), int(high or low) + 1))
    return tuple(sorted(set(cores)))


class CpuBudgets:
    """The cgroups of one run's components, under `<controller>/lab/<run>/<component>`."""

    def __init__(self, run: str, root: Path = CGROUP_ROOT) -> None:
        self.run = "".join(c if c.isalnum() or c in "-_." else "-" for c in run)[:100]
        self.root = root
        self._groups: list[Path] = []

    @staticmethod
    def available(root: Path = CGROUP_ROOT, need: Iterable[str] = ("cpu", "cpuset")) -> str | None:
        """None when budgets can be applied here, else why not (in words)."""
        for controller in need:
            base = root / controller
            if not (base / "cgroup.procs").exists():
                return (f"no cgroup v1 '{controller}' controller at {base} (CPU budgets need the "
                        "cgroup v1 cpu and cpuset controllers, as on this suite's machines)")
            if not os.access(base, os.W_OK):
                return f"{base} is not writable (CPU budgets need root)"
        return None

    def apply(self, component: str, budget: Budget, pids: Sequence[int]) -> None:
        """Move `pids` (and their descendants) into `component`'s groups for `budget`."""
        if budget.empty:
            return
        need = (["cpuset"] if budget.cores else []) + (["cpu"] if budget.cpus else [])
        reason = self.available(self.root, need)
        if reason:
            raise BudgetError(reason)
        members = _with_descendants(pids)
        if budget.cores:
            group = self._group("cpuset", component)
            online = parse_cores((self.root / "cpuset" / "cpuset.cpus").read_text())
            wrong = sorted(set(budget.cores) - set(online))
            if wrong:
                raise BudgetError(f"cores {wrong} are not on this machine (it has {online})")
            (group / "cpuset.cpus").write_text(",".join(str(c) for c in budget.cores))
            (group / "cpuset.mems").write_text((self.root / "cpuset" / "cpuset.mems").read_text())
            _move(group, members)
        if budget.cpus:
            if budget.cpus * PERIOD_US < 1000:
                raise BudgetError(f"a quota of {budget.cpus:g} CPU is below the kernel's 1 ms minimum")
            group = self._group("cpu", component)
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(round(budget.cpus * PERIOD_US)))
            _move(group, members)

    def _group(self, controller: str, component: str) -> Path:
        parent = self.root / controller / "lab"
        parent.mkdir(exist_ok=True)
        if controller == "cpuset":
            # A cpuset group takes no task before its cpus and mems are set, parents too.
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (parent / name).read_text().strip():
                    (parent / name).write_text((self.root / controller / name).read_text())
        group = parent / self.run / component
        group.mkdir(parents=True, exist_ok=True)
        if controller == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                run_group = group.parent / name
                if not run_group.read_text().strip():
                    run_group.write_text((self.root / controller / name).read_text())
        self._groups.append(group)
        return group

    def close(self) -> None:
        """Every process back in the root groups; the run's groups removed."""
        for group in reversed(self._groups):
            controller_root = self.root / group.relative_to(self.root).parts[0]
            with contextlib.suppress(OSError):
                _move(controller_root, [int(p) for p in (group / "cgroup.procs").read_text().split()])
            with contextlib.suppress(OSError):
                group.rmdir()
            with contextlib.suppress(OSError):
                group.parent.rmdir()  # the run's group, once its last component is gone
        self._groups.clear()

    def __enter__(self) -> CpuBudgets:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _with_descendants(pids: Sequence[int]) -> list[int]:
    found: list[int] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            found += [proc.pid, *(c.pid for c in proc.children(recursive=True))]
    return list(dict.fromkeys(found))


def _move(group: Path, pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            try:
                (group / "cgroup.procs").write_text(str(pid))
            except OSError as exc:
                if exc.errno != 3:  # ESRCH: the process ended meanwhile
                    raise
