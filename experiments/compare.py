"""Comparisons with confidence: configurations of one plan, or one plan's runs against another's.

The trials of a configuration are the runs that share every parameter but the bookkeeping
ones (trial, seed, where files go, which broker and topic: `RunParams.bookkeeping`). Each
comparison is a ratio of geometric means with an interval and a verdict
(experiments/stats.py; the m intervals of one table at 1 - 5%/m each, so that they hold
together with 95% confidence), on three figures per run:

- `events/s`: what completed in the measured window;
- `events per service core`: events/s over the service's mean CPU in cores, which this
  2-core box disturbs less than events/s (its own speed varies: README, "Spread");
- `p99`: the 99th latency percentile in ms (lower is better).

`python -m experiments compare A B` prints, per configuration both plan directories
hold, B against A; `experiments report --baseline DIR` adds the same table to a report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.params import RunParams, renamed
from experiments.rundir import PlanDir
from experiments.stats import (
    CONFIDENCE,
    FAMILY_METHOD,
    THRESHOLD,
    Comparison,
    compare,
    family_confidence,
    level,
)

# The figures every comparison is made on: name -> (reader of a summary, higher is better).
Reader = Callable[[dict[str, Any]], float | None]


def _events_per_s(summary: dict[str, Any]) -> float | None:
    value = (summary.get("results") or {}).get("events_per_s")
    return float(value) if value else None


def _events_per_service_core(summary: dict[str, Any]) -> float | None:
    results = summary.get("results") or {}
    events, cpu = results.get("events_per_s"), (results.get("cpu_percent") or {}).get("service")
    return float(events) / (float(cpu) / 100) if events and cpu else None


def _p99(summary: dict[str, Any]) -> float | None:
    value = ((summary.get("results") or {}).get("latency_ms") or {}).get("p99")
    return float(value) if value else None


FIGURES: dict[str, tuple[Reader, bool]] = {
    "events/s": (_events_per_s, True),
    "events per service core": (_events_per_service_core, True),
    "p99": (_p99, False),
}
_NOT_A_FACTOR = RunParams.bookkeeping() | {"plan", "cell", "output_dir"}


@dataclass(frozen=True)
class Trials:
    """The finished runs of one configuration."""

    config: str  # its label: the parameters that define it, as `key=value, ...`
    params: dict[str, Any]
    runs: tuple[str, ...]
    summaries: tuple[dict[str, Any], ...]

    def values(self, figure: str) -> list[float]:
        read = FIGURES[figure][0]
        return [v for v in (read(s) for s in self.summaries) if v is not None and v > 0]


def configuration(params: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The parameters that define a configuration (not which trial, where or which broker,
    nor the `ignore`d ones)."""
    left_out = _NOT_A_FACTOR | set(ignore)
    return {k: v for k, v in renamed(dict(params)).items() if k not in left_out}


def _key(params: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    return json.dumps(configuration(params, ignore), sort_keys=True, default=str)


def finished_runs(plan_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(run id, summary) of every finished run of a plan directory, in name order."""
    found = []
    for run_dir in PlanDir(plan_dir).runs():
        summary, _why = run_dir.outcome()
        if summary is not None:
            found.append((run_dir.name, dict(summary)))
    return found


def group_trials(runs: Iterable[tuple[str, dict[str, Any]]],
                 ignore: Iterable[str] = ()) -> dict[str, Trials]:
    """Runs grouped into configurations, keyed by their defining parameters (but `ignore`)."""
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    ignore = tuple(ignore)
    for run_id, summary in runs:
        grouped.setdefault(_key(summary.get("params") or {}, ignore), []).append((run_id, summary))
    labels = _labels({key: configuration(group[0][1].get("params") or {})
                      for key, group in grouped.items()})
    return {key: Trials(labels[key], configuration(group[0][1].get("params") or {}),
                        tuple(r for r, _ in group), tuple(s for _, s in group))
            for key, group in grouped.items()}


def _labels(configs: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """`mode, key=value, ...` over the parameters that differ between the configurations."""
    names = sorted({k for c in configs.values() for k in c})
    varying = [k for k in names
               if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs.values()}) > 1]
    out = {}
    for key, config in configs.items():
        parts = [str(config.get("mode", ""))] if "mode" in config else []
        for name in varying:
            if name == "mode":
                continue
            value = config.get(name)
            if isinstance(value, dict):
                parts.append(",".join(f"{k}={v}" for k, v in value.items()) or f"{name}=defaults")
            else:
                parts.append(f"{name}={value}")
        out[key] = ", ".join(p for p in parts if p) or "default"
    return out


@dataclass(frozen=True)
class Row:
    """One figure of one configuration, B against A."""

    config: str
    figure: str
    a: Sequence[float]
    b: Sequence[float]
    comparison: Comparison

    def as_dict(self) -> dict[str, Any]:
        return {"configuration": self.config, "figure": self.figure, "a": list(self.a),
                "b": list(self.b), **self.comparison.as_dict()}


def compare_plans(a_dir: Path, b_dir: Path, threshold: float = THRESHOLD,
                  ignore: Iterable[str] = ()) -> list[Row]:
    """Every configuration both plan directories hold, each figure, B against A. Parameters
    in `ignore` do not tell configurations apart: the change between two values of one (10
    connections in A, 50 in B) is then what is compared."""
    a, b = group_trials(finished_runs(a_dir), ignore), group_trials(finished_runs(b_dir), ignore)
    found = []  # (configuration, figure, A's trials, B's trials, higher is better)
    for key in [k for k in a if k in b]:
        for figure, (_, higher) in FIGURES.items():
            va, vb = a[key].values(figure), b[key].values(figure)
            if va and vb:
                found.append((a[key].config, figure, va, vb, higher))
    comparisons = compare_family([(va, vb, figure, higher) for _, figure, va, vb, higher in found], threshold)
    return [Row(config, figure, va, vb, c)
            for (config, figure, va, vb, _), c in zip(found, comparisons, strict=True)]


def compare_family(pairs: Sequence[tuple[Sequence[float], Sequence[float], str, bool]],
                   threshold: float = THRESHOLD) -> list[Comparison]:
    """(A's trials, B's trials, figure, higher is better) each, compared as one table that
    asks whether anything changed: its intervals hold together with 95% (stats.py)."""
    each = family_confidence(len(pairs))
    return [compare(va, vb, figure, higher_is_better=higher, threshold=threshold, confidence=each)
            for va, vb, figure, higher in pairs]


def family_note(rows: Sequence[Row]) -> str:
    """How the table's intervals hold together, for its method line."""
    each = rows[0].comparison.confidence if rows else CONFIDENCE
    return FAMILY_METHOD.format(m=len(rows), level=level(each))


def unmatched(a_dir: Path, b_dir: Path, ignore: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Configurations only A holds, and only B."""
    a, b = group_trials(finished_runs(a_dir), ignore), group_trials(finished_runs(b_dir), ignore)
    return sorted(a[k].config for k in a if k not in b), sorted(b[k].config for k in b if k not in a)


def table(rows: Sequence[Row], a_name: str = "A", b_name: str = "B") -> str:
    """Markdown: per configuration and figure, the change of B against A and the verdict."""
    lines = [f"| configuration | figure | {a_name} (trials) | {b_name} (trials) | change, CI | verdict |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        c = row.comparison
        verdict = {"better": "better", "worse": "worse", "small": f"changed less than {c.threshold:.0%}",
                   "same": f"no difference of {c.threshold:.0%} or more"}.get(
            c.verdict, f"no difference detectable with these trials (~{c.trials_needed} would "
            f"detect {c.threshold:.0%})" if c.trials_needed else "no difference detectable")
        lines.append(f"| {row.config} | {row.figure} | {_brief(row.a)} | {_brief(row.b)} | "
                     f"{c.change()} | {verdict} |")
    return "\n".join(lines)


def _brief(values: Sequence[float]) -> str:
    ordered = sorted(values)
    middle = ordered[(len(ordered) - 1) // 2]
    return f"{middle:,.0f} ({len(values)})" if middle >= 100 else f"{middle:.1f} ({len(values)})"
