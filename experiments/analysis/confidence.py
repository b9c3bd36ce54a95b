"""Every figure and comparison of the report with its confidence (experiments/stats.py).

Shared by the sections: a configuration's trials of a figure, its 95% interval, and the
comparison of two configurations as a ratio with its interval and verdict. Figures are
columns of `runs.summaries` (one row per run): `events_per_s`, `events_per_core` (events/s
over the service's mean cores) and `p99_ms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from experiments.analysis._format import fmt_rate
from experiments.analysis.runs import Runs
from experiments.stats import METHOD, THRESHOLD, Comparison, Estimate, compare, estimate

# figure -> (column, the word in sentences, higher is better)
FIGURES: dict[str, tuple[str, str, bool]] = {
    "events/s": ("events_per_s", "events/s", True),
    "events per service core": ("events_per_core", "events per service core", True),
    "p99": ("p99_ms", "p99", False),
}


def method() -> str:
    return METHOD.format(threshold=THRESHOLD)


def with_events_per_core(summaries: pd.DataFrame) -> pd.DataFrame:
    """`events_per_core`: events/s over the service's mean CPU in cores, per run: this box's
    speed moves events/s more than it moves the cost of an event (README, "Spread")."""
    cores = summaries["cpu_service"] / 100 if "cpu_service" in summaries else math.nan
    return summaries.assign(events_per_core=summaries["events_per_s"] / cores)


def trials(runs: Runs, configuration: str, figure: str) -> list[float]:
    """The positive, finite values of `figure` over the configuration's trials."""
    column = FIGURES[figure][0]
    rows = with_events_per_core(runs.summaries)
    values = pd.to_numeric(rows.loc[rows["configuration"] == configuration, column], errors="coerce")
    return [float(v) for v in values if pd.notna(v) and math.isfinite(v) and v > 0]


def interval(runs: Runs, configuration: str, figure: str) -> Estimate | None:
    values = trials(runs, configuration, figure)
    return estimate(values) if values else None


def comparison(runs: Runs, base: str, other: str, figure: str) -> Comparison | None:
    """`other` against `base` on `figure`, or None when either has no trial of it."""
    a, b = trials(runs, base, figure), trials(runs, other, figure)
    if not a or not b:
        return None
    return compare(a, b, FIGURES[figure][1], higher_is_better=FIGURES[figure][2])


def fmt_interval(e: Estimate | None, fmt: Callable[[float], str] | None = None) -> str:
    """'4,629 (95% CI 4,312-4,969)', or the one value without an interval."""
    if e is None:
        return "-"
    show = fmt_rate if fmt is None else fmt
    if e.low is None or e.high is None:
        return f"{show(e.mean)} (one trial)"
    return f"{show(e.mean)} (95% CI {show(e.low)}-{show(e.high)})"


def with_verdict(c: Comparison) -> str:
    """'events/s +36% (95% CI +4% to +78%), better'."""
    word = verdict_word(c)
    return f"{c.metric} {c.change()}" + (f", {word}" if word else "")


def verdict_cell(c: Comparison) -> str:
    """The verdict for a table's cell: the word, or that one trial cannot tell."""
    return verdict_word(c) or "cannot tell: one trial"


def verdict_word(c: Comparison) -> str:
    """The verdict in a few words (empty without an interval: `change()` says so)."""
    if c.verdict in ("better", "worse"):
        return c.verdict
    if c.verdict == "small":
        return f"changed less than {c.threshold:.0%}"
    if c.verdict == "same":
        return f"no difference of {c.threshold:.0%} or more"
    if c.low is None:
        return ""  # change() already says there is no interval
    if c.trials_needed is None:
        return "no difference detectable with these trials"
    return (f"no difference detectable with these trials (~{c.trials_needed} would detect "
            f"{c.threshold:.0%})")
