"""The report's header: provenance from the files, runs that disagree said, the cells
without a result listed."""

from __future__ import annotations

import json

from experiments.analysis import Runs, header, load_runs

from .conftest import RUN_NAMES, MakePlan


def test_header_facts(runs: Runs) -> None:
    facts = header.header_facts(runs)
    assert facts["Plan"].startswith("fixture (")
    assert facts["Runs"] == "6 runs in 3 configurations (2 trials each); 2 cells without a result"
    assert facts["Time"] == "2025-01-15 10:00:00 to 2025-01-15 10:01:55 (UTC)"
    assert facts["Varied"] == "mode, linger.ms"
    assert facts["About"] == "Fixture: durable with linger.ms 0 and 5, fire-and-forget with defaults."
    assert facts["Fixed"] == (
        "endpoint=seed, load_model=closed, connections=32, duration_s=10, warmup_s=2, data_fields=1, "
        "field_size=5, batch_size=1, load_workers=1, producer_profile=default, service_workers=2, "
        "delivery_bridge=loop, partitions=3"
    )  # no rate (closed loop), nothing per-run (seed, topic, cell, output_dir, bootstrap)
    assert facts["Machine"] == (
        "Fixture Xeon @ 2.10GHz, 4 cores, 15.6 GB memory, Linux-6.1.0-x86_64-with-glibc2.36, "
        "host fixture-host"
    )
    assert facts["Python"] == "3.11.9"
    assert facts["Kafka"] == "3.9.0"
    assert facts["Packages"].startswith("aiohttp 3.10.10, confluent-kafka 2.6.1, fastapi 0.115.5")
    assert facts["Git commit"] == "0123456789ab"


def test_header_shows_runs_that_disagree(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:2])
    path = plan / RUN_NAMES[1] / "summary.json"
    summary = json.loads(path.read_text())
    summary["provenance"]["git"] = {"commit": "fedcba9876543210", "dirty": True}
    path.write_text(json.dumps(summary))
    facts = header.header_facts(load_runs(plan))
    assert facts["Git commit"] == (
        "0123456789ab / fedcba987654 (uncommitted changes) (differs between runs: 2 values)"
    )


def test_header_markdown(runs: Runs) -> None:
    text = header.header_markdown(runs)
    assert text.startswith("# Kafka ingestion lab: plan fixture\n")
    assert "- **Kafka:** 3.9.0" in text
    assert header.header_markdown(runs, "Smoke").startswith("# Smoke\n")


def test_kafka_version_falls_back_to_the_pinned_one(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:1])
    path = plan / RUN_NAMES[0] / "summary.json"
    summary = json.loads(path.read_text())
    summary["provenance"].update(kafka_version=None, kafka_version_pinned="3.9.1")
    summary["provenance"]["packages"]["orjson"] = None
    path.write_text(json.dumps(summary))
    facts = header.header_facts(load_runs(plan))
    assert facts["Kafka"] == "unknown (the project's local broker is pinned to 3.9.1)"
    assert "orjson" not in facts["Packages"]


def test_header_names_engine_and_external_target(search_runs: Runs, runs: Runs) -> None:
    facts = header.header_facts(search_runs)
    assert facts["Load engine"] == "raw"
    assert facts["Target"] == (
        "NOT launched by the suite in every run: http://127.0.0.1:18090 (rust); its CPU is known "
        "only for local processes the suite found by port"
    )
    facts = header.header_facts(runs)
    assert facts["Load engine"] == "aiohttp"
    assert facts["Target"] == "a service the suite launched for every run"


def test_failed_cells_are_named(runs: Runs) -> None:
    assert header.failed(runs) == (
        "2 of 8 cells produced no result and are left out: 007-mode=fire-and-forget_linger.ms=5-t1 "
        "(LabError: the service did not answer /healthz within 30 s); "
        "008-mode=fire-and-forget_linger.ms=5-t2 (not run: no run directory)"
    )


def test_one_run_that_produced_results(make_plan: MakePlan) -> None:
    assert header.failed(load_runs(make_plan(RUN_NAMES[:1]))) == "the one run produced results"
