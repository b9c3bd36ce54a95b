"""Capacity at an SLO by bisection: the highest offered rate a configuration holds.

A sweep over a fixed list of rates spends most of its runs far from the answer. A search
plan instead probes the low and high ends of a range, then halves the bracket between
the highest rate that held and the lowest that did not until it is no wider than the
stated resolution; each probe runs every trial. A probe *holds* when no trial was
overloaded (RESULTS.md) and the median p99 of its trials is within the budget.

The algorithm is a pure function over a `probe` callable, so it is tested without a
service; the runner's probe executes cells and reads their summaries.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import LabError
from experiments.rundir import RunDir

HOLD_RULE = (
    "A step holds when none of its trials was overloaded and the median p99 of its trials "
    "is at or below the budget; a trial without a result counts as not holding."
)


class SearchError(LabError):
    """A search block that cannot be run (bad range, resolution or parameter)."""


@dataclass(frozen=True)
class Search:
    param: str
    low: float
    high: float
    resolution: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Search:
        unknown = set(data) - {"param", "low", "high", "resolution"}
        if unknown:
            raise SearchError(f"search: unknown keys {sorted(unknown)}")
        try:
            search = cls(str(data.get("param", "rate")), float(data["low"]), float(data["high"]),
                         float(data["resolution"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"search needs numeric low, high and resolution ({exc})") from None
        if search.param != "rate":
            raise SearchError(f"search.param {search.param!r}: only the open loop's rate is searched")
        if not 0 < search.low < search.high:
            raise SearchError(f"search range [{search.low}, {search.high}] must have 0 < low < high")
        if not 0 < search.resolution < search.high - search.low:
            raise SearchError(f"search.resolution {search.resolution} must be in (0, high - low)")
        return search


@dataclass
class Step:
    step: int
    value: float
    runs: list[str]
    p99_ms: list[float | None]
    overloaded: list[bool | None]
    holds: bool


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None
    bracket: list[float | None] = field(default_factory=list)
    note: str = ""


Probe = Callable[[float], tuple[list[str], list[dict[str, Any] | None]]]


def holds(results: Sequence[dict[str, Any] | None], budget_ms: float) -> bool:
    """HOLD_RULE over the `results` sections of one step's trials (None: no result)."""
    if not results or any(r is None or r.get("overloaded") for r in results):
        return False
    p99 = [(r.get("latency_ms") or {}).get("p99") for r in results]  # type: ignore[union-attr]
    if any(v is None for v in p99):
        return False
    return statistics.median(p99) <= budget_ms  # type: ignore[type-var]


def bisect(search: Search, budget_ms: float, probe: Probe) -> Outcome:
    """Run the search; `probe(value)` runs one step's trials and returns (runs, results)."""
    outcome = Outcome()

    def step(value: float) -> bool:
        runs, results = probe(value)
        ok = holds(results, budget_ms)
        outcome.steps.append(Step(
            step=len(outcome.steps) + 1,
            value=value,
            runs=runs,
            p99_ms=[None if r is None else (r.get("latency_ms") or {}).get("p99") for r in results],
            overloaded=[None if r is None else r.get("overloaded") for r in results],
            holds=ok,
        ))
        return ok

    if not step(search.low):
        outcome.bracket = [None, search.low]
        outcome.note = f"did not hold even at the lowest rate searched ({search.low:g}/s)"
        return outcome
    if step(search.high):
        outcome.capacity = search.high
        outcome.bracket = [search.high, None]
        outcome.note = f"held at the highest rate searched: the capacity is at least {search.high:g}/s"
        return outcome
    low, high = search.low, search.high
    while high - low > search.resolution:
        # Midpoints on the resolution grid above `low`, so the bracket shrinks every step.
        half = math.floor((high - low) / 2 / search.resolution) * search.resolution
        middle = low + max(half, search.resolution)
        if middle >= high:
            break
        if step(middle):
            low = middle
        else:
            high = middle
    outcome.capacity = low
    outcome.bracket = [low, high]
    outcome.note = (f"holds at {low:g}/s, not at {high:g}/s "
                    f"(resolution {search.resolution:g}/s, {len(outcome.steps)} steps)")
    return outcome


def step_results(run_dirs: Sequence[Path]) -> list[dict[str, Any] | None]:
    """The `results` section of each run, None where a run did not finish (RunDir.outcome)."""
    out: list[dict[str, Any] | None] = []
    for run_dir in run_dirs:
        summary, _why = RunDir(run_dir).outcome()
        out.append(None if summary is None else summary.get("results"))  # type: ignore[arg-type]
    return out


def write_search(path: Path, search: Search, budget_ms: float,
                 outcomes: dict[str, Outcome]) -> None:
    """search.json (RESULTS.md): every configuration's path and capacity."""
    path.write_text(json.dumps({
        "param": search.param,
        "low": search.low,
        "high": search.high,
        "resolution": search.resolution,
        "slo_p99_ms": budget_ms,
        "rule": HOLD_RULE,
        "configs": {config: asdict(outcome) for config, outcome in outcomes.items()},
    }, indent=2) + "\n")
