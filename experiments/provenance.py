"""Where a result came from: Python, package and Kafka versions, the machine, the git commit.

Every summary.json carries this envelope so a number can be traced to what produced it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import psutil

PROJECT = "kafka-ingestion-lab"
REPO_ROOT = Path(__file__).resolve().parents[1]
# Versions that matter to the numbers but are not declared dependencies.
EXTRA_PACKAGES = ("starlette", "h11")


def collect_provenance(kafka_version: str | None = None) -> dict[str, Any]:
    """The RESULTS.md provenance envelope.

    `kafka_version` is the version of the broker the run used, when the caller knows it;
    otherwise it stays null and `kafka_version_pinned` says which release the project's
    local broker would be, which is not proof of what an external cluster runs.
    """
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "packages": package_versions(),
        "kafka_version": kafka_version,
        "kafka_version_pinned": _pinned_kafka_version(),
        "machine": machine_info(),
        "git": git_info(REPO_ROOT),
        "tool_version": tool_version(),
    }


def _project(root: Path) -> dict[str, Any]:
    """The `[project]` table of the repository's pyproject.toml, or {} outside a checkout."""
    pyproject = root / "pyproject.toml"
    return dict(tomllib.loads(pyproject.read_text()).get("project", {})) if pyproject.is_file() else {}


def declared_dependencies(root: Path = REPO_ROOT) -> list[str]:
    """Distribution names the project depends on (pyproject.toml first, else installed metadata)."""
    specs: list[str] = []
    project = _project(root)
    if project:
        specs = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            specs.extend(extra)
    else:
        try:
            specs = list(importlib.metadata.requires(PROJECT) or [])
        except importlib.metadata.PackageNotFoundError:
            specs = []
    names = [re.split(r"[\s;<>=!~\[]", spec, maxsplit=1)[0] for spec in specs]
    return sorted({name for name in names if name})


def package_versions(root: Path = REPO_ROOT) -> dict[str, str | None]:
    """Installed version of each dependency (None when absent), plus librdkafka's."""
    versions: dict[str, str | None] = {}
    for name in [*declared_dependencies(root), *EXTRA_PACKAGES]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        versions["librdkafka"] = None
    return dict(sorted(versions.items()))


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    usable = usable_cores()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable,
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_info(root: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit and dirty flag of the repository at `root`; nulls when git or the repo is missing."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    # Untracked files count: a new, uncommitted module changes what a run executes.
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def tool_version(root: Path = REPO_ROOT) -> str | None:
    version = _project(root).get("version")
    if version:
        return str(version)
    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pinned_kafka_version() -> str | None:
    try:
        from experiments.kafka import kafka_version

        return kafka_version()
    except Exception:  # provenance must never fail a run over an optional detail
        return None
