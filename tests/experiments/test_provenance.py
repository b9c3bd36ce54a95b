"""The provenance envelope holds every key RESULTS.md lists, with real values."""

from __future__ import annotations

import os
import re
from pathlib import Path

import aiohttp

from experiments.provenance import collect_provenance, declared_dependencies, git_info


def test_envelope_has_the_contract_keys() -> None:
    prov = collect_provenance(kafka_version="4.1.2")
    assert {"python", "packages", "kafka_version", "machine", "git", "tool_version"} <= set(prov)
    assert prov["kafka_version"] == "4.1.2"
    assert prov["packages"]["aiohttp"] == aiohttp.__version__
    assert prov["packages"]["librdkafka"]
    machine = prov["machine"]
    assert {"cpu_model", "cpu_count", "memory_gb", "platform", "hostname"} <= set(machine)
    assert machine["cpu_count"] == os.cpu_count() and machine["memory_gb"] > 0
    assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"])
    assert isinstance(prov["git"]["dirty"], bool)
    assert prov["tool_version"]


def test_dependencies_come_from_the_project_file() -> None:
    names = declared_dependencies()
    assert {"aiohttp", "hdrhistogram", "confluent-kafka", "psutil"} <= set(names)


def test_unknown_kafka_version_stays_null() -> None:
    prov = collect_provenance()
    assert prov["kafka_version"] is None
    assert prov["kafka_version_pinned"]


def test_no_repository_gives_nulls(tmp_path: Path) -> None:
    assert git_info(tmp_path) == {"commit": None, "dirty": None}
