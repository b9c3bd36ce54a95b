"""Experiment plans as data: a YAML matrix over run parameters, expanded into cells.

```yaml
name: seed
description: the article's experiment
trials: 3
base: {endpoint: seed, connections: 50, duration_s: 60}
matrix: {mode: [durable, fire-and-forget]}
```

Trials are the outer loop, so slow drift of a shared machine spreads over every
configuration instead of landing on the last one.

`include` adds combinations the matrix does not cross, each a mapping of parameters
over `base` whose list values are crossed like a matrix of its own (a setting that
exists in one mode only, or fault runs beside a rate sweep):

```yaml
include:
  - {mode: fire-and-forget, delivery_reports: errors}
  - {mode: [durable, fire-and-forget], fault: [service-kill, broker-kill], load_model: closed}
```

`kind: search` plans do not list rates: per matrix combination the runner bisects the
open loop's rate for the capacity at `slo_p99_ms` (experiments/search.py), and builds
each probe's cells as it goes. A matrix plan that sweeps `rate` in the open loop with
`slo_p99_ms` gets the same treatment per rate: after its cells, the lowest rate of each
sweep line that its trials cannot decide gets more, up to `max_trials`
(runner.top_up_undecided).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.params import ParamsError, RunParams
from experiments.search import Search, SearchError, most_trials

PLANS_DIR = Path(__file__).with_name("plans")
_RESERVED = {"trial", "plan", "cell", "output_dir"}
_UNSET = object()


@dataclass(frozen=True)
class Cell:
    id: str
    config: str  # the id without the trial: cells differing only by trial share it
    params: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    trials: int
    base: dict[str, Any]
    matrix: dict[str, list[Any]]
    path: Path | None = None
    ceiling: bool = True  # measure the load generator's own ceiling once before the cells
    kind: str = "matrix"  # matrix: every combination; search: bisect the rate per combination
    search: Search | None = None
    slo_p99_ms: float | None = None  # the latency budget of "capacity at an SLO"
    include: tuple[dict[str, Any], ...] = ()  # combinations beyond the matrix's product
    # How many times a run is run again when other load disturbed it (rundir.DISTURBED_RULE).
    rerun_disturbed: int = 2
    # Seconds of produce load on the local cluster before the plan's first cell (kafka.warm_up).
    broker_warmup_s: float = 10.0
    # A rate sweep with slo_p99_ms: the most trials a rate gets while its trials cannot decide
    # the capacity search's hold rule (0: twice `trials`; a search plan sets it in `search`).
    max_trials: int = 0

    def sweeps_capacity(self) -> bool:
        """A matrix plan that sweeps the open loop's rate against an SLO (its undecided
        rates get trials, as a search's steps do: runner.top_up_undecided)."""
        return (self.kind == "matrix" and self.slo_p99_ms is not None and "rate" in self.matrix
                and self.base.get("load_model") == "open")

    def most_trials(self) -> int:
        return most_trials(self.trials, self.max_trials)

    def combinations(self) -> list[tuple[str, dict[str, Any]]]:
        """(configuration slug, matrix values) of every combination, in plan order."""
        keys = list(self.matrix)
        varying = [k for k in keys if len(self.matrix[k]) > 1]
        combos = list(itertools.product(*(self.matrix[k] for k in keys))) or [()]
        out = []
        for combo in combos:
            values = dict(zip(keys, combo, strict=True))
            out.append((slug({k: values[k] for k in varying}) or "base", values))
        for extra in self.include:
            crossed = [k for k, v in extra.items() if isinstance(v, list)]
            fixed = {k: v for k, v in extra.items()
                     if not isinstance(v, list) and self.base.get(k, _UNSET) != v}
            for combo in itertools.product(*(extra[k] for k in crossed)):
                values = {**extra, **dict(zip(crossed, combo, strict=True))}
                # Named by what it crosses; by what it overrides too where it crosses nothing
                # or that alone would repeat a name already taken.
                name = slug({k: values[k] for k in crossed if len(extra[k]) > 1})
                if not name or name in {n for n, v in out if v != values}:
                    name = slug({**{k: values[k] for k in crossed if len(extra[k]) > 1},
                                 **fixed}) or "base"
                out.append((name, values))
        seen: dict[str, dict[str, Any]] = {}
        for config, values in out:
            if seen.setdefault(config, values) != values:
                raise ParamsError(f"two combinations are both named {config!r}: make one of them "
                                  "differ in a crossed or base-overriding parameter")
        return out

    def cells(self, results_dir: Path) -> list[Cell]:
        """Every cell of a matrix plan; a search plan's cells exist only as it runs."""
        if self.kind == "search":
            return []
        cells = []
        for trial in range(1, self.trials + 1):
            for config, values in self.combinations():
                cells.append(self.cell(results_dir, len(cells) + 1, config, values, trial))
        return cells

    def cell(self, results_dir: Path, index: int, config: str, values: dict[str, Any],
             trial: int) -> Cell:
        cell_id = f"{index:03d}-{config}-t{trial}"
        params = {
            **self.base,
            **values,
            "trial": trial,
            "plan": self.name,
            "cell": cell_id,
            "output_dir": str(results_dir / self.name / cell_id),
        }
        RunParams.from_dict(params)  # refuse a bad plan before anything runs
        return Cell(id=cell_id, config=config, params=params)

    def describe(self, cells: list[Cell]) -> dict[str, Any]:
        """plan.json: what the report needs to know about the plan (RESULTS.md)."""
        return {
            "name": self.name,
            "description": self.description,
            "trials": self.trials,
            "kind": self.kind,
            "slo_p99_ms": self.slo_p99_ms,
            "rerun_disturbed": self.rerun_disturbed,
            "broker_warmup_s": self.broker_warmup_s,
            "max_trials": self.most_trials() if self.sweeps_capacity() else None,
            "search": None if self.search is None else vars(self.search),
            "base": self.base,
            "matrix": self.matrix,
            "include": list(self.include),
            "source": str(self.path),
            "cells": [c.id for c in cells],
        }


def slug(values: dict[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, dict):
            text = ",".join(f"{k}={v}" for k, v in value.items()) or "defaults"
        else:
            text = f"{key}={value}"
        parts.append(text)
    return re.sub(r"[^A-Za-z0-9.=,_+-]+", "-", "_".join(parts))[:80]


def resolve_plan_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.exists():
        return path
    named = PLANS_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    available = sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))
    raise ParamsError(f"no plan {name_or_path!r}; available: {available}")


def load_plan(name_or_path: str | Path) -> Plan:
    path = resolve_plan_path(str(name_or_path))
    data = yaml.safe_load(path.read_text()) or {}
    known = {"name", "description", "trials", "base", "matrix", "include", "ceiling", "kind", "search",
             "slo_p99_ms", "rerun_disturbed", "broker_warmup_s", "max_trials"}
    unknown = set(data) - known
    if unknown:
        raise ParamsError(f"{path}: unknown plan keys {sorted(unknown)}")
    base = data.get("base") or {}
    matrix = data.get("matrix") or {}
    include = data.get("include") or []
    if not isinstance(include, list) or not all(isinstance(e, dict) and e for e in include):
        raise ParamsError(f"{path}: include must be a list of non-empty mappings of parameters")
    if any(isinstance(v, list) and not v for e in include for v in e.values()):
        raise ParamsError(f"{path}: a list in include must hold at least one value")
    clash = (set(base) | set(matrix) | {k for e in include for k in e}) & _RESERVED
    if clash:
        raise ParamsError(f"{path}: {sorted(clash)} are set by the runner, not by a plan")
    for key, values in matrix.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{path}: matrix.{key} must be a non-empty list")
    kind = str(data.get("kind", "matrix"))
    if kind not in ("matrix", "search"):
        raise ParamsError(f"{path}: kind {kind!r}: expected matrix or search")
    slo = data.get("slo_p99_ms")
    if slo is not None and (not isinstance(slo, int | float) or slo <= 0):
        raise ParamsError(f"{path}: slo_p99_ms must be a positive number of milliseconds")
    rerun = data.get("rerun_disturbed", 2)
    if not isinstance(rerun, int) or isinstance(rerun, bool) or rerun < 0:
        raise ParamsError(f"{path}: rerun_disturbed must be a whole number >= 0")
    warmup = data.get("broker_warmup_s", 10.0)
    if not isinstance(warmup, int | float) or isinstance(warmup, bool) or warmup < 0:
        raise ParamsError(f"{path}: broker_warmup_s must be a number of seconds >= 0")
    max_trials = data.get("max_trials", 0)
    if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 0:
        raise ParamsError(f"{path}: max_trials must be a whole number >= 0")
    if "max_trials" in data and kind == "search":
        raise ParamsError(f"{path}: a search plan sets max_trials in its search block")
    search = None
    if kind == "search":
        try:
            search = Search.from_dict(data.get("search") or {})
        except SearchError as exc:
            raise ParamsError(f"{path}: {exc}") from None
        if slo is None:
            raise ParamsError(f"{path}: a search plan needs slo_p99_ms, the budget it searches for")
        if search.param in matrix or search.param in base:
            raise ParamsError(f"{path}: {search.param} is searched; do not also set it in base or matrix")
        if base.get("load_model", "closed") != "open":
            raise ParamsError(f"{path}: a rate search needs base.load_model: open")
    elif "search" in data:
        raise ParamsError(f"{path}: a search block needs kind: search")
    return Plan(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description", "")).strip(),
        trials=int(data.get("trials", 1)),
        base=base,
        matrix=matrix,
        include=tuple(include),
        path=path,
        ceiling=bool(data.get("ceiling", True)),
        kind=kind,
        search=search,
        slo_p99_ms=float(slo) if slo is not None else None,
        rerun_disturbed=rerun,
        broker_warmup_s=float(warmup),
        max_trials=max_trials,
    )
