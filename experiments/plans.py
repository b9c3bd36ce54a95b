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
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments.params import ParamsError, RunParams

PLANS_DIR = Path(__file__).with_name("plans")
_RESERVED = {"trial", "plan", "cell", "output_dir"}


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

    def cells(self, results_dir: Path) -> list[Cell]:
        keys = list(self.matrix)
        combos = list(itertools.product(*(self.matrix[k] for k in keys))) or [()]
        varying = [k for k in keys if len(self.matrix[k]) > 1]
        cells = []
        index = 0
        for trial in range(1, self.trials + 1):
            for combo in combos:
                values = dict(zip(keys, combo, strict=True))
                config = slug({k: values[k] for k in varying}) or "base"
                index += 1
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
                cells.append(Cell(id=cell_id, config=config, params=params))
        return cells


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
    unknown = set(data) - {"name", "description", "trials", "base", "matrix", "ceiling"}
    if unknown:
        raise ParamsError(f"{path}: unknown plan keys {sorted(unknown)}")
    base = data.get("base") or {}
    matrix = data.get("matrix") or {}
    clash = (set(base) | set(matrix)) & _RESERVED
    if clash:
        raise ParamsError(f"{path}: {sorted(clash)} are set by the runner, not by a plan")
    for key, values in matrix.items():
        if not isinstance(values, list) or not values:
            raise ParamsError(f"{path}: matrix.{key} must be a non-empty list")
    return Plan(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description", "")).strip(),
        trials=int(data.get("trials", 1)),
        base=base,
        matrix=matrix,
        path=path,
        ceiling=bool(data.get("ceiling", True)),
    )
