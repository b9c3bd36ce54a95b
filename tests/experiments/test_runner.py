"""Runner logic without Kafka or kernels: resume, keep going past a failure, never overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments import runner
from experiments.kafka import KafkaTarget
from experiments.plans import Cell


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nceiling: false\ntrials: 1\nmatrix: {mode: [durable, fire-and-forget]}\n")
    return path


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    target = KafkaTarget(bootstrap="127.0.0.1:1", started_here=False, external=True, kafka_version=None)
    monkeypatch.setattr(runner, "ensure_kafka", lambda **_: target)


def finish(cell_dir: Path) -> None:
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / "summary.json").write_text(json.dumps({"schema": "lab.run/2", "audit": {"lost": 0}}))


def test_resume_skips_finished_cells_and_records_failures(
    plan_file: Path, tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    executed: list[tuple[str, dict[str, Any]]] = []

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any]) -> None:
        executed.append((cell.id, extra))
        if cell.params["mode"] == "durable":
            raise RuntimeError("broker went away\nmore detail")
        finish(cell_dir)

    monkeypatch.setattr(runner, "execute_cell", execute)
    first = runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    assert first.ran == ["002-mode=fire-and-forget-t1"]
    assert first.failed == {"001-mode=durable-t1": "RuntimeError: broker went away"}
    error = (tmp_path / "results" / "tiny" / "001-mode=durable-t1" / "error.txt").read_text()
    assert "broker went away" in error and "Traceback" in error
    assert executed[0][1] == {"bootstrap": "127.0.0.1:1", "generator_ceiling_rps": 0.0}

    executed.clear()
    second = runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    assert [cell_id for cell_id, _ in executed] == ["001-mode=durable-t1"]
    assert second.skipped == ["002-mode=fire-and-forget-t1"]
    plan_json = json.loads((tmp_path / "results" / "tiny" / "plan.json").read_text())
    assert plan_json["cells"] == ["001-mode=durable-t1", "002-mode=fire-and-forget-t1"]


def test_a_summary_of_another_schema_is_not_finished(tmp_path: Path) -> None:
    """The runner's resume and the analysis judge a run by one rule (RunDir.outcome)."""
    (tmp_path / "summary.json").write_text(json.dumps({"results": {}}))
    assert not runner.cell_finished(tmp_path)
    finish(tmp_path)
    assert runner.cell_finished(tmp_path)


def test_a_cell_that_failed_after_its_summary_stays_failed_and_is_not_rerun(
    plan_file: Path, tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its summary is never overwritten, and its error.txt keeps the original reason."""
    cell_dir = tmp_path / "results" / "tiny" / "001-mode=durable-t1"
    finish(cell_dir)
    (cell_dir / "error.txt").write_text("PapermillExecutionError:\n\nKeyError: 'audit'\n")
    executed: list[str] = []

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any]) -> None:
        executed.append(cell.id)
        finish(cell_dir)

    monkeypatch.setattr(runner, "execute_cell", execute)
    outcome = runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    assert executed == ["002-mode=fire-and-forget-t1"]
    assert outcome.failed == {"001-mode=durable-t1": "KeyError: 'audit'"}
    assert (cell_dir / "error.txt").read_text().endswith("KeyError: 'audit'\n")


def test_no_resume_refuses_to_overwrite(
    plan_file: Path, tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "execute_cell", lambda cell, cell_dir, extra: finish(cell_dir))
    runner.run_plan(plan_file, tmp_path / "r", tmp_path / "reports", report=False)
    with pytest.raises(FileExistsError, match="never overwritten"):
        runner.run_plan(plan_file, tmp_path / "r", tmp_path / "reports", resume=False, report=False)


def test_generator_ceiling_is_measured_once_per_load_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from experiments.plans import load_plan

    plan_file = tmp_path / "c.yaml"
    plan_file.write_text(
        "name: c\ntrials: 2\nmatrix: {mode: [durable, fire-and-forget], connections: [5, 50]}\n"
    )
    plan = load_plan(plan_file)
    measured: list[int] = []

    def fake_ceiling(spec: Any) -> float:
        measured.append(spec.connections)
        return 1000.0 + spec.connections

    monkeypatch.setattr(runner, "measure_ceiling", fake_ceiling)
    values = [runner.generator_ceiling(plan, tmp_path, cell.params) for cell in plan.cells(tmp_path)]
    assert sorted(measured) == [5, 50]
    assert set(values) == {1005.0, 1050.0}
    cached = json.loads((tmp_path / "generator_ceiling.json").read_text())
    assert len(cached) == 2


def test_generator_ceiling_is_measured_with_each_cells_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from experiments.plans import load_plan

    plan_file = tmp_path / "e.yaml"
    plan_file.write_text("name: e\ntrials: 1\nmatrix: {load_engine: [aiohttp, raw]}\n")
    plan = load_plan(plan_file)
    measured: list[str] = []

    def fake_ceiling(spec: Any) -> float:
        measured.append(spec.engine)
        return {"aiohttp": 8000.0, "raw": 40000.0}[spec.engine]

    monkeypatch.setattr(runner, "measure_ceiling", fake_ceiling)
    values = [runner.generator_ceiling(plan, tmp_path, cell.params) for cell in plan.cells(tmp_path)]
    assert sorted(measured) == ["aiohttp", "raw"]
    assert sorted(values) == [8000.0, 40000.0]


def test_a_cells_kernel_writes_its_process_output_into_the_cell_log(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """What the kernel process prints itself (ipykernel's notices, librdkafka's log lines)
    goes to the cell's log, not to the terminal of the person running `make report`."""
    import nbformat
    import papermill as pm

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import os\nos.write(2, b'kernel-level line\\n')")]
    nbformat.write(notebook, tmp_path / "in.ipynb")
    with (tmp_path / "cell.log").open("w") as log:
        pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                            kernel_name="python3", progress_bar=False, stdout_file=log,
                            stderr_file=log, kernel_manager_class=runner.kernel_manager_for_log(log))
    assert "kernel-level line" in (tmp_path / "cell.log").read_text()
    captured = capfd.readouterr()
    assert "kernel-level line" not in captured.err + captured.out
    assert "without encryption" not in captured.err
