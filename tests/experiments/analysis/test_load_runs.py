"""Loading run directories: one row per run, every file read, failed cells listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from experiments.analysis import Runs, load_runs

from .conftest import (
    FAILED_CELL,
    FAULTS_PLAN,
    NOT_RUN_CELL,
    OVERLOADED_RUN,
    RUN_NAMES,
    SATURATION_PLAN,
    read_summary,
)

KILLED_FF = "003-mode=fire-and-forget_fault=service-kill-t1"
DURABLE_500 = "001-mode=durable_rate=500-t1"


def test_one_summary_row_per_run_in_configuration_order(runs: Runs) -> None:
    assert list(runs.summaries["run"]) == list(RUN_NAMES)
    assert runs.plan == "fixture"
    assert runs.configs == ("durable, linger.ms=0", "durable, linger.ms=5", "fire-and-forget")
    assert list(runs.summaries["configuration"]) == [c for c in runs.configs for _ in range(2)]
    assert list(runs.summaries["trial"]) == [1, 2, 1, 2, 1, 2]
    assert runs.modes == ("durable", "fire-and-forget")


def test_summary_columns(runs: Runs) -> None:
    expected = {
        "run", "plan", "trial", "configuration", "mode", "endpoint", "load_model", "connections",
        "rate", "duration_s", "warmup_s", "producer.linger.ms", "service_workers", "output_dir",
        "throughput_rps", "events_per_s", "error_rate", "p50_ms", "p75_ms", "p90_ms", "p99_ms",
        "p999_ms", "p9999_ms", "max_ms", "mean_ms", "cpu_generator", "cpu_service",
        "cpu_broker", "cpu_machine", "generator_bound", "acknowledged", "present", "lost",
        "unacknowledged", "duplicates", "cores", "started_at", "ended_at", "measured_s",
    }  # fmt: skip
    assert expected <= set(runs.summaries.columns)
    # The trial is an id column, never a parameter of the configuration.
    assert "param.trial" not in runs.summaries.columns


def test_summary_values_are_the_files_values(runs: Runs, summaries_json: dict[str, dict[str, Any]]) -> None:
    row = runs.summaries.set_index("run").loc["005-mode=durable_linger.ms=5-t2"]
    results = summaries_json["005-mode=durable_linger.ms=5-t2"]["results"]
    assert row["events_per_s"] == results["events_per_s"]
    assert row["p999_ms"] == results["latency_ms"]["p99.9"]
    assert row["cpu_service"] == results["cpu_percent"]["service"]
    assert row["producer.linger.ms"] == 5
    assert row["cores"] == 4
    assert row["lost"] == 0
    # Unset producer settings stay missing: they are the client's defaults.
    assert runs.summaries["producer.linger.ms"].isna().sum() == 2


def test_varying_params_exclude_trial_and_output_dir(runs: Runs) -> None:
    assert runs.varying == ("mode", "producer.linger.ms")
    # Per-run values that are not experimental factors do not split configurations.
    for column in ("seed", "topic", "bootstrap", "plan", "cell", "output_dir"):
        assert column not in runs.varying


def test_series_cpu_and_histograms(runs: Runs, summaries_json: dict[str, dict[str, Any]]) -> None:
    assert len(runs.series) == 6 * 12  # 2 s warm-up + 10 s measured per run
    assert {"run", "configuration", "mode", "trial", "second", "phase", "events_accepted"} <= set(
        runs.series.columns
    )
    assert len(runs.cpu) == 6 * 12 * 4
    assert set(runs.cpu["component"]) == {"generator", "service", "broker", "machine"}
    assert set(runs.histograms) == set(RUN_NAMES)
    for name, histogram in runs.histograms.items():
        assert histogram.get_total_count() == summaries_json[name]["results"]["latency_count"]


def test_failed_and_missing_cells_are_listed(runs: Runs) -> None:
    # The last line of the runner's error.txt is the exception raised in the notebook.
    assert runs.failed.to_dict("records") == [
        {"run": FAILED_CELL, "error": "LabError: the service did not answer /healthz within 30 s"},
        {"run": NOT_RUN_CELL, "error": "not run: no run directory"},
    ]
    assert runs.description.startswith("Fixture: durable with linger.ms 0 and 5")


def test_error_txt_wins_over_a_summary(make_plan: Any) -> None:
    """The runner writes error.txt when a cell failed, even after summary.json was written."""
    plan = make_plan(RUN_NAMES[:2])
    (plan / RUN_NAMES[1] / "error.txt").write_text("AuditError: topic vanished\n")
    runs = load_runs(plan)
    assert list(runs.summaries["run"]) == [RUN_NAMES[0]]
    assert runs.failed.to_dict("records") == [{"run": RUN_NAMES[1], "error": "AuditError: topic vanished"}]


def test_unreadable_and_foreign_summaries_are_failed_cells(make_plan: Any) -> None:
    plan = make_plan(RUN_NAMES[:2])
    (plan / "003-broken").mkdir()
    (plan / "003-broken" / "summary.json").write_text("{not json")
    (plan / "004-other").mkdir()
    (plan / "004-other" / "summary.json").write_text(json.dumps({"schema": "other/9"}))
    (plan / "005-no-trace").mkdir()
    (plan / "notes").mkdir()  # not a run directory: no number, no run file
    runs = load_runs(plan)
    assert len(runs.summaries) == 2
    errors = dict(zip(runs.failed["run"], runs.failed["error"], strict=True))
    assert set(errors) == {"003-broken", "004-other", "005-no-trace"}
    assert errors["003-broken"].startswith("unreadable summary.json")
    assert errors["004-other"] == (
        "summary.json schema 'other/9', expected 'lab.run/2': written by another version "
        "of the suite; re-run the cell (or report it with that version)"
    )
    assert errors["005-no-trace"] == "no summary.json and no error.txt"


def test_histogram_rebuilt_from_worker_histograms(make_plan: Any) -> None:
    plan = make_plan(RUN_NAMES[:1])
    run_dir = plan / RUN_NAMES[0]
    (run_dir / "latency.hdr").unlink()
    (run_dir / "histograms").mkdir()
    for worker, values in enumerate(([1000, 2000], [3000])):
        histogram = HdrHistogram(1, 60_000_000, 3)
        for value in values:
            histogram.record_value(value)
        (run_dir / "histograms" / f"worker-{worker}.hdr").write_text(histogram.encode().decode())
    merged = load_runs(plan).histograms[RUN_NAMES[0]]
    assert merged.get_total_count() == 3
    assert merged.get_max_value() == 3001  # highest value equivalent to 3000 at 3 digits


def test_missing_optional_files_and_fields(tmp_path: Path, plan_dir: Path) -> None:
    """A summary with only the required envelope still loads: the generator is young."""
    run_dir = tmp_path / "001-minimal-t1"
    run_dir.mkdir()
    summary = json.loads((plan_dir / RUN_NAMES[0] / "summary.json").read_text())
    for key in ("latency_ms", "cpu_percent", "generator_bound"):
        del summary["results"][key]
    del summary["audit"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    runs = load_runs(tmp_path)
    row = runs.summaries.iloc[0]
    assert row["events_per_s"] == summary["results"]["events_per_s"]
    assert row[["p99_ms", "cpu_service", "lost"]].isna().all()
    assert runs.series.empty and runs.cpu.empty and not runs.histograms


def test_plan_without_results(tmp_path: Path) -> None:
    (tmp_path / "001-x-t1").mkdir()
    shutil.copy(Path(__file__), tmp_path / "001-x-t1" / "error.txt")
    runs = load_runs(tmp_path)
    assert runs.summaries.empty and len(runs.failed) == 1
    assert runs.configs == () and runs.plan == tmp_path.name


def test_missing_plan_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "nope")


def test_the_overloaded_fixture_is_what_the_issue_describes() -> None:
    results = read_summary(SATURATION_PLAN, OVERLOADED_RUN)["results"]
    assert results["offered_rps"] == 3000.0
    assert results["throughput_rps"] == pytest.approx(1000, rel=0.05)
    assert results["unfinished_fraction"] > 0.01
    assert results["overloaded"] is True
    # Throughput counts completions inside the window only; the cohort adds up.
    assert results["throughput_rps"] == results["ok"] / results["duration_s"]
    cohort = ("completed_in_window", "completed_after_window", "never_sent", "in_flight_at_end")
    assert sum(results[k] for k in cohort) == results["offered"]


def test_load_reads_the_v2_cohort_and_marks(saturation_runs: Runs) -> None:
    row = saturation_runs.summaries.set_index("run").loc[OVERLOADED_RUN]
    results = read_summary(SATURATION_PLAN, OVERLOADED_RUN)["results"]
    for key in ("offered_rps", "sent", "unfinished_fraction", "drain_s", "completed_after_window"):
        assert row[key] == results[key], key
    assert bool(row["overloaded"])
    assert row["engine"] == "raw" and row["launched_by_suite"]
    assert saturation_runs.slo_p99_ms == 50.0
    assert set(saturation_runs.series["phase"]) == {"warmup", "measure", "drain"}


def test_a_summary_without_the_mark_gets_the_contracts_rule(tmp_path: Path) -> None:
    for name in (OVERLOADED_RUN, DURABLE_500):
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
        summary = read_summary(tmp_path, name)
        del summary["results"]["overloaded"]
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    marks = load_runs(tmp_path).summaries.set_index("run")["overloaded"]
    assert bool(marks[OVERLOADED_RUN]) and not bool(marks[DURABLE_500])


def test_a_lab_run_1_summary_is_refused_with_the_reason(tmp_path: Path) -> None:
    shutil.copytree(SATURATION_PLAN / OVERLOADED_RUN, tmp_path / OVERLOADED_RUN)
    summary = read_summary(tmp_path, OVERLOADED_RUN)
    summary["schema"] = "lab.run/1"
    (tmp_path / OVERLOADED_RUN / "summary.json").write_text(json.dumps(summary))
    runs = load_runs(tmp_path)
    assert runs.summaries.empty
    assert runs.failed.to_dict("records") == [
        {
            "run": OVERLOADED_RUN,
            "error": "summary.json schema 'lab.run/1', expected 'lab.run/2': written by another "
            "version of the suite; re-run the cell (or report it with that version)",
        }
    ]


def test_fault_facts_are_read(fault_runs: Runs) -> None:
    assert fault_runs.has_faults
    row = fault_runs.summaries.set_index("run").loc[KILLED_FF]
    summary = read_summary(FAULTS_PLAN, KILLED_FF)
    assert row["fault_kind"] == "service-kill"
    assert row["unavailable_s"] == summary["availability"]["unavailable_s"]
    faults = summary["faults"]
    assert row["recovered_after_s"] == round(faults["recovered_at_s"] - faults["events"][0]["t_s"], 3) > 0
    assert row["lost_202"] == summary["audit"]["lost_by_class"]["202"] == summary["audit"]["lost"] > 0
    assert row["errors_during_fault"] == sum(summary["availability"]["errors_during_fault"].values())
    assert set(fault_runs.errors["status"]) == {"transport", "503"}
    assert "fault" in fault_runs.series.columns


def test_a_search_reads_low_to_high_although_it_visits_rates_out_of_order(search_runs: Runs) -> None:
    assert search_runs.configs[:3] == ("durable, rate=500", "durable, rate=812.5", "durable, rate=968.75")
