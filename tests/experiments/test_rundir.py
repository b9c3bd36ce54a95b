"""The run directory's one rule for a finished run, its refusal to overwrite, and the two
rules a summary states at their boundaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import rundir
from experiments.rundir import PlanDir, RunDir, RunDirError, generator_bound, overload


def write_summary(run_dir: Path, **summary: object) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_a_run_finished_when_its_summary_is_of_this_schema_and_no_error_says_otherwise(
        tmp_path: Path) -> None:
    run = RunDir(tmp_path / "001-x-t1")
    write_summary(run.path, schema="lab.run/2", results={"ok": 1})
    assert run.finished() and run.failed() == ""
    assert run.outcome()[0] == {"schema": "lab.run/2", "results": {"ok": 1}}
    run.path.joinpath("error.txt").write_text("Traceback ...\n\nAuditError: topic vanished\n")
    assert not run.finished()
    assert run.failed() == "AuditError: topic vanished"
    run.clear_error()
    assert run.finished()


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no summary.json and no error.txt"),
    ("{not json", "unreadable summary.json"),
    (json.dumps({"schema": "lab.run/1"}), "summary.json schema 'lab.run/1', expected 'lab.run/2'"),
    (json.dumps(["a list"]), "summary.json schema None"),
])
def test_why_a_run_has_no_result(tmp_path: Path, content: str | None, reason: str) -> None:
    tmp_path.joinpath("run").mkdir()
    if content is not None:
        tmp_path.joinpath("run", "summary.json").write_text(content)
    run = RunDir(tmp_path / "run")
    assert not run.finished()
    assert run.failed().startswith(reason)


def test_write_error_keeps_the_exception_and_its_traceback(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    try:
        raise ValueError("broker went away")
    except ValueError as exc:
        path = run.write_error(exc)
    text = path.read_text()
    assert text.startswith("ValueError: broker went away\n") and "Traceback" in text
    assert run.failed() == "ValueError: broker went away"


def test_a_written_run_is_never_overwritten(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "new")
    run.claim()
    assert run.path.is_dir()
    run.claim()  # an empty directory (or one with a service log only) is not a run yet
    (run / rundir.SERIES).write_text("second\n")
    with pytest.raises(RunDirError, match="never overwritten"):
        run.claim()


def test_summaries_are_written_without_nan(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.write_summary({"schema": rundir.SCHEMA, "results": {"error_rate": float("nan")}})
    assert json.loads((run / rundir.SUMMARY).read_text())["results"]["error_rate"] is None


def test_plan_directory_lists_run_directories_only(tmp_path: Path) -> None:
    for name in ("002-b-t1", "001-a-t1", "notes", ".hidden", "_tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "adhoc").mkdir()
    (tmp_path / "adhoc" / "series.csv").write_text("second\n")
    (tmp_path / "plan.json").write_text(json.dumps({"name": "p"}))
    plan = PlanDir(tmp_path)
    assert [r.name for r in plan.runs()] == ["001-a-t1", "002-b-t1", "adhoc"]
    assert plan.read_plan() == {"name": "p"} and plan.read_search() is None


def test_overload_rule_at_its_boundaries() -> None:
    # 99% of 1,000 offered, less one request of slack: 989 completed is not overloaded.
    assert overload(1000, 989, 0.0, 10.0) == (False, [])
    over, reasons = overload(1000, 988, 0.0, 10.0)
    assert over and reasons == ["completed 99 2xx answers/s in the window, 98.8% of the 100 req/s offered"]
    assert not overload(1000, 1000, 0.01, 10.0)[0]
    assert overload(1000, 1000, 0.0101, 10.0) == (True, ["1.0% of the offered requests were unfinished"])


def test_generator_bound_rule_at_its_boundaries() -> None:
    assert not generator_bound(799.0, 1000.0, None, 1)[0]
    assert generator_bound(800.0, 1000.0, None, 1)[0]
    assert not generator_bound(100.0, None, 179.0, 2)[0]
    assert generator_bound(100.0, None, 180.0, 2) == (True, ["generator CPU 180% >= 90% of 2 usable core(s)"])


def test_the_analysis_marks_a_summary_without_the_mark_by_the_writers_rule(tmp_path: Path) -> None:
    """At the boundary the slack of one request decides: 989 of 1,000 holds, 988 does not."""
    from experiments.analysis import load_runs

    for name, ok in (("001-at-t1", 989), ("002-below-t1", 988)):
        write_summary(tmp_path / name, schema=rundir.SCHEMA, params={"mode": "durable", "load_model": "open"},
                      results={"offered": 1000, "ok": ok, "duration_s": 10.0, "offered_rps": 100.0,
                               "throughput_rps": ok / 10.0, "unfinished_fraction": 0.0})
    marks = load_runs(tmp_path).summaries.set_index("run")["overloaded"]
    assert not marks["001-at-t1"] and marks["002-below-t1"]
