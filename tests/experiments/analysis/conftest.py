"""Fixtures of the analysis tests: the committed fixture plans (written by make_fixtures.py),
and plans cut from them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import Runs, load_runs

DATA = Path(__file__).resolve().parent / "data"
FIXTURE_PLAN = DATA / "fixture"
FAILED_CELL = "007-mode=fire-and-forget_linger.ms=5-t1"
NOT_RUN_CELL = "008-mode=fire-and-forget_linger.ms=5-t2"
RUN_NAMES = (
    "001-mode=durable_linger.ms=0-t1",
    "004-mode=durable_linger.ms=0-t2",
    "002-mode=durable_linger.ms=5-t1",
    "005-mode=durable_linger.ms=5-t2",
    "003-mode=fire-and-forget_defaults-t1",
    "006-mode=fire-and-forget_defaults-t2",
)


@pytest.fixture(scope="session")
def plan_dir() -> Path:
    return FIXTURE_PLAN


@pytest.fixture(scope="session")
def runs(plan_dir: Path) -> Runs:
    return load_runs(plan_dir)


@pytest.fixture(scope="session")
def summaries_json() -> dict[str, dict[str, Any]]:
    """The fixture's summary.json files, read directly: the ground truth of every test."""
    return {name: json.loads((FIXTURE_PLAN / name / "summary.json").read_text()) for name in RUN_NAMES}


MakePlan = Callable[[Iterable[str]], Path]


@pytest.fixture
def make_plan(tmp_path: Path) -> MakePlan:
    """Copy some run directories of the fixture plan into a fresh plan directory."""

    def make(names: Iterable[str]) -> Path:
        target = tmp_path / "plan"
        target.mkdir(exist_ok=True)
        for name in names:
            shutil.copytree(FIXTURE_PLAN / name, target / name)
        return target

    return make


SATURATION_PLAN = DATA / "saturation"
SEARCH_PLAN = DATA / "search"
FAULTS_PLAN = DATA / "faults"
# The overloaded run: durable against a service capped at 1,000 answers/s, offered 3,000/s.
OVERLOADED_RUN = "004-mode=durable_rate=3000-t1"


@pytest.fixture(scope="session")
def saturation_runs() -> Runs:
    return load_runs(SATURATION_PLAN)


@pytest.fixture(scope="session")
def search_runs() -> Runs:
    return load_runs(SEARCH_PLAN)


@pytest.fixture(scope="session")
def fault_runs() -> Runs:
    return load_runs(FAULTS_PLAN)


def read_summary(plan: Path, run: str) -> dict[str, Any]:
    return json.loads((plan / run / "summary.json").read_text())


@pytest.fixture
def overloaded_only(tmp_path: Path) -> Runs:
    """A plan of the one overloaded run: offered 3,000/s to a service capped at 1,000/s."""
    shutil.copytree(SATURATION_PLAN / OVERLOADED_RUN, tmp_path / OVERLOADED_RUN)
    return load_runs(tmp_path)


def edit_summary(run_dir: Path, **changes: Any) -> None:
    """Rewrite fields of a copied summary.json: `results__events_per_s=...` style keys."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = summary
        for key in parents:
            target = target[key]
        target[leaf] = value
    path.write_text(json.dumps(summary))
