"""Capacity at an SLO by bisection: the highest offered rate a configuration holds.

A sweep over a fixed list of rates spends most of its runs far from the answer. A search
plan instead probes the low and high ends of a range, then halves the bracket between
the highest rate that held and the lowest that did not until it is no wider than the
stated resolution; each probe runs every trial. A probe *holds* when no trial was
overloaded (RESULTS.md) and the one-sided 95% upper bound of its trials' p99 is within
the budget, *fails* when a trial was overloaded or the one-sided 95% lower bound is above
it, and is *undecided* in between: then it runs one more trial, up to
`max_trials`, and a step still undecided there counts as not holding (the search never
reports a capacity its trials could not show). One lucky or unlucky trial no longer
decides a step, which is what made a sweep and a search disagree by 1.6x. The bounds are
one-sided because the question is ("is p99 within the budget?"): a two-sided 95% interval
on two trials (Student's t with one degree of freedom, 12.7 standard errors) left steps
whose two p99s were 0.6 and 1.5 ms against a 50 ms budget undecided, so a 2-trial sweep
read fire-and-forget's capacity as 500/s where every trial held 8,000.

Near a knee one trial's p99 can be 20 ms and the next 90: two lucky trials made a step hold
where four would not (durable's search reported 8,000/s while the sweep's four trials at
7,000 could not show it holds). So the answer is confirmed (CONFIRM_RULE): the rate the
search would report gets trials up to `max_trials`, and when they no longer show it holds,
the bisection goes on between the highest rate below it that held and it.

The algorithm is a pure function over a `probe` callable, so it is tested without a
service; the runner's probe executes cells and reads their summaries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import LabError
from experiments.rundir import RunDir
from experiments.stats import estimate

HOLD_RULE = (
    "A step holds when none of its trials was overloaded and the one-sided 95% upper bound of "
    "its trials' p99 (Student's t on log values, i.e. the top of the two-sided 90% interval; "
    "one trial: its p99) is at or below the budget; it fails when a trial was overloaded, left "
    "no result, or the one-sided 95% lower bound is above the budget; while the bounds "
    "straddle the budget a trial is added, up to max_trials, and a step still "
    "undecided then counts as not holding. A p99 below a tenth of the budget is read as a "
    "tenth of the budget: how far inside it a trial was cannot change the verdict."
)
CONFIRM_RULE = (
    "The reported capacity held on max_trials trials: a rate that held on fewer gets trials "
    "up to max_trials before it is reported, and when they no longer show it holds the "
    "capacity is sought below it. The answer is the one figure a reader takes away, so it "
    "gets the most evidence; two trials near the knee can both be lucky."
)
HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided"
# Each end of a two-sided 90% interval is a one-sided 95% bound.
ONE_SIDED_95 = 0.90
# On log values two trials far inside the budget but 5x apart (a capped test server at
# 180/s: p99 2.45 and 0.48 ms) reach an upper bound of 187 ms against a 150 ms budget, and
# a rate that held everywhere read undecided. Below this share of the budget a p99 is
# raised to it: the spread left is the one that bears on the verdict.
P99_FLOOR_SHARE = 0.1


class SearchError(LabError):
    """A search block that cannot be run (bad range, resolution or parameter)."""


@dataclass(frozen=True)
class Search:
    param: str
    low: float
    high: float
    resolution: float
    max_trials: int = 0  # 0: twice the plan's trials (trials added to an undecided step)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Search:
        unknown = set(data) - {"param", "low", "high", "resolution", "max_trials"}
        if unknown:
            raise SearchError(f"search: unknown keys {sorted(unknown)}")
        try:
            search = cls(str(data.get("param", "rate")), float(data["low"]), float(data["high"]),
                         float(data["resolution"]), int(data.get("max_trials", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise SearchError(f"search needs numeric low, high and resolution ({exc})") from None
        if search.max_trials < 0:
            raise SearchError("search.max_trials must be 0 (twice the trials) or more")
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
    verdict: str = ""  # holds | fails | undecided (counted as not holding)
    p99_interval_ms: list[float | None] = field(default_factory=list)  # one-sided 95% bounds, [low, high]
    confirmation: bool = False  # trials added to the answer's rate (CONFIRM_RULE); runs are all its trials


@dataclass
class Outcome:
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None
    bracket: list[float | None] = field(default_factory=list)
    note: str = ""


# probe(value, first_trial, count): run trials first_trial .. first_trial + count - 1 of one
# step; returns their run ids and `results` sections (None where a run left none).
Probe = Callable[[float, int, int], tuple[list[str], list[dict[str, Any] | None]]]


def verdict(results: Sequence[dict[str, Any] | None], budget_ms: float
            ) -> tuple[str, float | None, float | None]:
    """HOLD_RULE over the `results` sections of one step's trials: the verdict and the
    one-sided 95% bounds of their p99 (None, None when there is none)."""
    if not results or any(r is None or r.get("overloaded") for r in results):
        return FAILS, None, None
    p99 = [(r.get("latency_ms") or {}).get("p99") for r in results]  # type: ignore[union-attr]
    if any(v is None or v <= 0 for v in p99):
        return FAILS, None, None
    floor = budget_ms * P99_FLOOR_SHARE
    figure = estimate([max(v, floor) for v in p99], confidence=ONE_SIDED_95)  # type: ignore[arg-type]
    if figure.low is None or figure.high is None:
        return (HOLDS if figure.median <= budget_ms else FAILS), None, None
    if figure.high <= budget_ms:
        return HOLDS, figure.low, figure.high
    if figure.low > budget_ms:
        return FAILS, figure.low, figure.high
    return UNDECIDED, figure.low, figure.high


def holds(results: Sequence[dict[str, Any] | None], budget_ms: float) -> bool:
    return verdict(results, budget_ms)[0] == HOLDS


Results = list[dict[str, Any] | None]
# Runs trial number `n` of a step: its run ids and `results` sections.
MoreTrials = Callable[[int], tuple[list[str], Results]]


def most_trials(trials: int, max_trials: int) -> int:
    """The most trials a step gets while undecided: `max_trials`, or (0) twice `trials`."""
    return max(trials, max_trials or 2 * trials)


def settle(runs: list[str], results: Results, budget_ms: float, most: int, more: MoreTrials
           ) -> tuple[list[str], Results, str, float | None, float | None]:
    """HOLD_RULE's verdict on a step, adding one trial at a time (`more`) while it is
    undecided, up to `most`: the step's runs and results, the verdict and the bounds."""
    decided, low, high = verdict(results, budget_ms)
    while decided == UNDECIDED and len(results) < most:
        more_runs, more_results = more(len(results) + 1)
        runs, results = runs + more_runs, results + more_results
        decided, low, high = verdict(results, budget_ms)
    return runs, results, decided, low, high


def bisect(search: Search, budget_ms: float, probe: Probe, trials: int = 1) -> Outcome:
    """Run the search with `trials` per step (more while a step is undecided, up to
    `search.max_trials`), then confirm the answer (CONFIRM_RULE): the rate it reports
    held on the most trials a step may have, and the search goes on below when it does not."""
    outcome = Outcome()
    most = most_trials(trials, search.max_trials)
    seen: dict[float, tuple[list[str], Results]] = {}

    def record(value: float, runs: list[str], results: Results, decided: str,
               low: float | None, high: float | None, confirmation: bool = False) -> bool:
        seen[value] = (runs, results)
        outcome.steps.append(Step(
            step=len(outcome.steps) + 1,
            value=value,
            runs=runs,
            p99_ms=[None if r is None else (r.get("latency_ms") or {}).get("p99") for r in results],
            overloaded=[None if r is None else r.get("overloaded") for r in results],
            holds=decided == HOLDS,
            verdict=decided,
            p99_interval_ms=[low, high],
            confirmation=confirmation,
        ))
        return decided == HOLDS

    def step(value: float) -> bool:
        runs, results = probe(value, 1, trials)
        runs, results, decided, low, high = settle(
            runs, results, budget_ms, most, lambda trial: probe(value, trial, 1))
        return record(value, runs, results, decided, low, high)

    def confirmed(value: float) -> bool:
        runs, results = seen[value]
        if len(results) >= most:
            return True  # it held on the most trials already
        more_runs, more_results = probe(value, len(results) + 1, most - len(results))
        runs, results = runs + more_runs, results + more_results
        decided, low, high = verdict(results, budget_ms)
        return record(value, runs, results, decided, low, high, confirmation=True)

    if not step(search.low):
        outcome.bracket = [None, search.low]
        outcome.note = f"did not hold even at the lowest rate searched ({search.low:g}/s)"
        return outcome
    held = [search.low]  # the rates that held, ascending: where to go back to
    high: float | None = search.high
    if step(search.high):
        held.append(search.high)
        high = None
    while True:
        low = held[-1]
        while high is not None and high - low > search.resolution:
            # Midpoints on the resolution grid above `low`, so the bracket shrinks every step.
            half = math.floor((high - low) / 2 / search.resolution) * search.resolution
            middle = low + max(half, search.resolution)
            if middle >= high:
                break
            if step(middle):
                held.append(middle)
                low = middle
            else:
                high = middle
        if confirmed(low):
            break
        high = held.pop()
        if not held:
            outcome.bracket = [None, search.low]
            outcome.note = (f"did not hold even at the lowest rate searched ({search.low:g}/s) "
                            f"on {most} trials")
            return outcome
    outcome.capacity = low
    outcome.bracket = [low, high]
    undecided = sum(1 for s in outcome.steps if s.verdict == UNDECIDED)
    dropped = sum(1 for s in outcome.steps if s.confirmation and not s.holds)
    details = (f"{len(outcome.steps)} steps, confirmed on {most} trials"
               + (f", {dropped} answer{'s' if dropped > 1 else ''} not confirmed" if dropped else "")
               + (f", {undecided} undecided after {most} trials, counted as not holding"
                  if undecided else ""))
    if high is None:
        outcome.note = f"held at the highest rate searched: the capacity is at least {low:g}/s ({details})"
    else:
        outcome.note = (f"holds at {low:g}/s, not at {high:g}/s "
                        f"(resolution {search.resolution:g}/s, {details})")
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
        "confirm_rule": CONFIRM_RULE,
        "configs": {config: asdict(outcome) for config, outcome in outcomes.items()},
    }, indent=2) + "\n")
