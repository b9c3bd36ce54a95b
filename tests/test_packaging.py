"""pyproject.toml is the one list of Python dependencies; environment.yml must not drift."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

USER_NAMED = {
    "jupyterlab",
    "confluent-kafka",
    "aiohttp",
    "fastapi",
    "uvicorn",
    "papermill",
    "pandas",
    "seaborn",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def test_pyproject_lists_every_package_the_user_named(repo_root: Path) -> None:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    assert names >= USER_NAMED


def test_environment_yml_installs_the_project_not_a_second_list(repo_root: Path) -> None:
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    python_deps = {_name(r) for r in pyproject["dependencies"]} | {
        _name(r) for r in pyproject["optional-dependencies"]["dev"]
    }
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_names = {_name(d) for d in conda}
    # Python packages come from pyproject through pip, never pinned a second time here.
    assert not (conda_names & python_deps), conda_names & python_deps
    assert {"python", "openjdk", "maven", "pip"} <= conda_names
    assert pip == ["-e .[dev]"]
    python = next(d for d in conda if _name(d) == "python")
    minimum = pyproject["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[-1].split("."))) >= tuple(map(int, minimum.split(".")))
    java = next(d for d in conda if _name(d) == "openjdk")
    assert int(java.split("=")[-1]) >= 17


# (`python -m service` runs in the service tests; its __main__ starts the server on import.)
@pytest.mark.parametrize("module", ["experiments", "experiments.kafka", "experiments.load",
                                    "experiments.bench", "experiments.native"])
def test_every_command_line_entry_point_imports(module: str) -> None:
    """`python -m X` for each tool the README names: a benchmark no test runs end to end
    must still import (a rename once broke `make bench` and no test saw it)."""
    importlib.import_module(f"{module}.__main__")
