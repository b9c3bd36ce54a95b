"""Runner logic without Kafka: resume, keep going past a failure, never overwrite, the plan's kernel."""

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

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any], **_: Any) -> None:
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

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any], **_: Any) -> None:
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
    monkeypatch.setattr(runner, "execute_cell", lambda cell, cell_dir, extra, **_: finish(cell_dir))
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


def run_on(kernel: runner.CellKernel, tmp_path: Path, name: str, value: int) -> tuple[int, int]:
    """Execute a two-cell notebook on `kernel`: (the kernel's pid, the parameter it saw)."""
    import nbformat
    import papermill as pm

    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    out = tmp_path / name
    notebook.cells = [
        nbformat.v4.new_code_cell("value = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"import os, pathlib\nos.write(2, b'process line {name}\\n')\n"
                                  f"pathlib.Path({str(out)!r}).write_text(f'{{os.getpid()}} {{value}}')"),
    ]
    nbformat.write(notebook, tmp_path / "in.ipynb")
    with (tmp_path / f"{name}.log").open("w") as log:
        pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / f"{name}.ipynb"),
                            parameters={"value": value}, kernel_name="python3", progress_bar=False,
                            stdout_file=log, stderr_file=log,
                            engine_name=runner.SharedKernelEngine.NAME, km=kernel.manager())
    pid, seen = out.read_text().split()
    return int(pid), int(seen)


def test_a_plans_cells_share_one_kernel_until_it_is_discarded(tmp_path: Path) -> None:
    """The kernel outlives a notebook (its start and imports are paid once per plan), each
    notebook gets its own parameters, and a discarded kernel is gone: the next cell gets a
    new process. Its process-level output goes to the plan's kernel log."""
    import os

    kernel = runner.CellKernel(tmp_path / "kernel.log")
    try:
        first, seen_first = run_on(kernel, tmp_path, "a", 1)
        second, seen_second = run_on(kernel, tmp_path, "b", 2)
        assert first == second and (seen_first, seen_second) == (1, 2)
        kernel.discard()
        third, _ = run_on(kernel, tmp_path, "c", 3)
        assert third != first
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
    finally:
        kernel.discard()
    log = (tmp_path / "kernel.log").read_text()
    assert all(f"process line {name}" in log for name in "abc")


def test_a_failed_cell_discards_the_plans_kernel(
    plan_file: Path, tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a failed cell left in its kernel does not reach the next cell."""
    events: list[str] = []

    class Kernel:
        def __init__(self, log_path: Path) -> None:
            assert log_path.name == "kernel.log"

        def discard(self) -> None:
            events.append("discard")

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any], **kw: Any) -> None:
        assert isinstance(kw["kernel"], Kernel)
        events.append(cell.params["mode"])
        if cell.params["mode"] == "durable":
            raise RuntimeError("boom")
        finish(cell_dir)

    monkeypatch.setattr(runner, "CellKernel", Kernel)
    monkeypatch.setattr(runner, "execute_cell", execute)
    runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    # discarded after the failure, then once more at the plan's end
    assert events == ["durable", "discard", "fire-and-forget", "discard"]


def finish_with_other_load(cell_dir: Path, other_percent: float, cores: int = 2) -> None:
    cell_dir.mkdir(parents=True, exist_ok=True)
    (cell_dir / "summary.json").write_text(json.dumps({
        "schema": "lab.run/2", "audit": {"lost": 0},
        "results": {"cpu_other_percent": other_percent, "events_per_s": 1000.0},
        "provenance": {"machine": {"cpu_count": cores}},
    }))


@pytest.mark.parametrize("rerun_limit", [0, 1, 2])
def test_a_run_disturbed_by_other_load_is_set_aside_and_run_again_up_to_the_plans_limit(
    tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch, rerun_limit: int
) -> None:
    """The durable cell's box is always busy (30% of 2 cores > 10%); fire-and-forget's is quiet."""
    plan_file = tmp_path / "tiny.yaml"
    plan_file.write_text("name: tiny\nceiling: false\ntrials: 1\n"
                         f"rerun_disturbed: {rerun_limit}\nmatrix: {{mode: [durable, fire-and-forget]}}\n")
    executed: list[str] = []

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any], **_: Any) -> None:
        executed.append(cell.id)
        finish_with_other_load(cell_dir, 60.0 if cell.params["mode"] == "durable" else 19.0)

    monkeypatch.setattr(runner, "execute_cell", execute)
    outcome = runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    durable, ff = "001-mode=durable-t1", "002-mode=fire-and-forget-t1"
    assert executed == [durable] * (rerun_limit + 1) + [ff]
    assert outcome.ran == [durable, ff] and not outcome.failed
    assert outcome.set_aside == [f"{durable}.{n}" for n in range(1, rerun_limit + 1)]
    plan_dir = runner.PlanDir(tmp_path / "results" / "tiny")
    # The last attempt is the run; the set-aside ones are kept, out of the analysis' way.
    assert [r.name for r in plan_dir.runs()] == [durable, ff]
    assert [r.name for r in plan_dir.set_aside_runs()] == outcome.set_aside
    assert all((r / "summary.json").exists() for r in plan_dir.set_aside_runs())


def test_the_disturbed_rule_reads_the_box_not_the_result() -> None:
    from experiments.rundir import disturbed

    def summary(other: float | None, cores: int | None, events: float) -> dict[str, Any]:
        return {"results": {"cpu_other_percent": other, "events_per_s": events},
                "provenance": {"machine": {"cpu_count": cores}}}

    assert disturbed(summary(20.1, 2, 5000.0)) and not disturbed(summary(20.0, 2, 5000.0))
    assert disturbed(summary(40.1, 4, 1.0)) and not disturbed(summary(39.0, 4, 1.0))
    # However odd the result, a quiet box is not disturbed; unknown CPU or cores is not either.
    assert not disturbed(summary(0.0, 2, 1.0)) and not disturbed(summary(0.0, 2, 1e9))
    assert not disturbed(summary(None, 2, 1.0)) and not disturbed(summary(90.0, None, 1.0))


def host_speed(probes: list[float]) -> dict[str, Any]:
    from experiments.rundir import host_speed as section

    speed = section(probes, probes)
    assert speed is not None
    return speed


def test_the_host_half_of_the_rule_counts_slow_seconds_against_the_best_reading() -> None:
    from experiments.rundir import disturbed, host_slow

    fast, slow = 1500.0, 2700.0  # the box's two speeds, in probe microseconds

    def summary(probes: list[float], service: float = 100.0, machine: float = 150.0) -> dict[str, Any]:
        return {"results": {"cpu_other_percent": 0.0, "host_speed": host_speed(probes),
                            "cpu_percent": {"service": service, "machine": machine}},
                "provenance": {"machine": {"cpu_count": 2}}}

    # 4 of 15 seconds slow is more than a quarter of the window; 3 is not.
    assert disturbed(summary([slow] * 4 + [fast] * 11))
    assert not disturbed(summary([slow] * 3 + [fast] * 12))
    # Readings 1.3x the best are a loaded second, not a slow host.
    assert not disturbed(summary([1.3 * fast] * 15 + [fast]))
    # A run slow from start to end has no fast reading: the plan's earlier best tells.
    all_slow = summary([slow] * 15)
    assert not disturbed(all_slow) and disturbed(all_slow, best_probe_us=fast)
    assert not host_slow(None) and not host_slow({"window_probes_us": []})
    assert all_slow["results"]["host_speed"]["slow_seconds"] == 0  # against its own best
    # A quarter only where CPU set the pace (a service at half a core waits on the broker
    # too; the whole machine near its 2 cores is CPU-bound whatever the service uses);
    # more than 40% of the window (7 of 15 s) for any run.
    assert not disturbed(summary([slow] * 6 + [fast] * 9, service=50.0, machine=80.0))
    assert disturbed(summary([slow] * 7 + [fast] * 8, service=50.0, machine=80.0))
    assert disturbed(summary([slow] * 6 + [fast] * 9, service=50.0, machine=185.0))


def test_a_run_the_host_slowed_throughout_is_run_again_against_the_plans_best(
    tmp_path: Path, fake_kafka: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial 1 sees the host at full speed; trial 2's first attempt only at 1.8x its time."""
    plan_file = tmp_path / "slow.yaml"
    plan_file.write_text("name: slow\nceiling: false\ntrials: 2\nmatrix: {mode: [durable]}\n")
    attempts: list[str] = []

    def execute(cell: Cell, cell_dir: Path, extra: dict[str, Any], **_: Any) -> None:
        attempts.append(cell.id)
        probes = [2700.0] * 15 if len(attempts) == 2 else [1500.0] * 15
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "summary.json").write_text(json.dumps({
            "schema": "lab.run/2", "audit": {"lost": 0},
            "results": {"cpu_other_percent": 0.0, "host_speed": host_speed(probes),
                        "cpu_percent": {"service": 100.0, "machine": 150.0}},
            "provenance": {"machine": {"cpu_count": 2}},
        }))

    waits: list[float | None] = []
    monkeypatch.setattr(runner, "execute_cell", execute)
    monkeypatch.setattr(runner, "wait_for_fast_host", lambda best: waits.append(best) or (4.0, True))
    outcome = runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    assert attempts == ["001-base-t1", "002-base-t2", "002-base-t2"]
    assert outcome.set_aside == ["002-base-t2.1"]
    # The re-run waited for the host against the plan's best reading, and both attempts'
    # timings are kept: the set-aside one under its own name.
    assert waits == [1500.0]
    timings = json.loads((tmp_path / "results" / "slow" / "timings.json").read_text())
    assert set(timings) == {"001-base-t1", "002-base-t2", "002-base-t2.1"}
    assert timings["002-base-t2"]["host_wait_s"] == 4.0 and timings["002-base-t2.1"]["host_wait_s"] == 0.0


def test_a_rerun_waits_until_the_host_reads_fast_a_few_seconds_in_a_row() -> None:
    now = [0.0]

    def waiting(readings: list[float]) -> tuple[float, bool]:
        it = iter(readings)
        now[0] = 0.0

        def sleep(seconds: float) -> None:
            now[0] += seconds

        return runner.wait_for_fast_host(1500.0, probe=lambda: next(it), sleep=sleep, clock=lambda: now[0])

    fast, slow = 1600.0, 2700.0  # within and beyond HOST_SLOW_FACTOR x 1500
    assert waiting([fast] * 3) == (2.0, True)
    # A slow reading starts the count again.
    assert waiting([fast, fast, slow, fast, fast, fast]) == (5.0, True)
    # Never fast: it gives up at the limit and says so.
    assert waiting([slow] * 100) == (runner.HOST_WAIT_LIMIT_S, False)
    # No best reading yet in the plan: nothing to compare with, no wait.
    assert runner.wait_for_fast_host(None, probe=lambda: pytest.fail("probed")) == (0.0, True)


def test_an_existing_cluster_is_never_warmed_and_zero_seconds_warms_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed: list[str] = []
    monkeypatch.setattr(runner, "warm_up", lambda bootstrap, seconds: warmed.append(bootstrap) or 1)
    monkeypatch.setattr(runner, "execute_cell", lambda cell, cell_dir, extra, **_: finish(cell_dir))
    for external, seconds, expected in ((True, 10, []), (False, 0, []), (False, 2, ["127.0.0.1:9"])):
        target = KafkaTarget(bootstrap="127.0.0.1:9", started_here=False, external=external,
                             kafka_version=None)
        monkeypatch.setattr(runner, "ensure_kafka", lambda target=target, **_: target)
        plan_file = tmp_path / f"w{external}{seconds}.yaml"
        plan_file.write_text(f"name: w{external}{seconds}\nceiling: false\ntrials: 2\n"
                             f"broker_warmup_s: {seconds}\nmatrix: {{mode: [durable]}}\n")
        warmed.clear()
        runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
        assert warmed == expected, (external, seconds)


def test_the_cluster_is_warmed_again_after_a_cell_that_killed_a_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed: list[str] = []
    monkeypatch.setattr(runner, "warm_up", lambda bootstrap, seconds: warmed.append(bootstrap) or 1)
    monkeypatch.setattr(runner, "execute_cell", lambda cell, cell_dir, extra, **_: finish(cell_dir))
    target = KafkaTarget(bootstrap="127.0.0.1:9", started_here=False, external=False, kafka_version=None)
    monkeypatch.setattr(runner, "ensure_kafka", lambda **_: target)
    plan_file = tmp_path / "f.yaml"
    plan_file.write_text("name: f\nceiling: false\ntrials: 2\nbase: {cluster_size: 3}\n"
                         "matrix: {fault: [none, service-kill, broker-kill]}\n")
    runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    # Before the first cell, and after each broker-kill cell (trial 1's before trial 2's
    # first cell); a service fault leaves the brokers warm.
    assert warmed == ["127.0.0.1:9", "127.0.0.1:9"]


def test_each_cell_gets_its_cluster_started_with_its_network_before_the_warm_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, Any]] = []

    def ensure(local: Any) -> KafkaTarget:
        events.append(("cluster", (local.nodes, local.network.proxied, local.network.client.rtt_ms)))
        return KafkaTarget(bootstrap=f"127.0.0.1:{len(events)}", started_here=True, external=False,
                           kafka_version=None)

    monkeypatch.setattr(runner, "ensure_kafka", ensure)
    monkeypatch.setattr(runner.LocalKafka, "stop", lambda self: None)
    monkeypatch.setattr(runner, "warm_up", lambda bootstrap, seconds: events.append(("warm", bootstrap)) or 1)
    monkeypatch.setattr(runner, "execute_cell", lambda cell, cell_dir, extra, **_: finish(cell_dir))
    plan_file = tmp_path / "n.yaml"
    plan_file.write_text("name: n\nceiling: false\ntrials: 1\nbase: {cluster_size: 3}\n"
                         "matrix: {network: [loopback, 5ms]}\n")
    runner.run_plan(plan_file, tmp_path / "results", tmp_path / "reports", report=False)
    assert events == [("cluster", (3, False, 0.0)), ("warm", "127.0.0.1:1"),
                      ("cluster", (3, True, 5.0)), ("warm", "127.0.0.1:3")]
