"""Report header and tables: provenance from the files, numbers as the files say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from experiments.analysis import Runs, load_runs, report

from .conftest import RUN_NAMES

MakePlan = Callable[[Iterable[str]], Path]


def test_header_facts(runs: Runs) -> None:
    facts = report.header_facts(runs)
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
    facts = report.header_facts(load_runs(plan))
    assert facts["Git commit"] == (
        "0123456789ab / fedcba987654 (uncommitted changes) (differs between runs: 2 values)"
    )


def test_header_markdown(runs: Runs) -> None:
    text = report.header_markdown(runs)
    assert text.startswith("# Kafka ingestion lab: plan fixture\n")
    assert "- **Kafka:** 3.9.0" in text
    assert report.header_markdown(runs, "Smoke").startswith("# Smoke\n")


def test_summary_table_prints_the_files_numbers(
    runs: Runs, summaries_json: dict[str, dict[str, Any]]
) -> None:
    table = report.summary_table(runs).set_index("configuration")
    assert list(table.index) == list(runs.configs)
    row = table.loc["fire-and-forget"]
    a, b = (
        summaries_json[n]["results"]
        for n in ("003-mode=fire-and-forget_defaults-t1", "006-mode=fire-and-forget_defaults-t2")
    )
    assert row["events/s (median)"] == f"{(a['events_per_s'] + b['events_per_s']) / 2:,.0f}" == "4,012"
    assert row["events/s (min-max)"] == "3,994-4,031"
    assert row["p99 ms (median, min-max)"] == "22.6 (22.2-23.0)"
    assert row["lost events"] == "12"
    assert row["generator-bound trials"] == "1 of 2"
    # IQR and stdev only appear once some configuration has three trials.
    assert "events/s IQR / stdev" not in table.columns


def test_spectrum_and_audit_tables(runs: Runs) -> None:
    spectrum = report.spectrum_table(runs).set_index("configuration")
    assert list(spectrum.columns) == [
        "requests", "min", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "p99.999", "max",
    ]  # fmt: skip
    assert spectrum.loc["fire-and-forget", "requests"] == "80,250"
    assert spectrum.loc["fire-and-forget", "p99.999"] == "-"  # not resolved by 80,250 requests
    audit = report.audit_table(runs)
    assert audit.iloc[-1].to_dict() == {
        "run": "006-mode=fire-and-forget_defaults-t2",
        "configuration": "fire-and-forget",
        "trial": "2",
        "acknowledged": "47,942",
        "present": "47,930",
        "lost": "12",
        "unacknowledged": "0",
        "duplicates": "0",
    }


def test_tables_render_without_index(runs: Runs) -> None:
    html = report.table_html(report.summary_table(runs))
    assert html.startswith("<table") and "<th>configuration</th>" in html
    assert report.caption("a_b") == "**Takeaway:** a\\_b"


def test_kafka_version_falls_back_to_the_pinned_one(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:1])
    path = plan / RUN_NAMES[0] / "summary.json"
    summary = json.loads(path.read_text())
    summary["provenance"].update(kafka_version=None, kafka_version_pinned="3.9.1")
    summary["provenance"]["packages"]["orjson"] = None
    path.write_text(json.dumps(summary))
    facts = report.header_facts(load_runs(plan))
    assert facts["Kafka"] == "unknown (the project's local broker is pinned to 3.9.1)"
    assert "orjson" not in facts["Packages"]
