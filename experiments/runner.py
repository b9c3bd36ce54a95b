"""Run a plan: every cell through the run notebook with papermill, then the report.

parameterize -> execute each cell (resuming past finished ones) -> analyze -> export.
A failed cell is recorded in its directory and the plan goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import papermill as pm
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger
from tqdm import tqdm

from experiments import search
from experiments.cpu import slowest_core_probe_us
from experiments.experiment import load_spec
from experiments.kafka import KafkaTarget, LocalKafka, ensure_kafka, warm_up
from experiments.load import measure_ceiling
from experiments.params import RunParams
from experiments.plans import Cell, Plan, load_plan
from experiments.report_export import export_html
from experiments.rundir import (
    ANALYSIS,
    GENERATOR_CEILING,
    KERNEL_LOG,
    NOTEBOOK,
    PAPERMILL_LOG,
    SEARCH,
    SUMMARY,
    PlanDir,
    RunDir,
    disturbed,
    slow_reading,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_NOTEBOOK = REPO_ROOT / "notebooks" / "run_experiment.ipynb"
ANALYZE_NOTEBOOK = REPO_ROOT / "notebooks" / "analyze.ipynb"


@dataclass
class PlanOutcome:
    plan: str
    plan_dir: Path
    report: Path | None = None
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    set_aside: list[str] = field(default_factory=list)  # disturbed runs that ran again


def cell_finished(cell_dir: Path) -> bool:
    """Whether the cell's run finished, by the run directory's one rule (RunDir.outcome)."""
    return RunDir(cell_dir).finished()


def execute_cell(cell: Cell, cell_dir: Path, extra: dict[str, Any], kernel: CellKernel) -> None:
    """Execute the run notebook for `cell` into its directory, on the plan's `kernel`."""
    run_dir = RunDir(cell_dir)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    run_dir.clear_error()
    with (run_dir / PAPERMILL_LOG).open("w") as out:
        pm.execute_notebook(
            str(RUN_NOTEBOOK),
            str(run_dir / NOTEBOOK),
            parameters={**cell.params, **extra},
            kernel_name="python3",
            cwd=str(REPO_ROOT),
            progress_bar=False,
            log_output=False,
            stdout_file=out,
            stderr_file=out,
            engine_name=SharedKernelEngine.NAME,
            km=kernel.manager(),
        )


class SharedKernelEngine(NBClientEngine):
    """papermill's nbclient engine on a kernel that outlives the notebook (`km`): it leaves
    the kernel running and closes only its own client's channels."""

    NAME = "lab-shared-kernel"

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                 stdout_file: IO[str] | None = None,
                                 stderr_file: IO[str] | None = None, start_timeout: int = 60,
                                 execution_timeout: int | None = None, **kwargs: Any) -> Any:
        passed = {k: v for k, v in kwargs.items() if k not in ("input_path", "timeout", "startup_timeout")}
        client = PapermillNotebookClient(
            nb_man, kernel_name=kernel_name, log=papermill_logger, log_output=log_output,
            stdout_file=stdout_file, stderr_file=stderr_file, startup_timeout=start_timeout,
            timeout=execution_timeout, **passed)
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()


papermill_engines.register(SharedKernelEngine.NAME, SharedKernelEngine)


class CellKernel:
    """The one kernel a plan's cells run on, started at the first cell. A fresh kernel per
    cell cost 0.65 s of start and 0.35-0.6 s of imports on every cell (measured); the run
    notebook assigns every name it reads, so nothing of one cell reaches the next but
    imported modules. After a cell that failed the kernel is replaced (`discard`), since a
    failure may have left anything behind. Its process-level output goes to `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[str] | None = None
        self._manager: AsyncKernelManager | None = None

    def manager(self) -> AsyncKernelManager:
        if self._manager is None or (self._manager.has_kernel and not run_sync(self._manager.is_alive)()):
            self.discard()
            self._log = self.log_path.open("a")
            self._manager = kernel_manager_for_log(self._log)(kernel_name="python3")
        return self._manager

    def discard(self) -> None:
        """Stop the kernel (when one runs); the next cell starts a new one."""
        manager, self._manager = self._manager, None
        if manager is not None and manager.has_kernel:
            # Everything of a run is written before its last cell ends; a graceful shutdown
            # (interrupt, request, wait) kept every cell 2.5 s longer when each had a kernel.
            run_sync(manager.shutdown_kernel)(now=True)
        if self._log is not None:
            self._log.close()
            self._log = None


def kernel_manager_for_log(log: IO[str]) -> type[AsyncKernelManager]:
    """A kernel manager whose kernel writes its own output into `log`.

    The kernel's process-level output (ipykernel's start-up notice about unencrypted
    local TCP, librdkafka's log lines) otherwise lands on the user's terminal once per
    cell, where nobody can act on it; in the cell's papermill.log it stays findable.
    """

    class CellKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return CellKernelManager


def generator_ceiling(plan: Plan, plan_dir: Path, params: dict[str, Any]) -> float:
    """The load generator's own ceiling for this cell's load shape (endpoint, payload,
    connections, workers, engine), measured once per shape and plan directory against a
    no-op server with the engine the cell's run uses."""
    if not plan.ceiling:
        return 0.0
    spec = load_spec(RunParams.from_dict(params), url="http://127.0.0.1:1")
    key = (
        f"{spec.endpoint}/fields={spec.data_fields}x{spec.field_size}/batch={spec.batch_size}"
        f"/c={spec.connections}/w={spec.workers}/engine={spec.engine}"
    )
    path = PlanDir(plan_dir) / GENERATOR_CEILING
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        known[key] = {"ceiling_rps": measure_ceiling(spec=spec), "measured_at": datetime.now(UTC).isoformat()}
        path.write_text(json.dumps(known, indent=2))
    return float(known[key]["ceiling_rps"])


def run_plan(
    plan_ref: str | Path,
    results_dir: Path = Path("results"),
    reports_dir: Path = Path("reports"),
    resume: bool = True,
    report: bool = True,
) -> PlanOutcome:
    plan = load_plan(plan_ref)
    results_dir = results_dir.resolve()
    plan_dir = results_dir / plan.name
    plan_dir.mkdir(parents=True, exist_ok=True)
    cells = plan.cells(results_dir)
    write_plan_json(plan, plan_dir, cells)
    outcome = PlanOutcome(plan=plan.name, plan_dir=plan_dir)
    clusters = CellClusters(plan.broker_warmup_s)
    kernel = CellKernel(plan_dir / KERNEL_LOG)
    try:
        run = CellRunner(plan, plan_dir, clusters, resume, outcome, kernel)
        if plan.kind == "search":
            run_search(plan, results_dir, run)
        else:
            for cell in tqdm(cells, desc=f"plan {plan.name}", unit="cell"):
                run(cell)
            if plan.sweeps_capacity():
                top_up_undecided(plan, results_dir, cells, run)
    finally:
        kernel.discard()
        clusters.close()
    if report:
        outcome.report = build_report(plan_dir, reports_dir)
    return outcome


def write_plan_json(plan: Plan, plan_dir: Path, cells: list[Cell]) -> None:
    PlanDir(plan_dir).write_plan(plan.describe(cells))


# --- cluster lifecycle per cell (issue 8: faults and replication) -------------------------
class CellClusters:
    """The local cluster each cell needs: started at the cell's `cluster_size` (replaced when
    it changes), warmed once per plan (the plan's `broker_warmup_s`) and again after a cell
    with a broker fault, healed before every cell
    (a node a fault killed or paused is back), and stopped at the end when this plan started
    it. An existing cluster (KAFKA_BOOTSTRAP_SERVERS) is used as it is, never warmed."""

    def __init__(self, warmup_s: float = 0.0) -> None:
        self.local: LocalKafka | None = None
        self.started_here = False
        self.warmup_s = warmup_s
        self.warmed: dict[tuple[int, str], float] = {}  # (nodes, bootstrap) -> warm-up seconds
        self.broker_fault_before = False  # the previous cell killed or paused a node

    def for_cell(self, params: dict[str, Any]) -> KafkaTarget:
        # Started with the cell's network, so that the warm-up warms the cluster the run uses
        # (a run finding another network would start the cluster again, cold).
        local = LocalKafka(nodes=int(params.get("cluster_size", 1)),
                           network=RunParams.from_dict(params).network_layout())
        target = ensure_kafka(local=local)
        if not target.external:
            self.local = local
            self.started_here = self.started_here or target.started_here
            cluster = (local.nodes, target.bootstrap)
            if self.broker_fault_before:
                self.warmed.pop(cluster, None)  # a killed and restarted node is a cold JVM
            self.broker_fault_before = "broker" in str(params.get("fault") or "")
            if self.warmup_s > 0 and cluster not in self.warmed:
                started = time.perf_counter()
                acknowledged = warm_up(target.bootstrap, self.warmup_s)
                self.warmed[cluster] = round(time.perf_counter() - started, 3)
                tqdm.write(f"warmed the {local.nodes}-node cluster at {target.bootstrap}: "
                           f"{acknowledged:,} records in {self.warmed[cluster]:.1f} s")
        return target

    def close(self) -> None:
        if self.started_here and self.local is not None:
            self.local.stop()
# --- end of cluster lifecycle --------------------------------------------------------------


# The host's slow spells last from seconds to minutes: in run O a durable trial was slow in 11
# of its 15 s and its re-run, started at once, in 10. So a run set aside by DISTURBED_RULE is
# run again only once the slowest core has read fast HOST_FAST_READINGS times in a row, a
# second apart, or HOST_WAIT_LIMIT_S has passed. Like the rule, this reads the box, never a
# result.
HOST_FAST_READINGS = 3
HOST_WAIT_LIMIT_S = 60.0


def wait_for_fast_host(best_us: float | None, probe: Callable[[], float] = slowest_core_probe_us,
                       sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic) -> tuple[float, bool]:
    """Wait until `probe` reads not slow against `best_us` (the plan's best probe; see
    rundir.slow_reading) HOST_FAST_READINGS times in a row, at most HOST_WAIT_LIMIT_S: seconds waited, and
    whether the host read fast. No best reading yet: no wait."""
    if best_us is None:
        return 0.0, True
    started = clock()
    fast = 0
    while True:
        fast = 0 if slow_reading(probe(), best_us) else fast + 1
        waited = clock() - started
        if fast >= HOST_FAST_READINGS:
            return round(waited, 3), True
        if waited >= HOST_WAIT_LIMIT_S:
            return round(waited, 3), False
        sleep(1.0)


class CellRunner:
    """Runs one cell through the run notebook: resumes past finished cells, records a
    failure in the cell's directory and goes on, never overwrites a result."""

    def __init__(self, plan: Plan, plan_dir: Path, clusters: CellClusters, resume: bool,
                 outcome: PlanOutcome, kernel: CellKernel) -> None:
        self.plan = plan
        self.kernel = kernel
        self.plan_dir = plan_dir
        self.clusters = clusters
        self.resume = resume
        self.outcome = outcome
        # The host speed probe's best reading over the plan's runs so far: a run whose every
        # second was slow has no fast reading of its own to be measured against.
        self.best_probe_us: float | None = None

    def note_host_speed(self, summary: dict[str, Any] | None) -> None:
        speed = ((summary or {}).get("results") or {}).get("host_speed") or {}
        best = speed.get("probe_best_us")
        if best is not None:
            self.best_probe_us = best if self.best_probe_us is None else min(best, self.best_probe_us)

    def __call__(self, cell: Cell) -> Path:
        run_dir = PlanDir(self.plan_dir).run(cell.id)
        cell_dir = run_dir.path
        outcome = self.outcome
        if self.resume and run_dir.finished():
            outcome.skipped.append(cell.id)
            return cell_dir
        if cell_dir.exists() and not self.resume:
            raise FileExistsError(f"{cell_dir} exists; results are never overwritten")
        if (run_dir / SUMMARY).exists():
            # Failed after its summary was written (or written by another schema): running
            # it again would overwrite a result, so it stays failed, with its own reason.
            outcome.failed[cell.id] = run_dir.failed()
            return cell_dir
        cell_dir.mkdir(parents=True, exist_ok=True)
        try:
            kafka = self.clusters.for_cell(cell.params)
            extra = {
                "bootstrap": kafka.bootstrap,
                "generator_ceiling_rps": generator_ceiling(self.plan, self.plan_dir, cell.params),
            }
            host_wait_s = 0.0
            for attempt in range(self.plan.rerun_disturbed + 1):
                if attempt:
                    aside = PlanDir(self.plan_dir).set_aside(cell.id)
                    outcome.set_aside.append(aside.name)
                    host_wait_s, fast = wait_for_fast_host(self.best_probe_us)
                    tqdm.write(f"cell {cell.id}: other load or a slow host disturbed it, run "
                               f"again ({aside.name} kept aside) after {host_wait_s:.0f} s "
                               + ("for the host to read fast" if fast else "of a slow host"))
                    cell_dir.mkdir(parents=True)
                started = time.perf_counter()
                execute_cell(cell, cell_dir, extra, kernel=self.kernel)
                record_timing(self.plan_dir, cell.id, time.perf_counter() - started, cell_dir,
                              host_wait_s)
                summary, _why = run_dir.outcome()
                best_before = self.best_probe_us
                self.note_host_speed(summary)
                if summary is None or not disturbed(summary, best_before):
                    break
            outcome.ran.append(cell.id)
        except Exception as exc:  # keep going: one failed combination must not stop a plan
            self.kernel.discard()
            error = run_dir.write_error(exc)
            outcome.failed[cell.id] = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            tqdm.write(f"cell {cell.id} failed: see {error}")
        return cell_dir


def record_timing(plan_dir: Path, cell_id: str, wall_s: float, cell_dir: Path,
                  host_wait_s: float = 0.0) -> None:
    """Add a cell's wall time, its load phase and the rest (`fixed_s`) to timings.json, and
    the seconds it waited for a fast host before it ran again (`host_wait_s`)."""
    summary, _why = RunDir(cell_dir).outcome()
    timings = dict((summary or {}).get("timings_s") or {})
    load = timings.get("load")
    PlanDir(plan_dir).add_timing(cell_id, {
        "wall_s": round(wall_s, 3), "load_s": load,
        "fixed_s": round(wall_s - load, 3) if load is not None else None,
        "host_wait_s": host_wait_s, "run_s": timings})


def top_up_undecided(plan: Plan, results_dir: Path, cells: list[Cell], run: CellRunner) -> None:
    """A capacity sweep's trials, topped up like a search's steps: per sweep line, the
    lowest rate that does not hold by search.HOLD_RULE, while its trials cannot decide it,
    gets one more trial (up to plan.most_trials()); then the next such rate. Two trials of a
    heavy-tailed p99 (8 and 35 ms at one rate) decide little, and without this the sweep
    read durable's capacity as half what the search found on the same build. Then the
    capacity is confirmed as the search's is (search.CONFIRM_RULE): the highest rate that
    held gets trials up to plan.most_trials(), and the next lower one when it no longer holds."""
    assert plan.slo_p99_ms is not None  # sweeps_capacity checked it
    combinations = dict(plan.combinations())
    lines: dict[str, dict[float, list[Cell]]] = {}
    for cell in cells:
        line = json.dumps({k: v for k, v in combinations[cell.config].items() if k != "rate"},
                          sort_keys=True, default=str)
        lines.setdefault(line, {}).setdefault(float(cell.params["rate"]), []).append(cell)
    progress = tqdm(desc=f"plan {plan.name} (trials for undecided rates)", unit="cell")
    most = plan.most_trials()

    def one_more(group: list[Cell], trial: int) -> tuple[list[str], search.Results]:
        config = group[-1].config
        cell = plan.cell(results_dir, len(cells) + 1, config, combinations[config], trial)
        cells.append(cell)
        group.append(cell)
        write_plan_json(plan, run.plan_dir, cells)
        run(cell)
        progress.update()
        return [cell.id], search.step_results([run.plan_dir / cell.id])

    def results_of(group: list[Cell]) -> search.Results:
        return search.step_results([run.plan_dir / c.id for c in group])

    for rates in lines.values():
        held: list[float] = []
        for rate in sorted(rates):
            group = rates[rate]
            decided = search.settle([c.id for c in group], results_of(group), plan.slo_p99_ms,
                                    most, lambda trial, group=group: one_more(group, trial))[2]
            if decided != search.HOLDS:
                break  # the capacity is below this rate: higher ones cannot change it
            held.append(rate)
        for rate in reversed(held):
            group = rates[rate]
            while len(group) < most:
                one_more(group, len(group) + 1)
            if search.verdict(results_of(group), plan.slo_p99_ms)[0] == search.HOLDS:
                break
    progress.close()


def run_search(plan: Plan, results_dir: Path, run: CellRunner) -> dict[str, search.Outcome]:
    """Bisect each configuration's rate (experiments/search.py). plan.json is rewritten
    after every step and search.json after every configuration, so a half-finished search
    can be read; resuming replays the same path over the finished cells."""
    assert plan.search is not None and plan.slo_p99_ms is not None  # load_plan checked both
    cells: list[Cell] = []
    outcomes: dict[str, search.Outcome] = {}
    progress = tqdm(desc=f"plan {plan.name} (search)", unit="cell")
    for config, values in plan.combinations():

        def probe(value: float, first: int, count: int, config: str = config,
                  values: dict[str, Any] = values) -> tuple[list[str], list[dict[str, Any] | None]]:
            step_cells = []
            for trial in range(first, first + count):
                cell = plan.cell(results_dir, len(cells) + 1, f"{config}_rate={value:g}",
                                 {**values, "rate": value}, trial)
                cells.append(cell)
                step_cells.append(cell)
                run(cell)
                progress.update()
            write_plan_json(plan, run.plan_dir, cells)
            dirs = [run.plan_dir / c.id for c in step_cells]
            return [c.id for c in step_cells], search.step_results(dirs)

        outcomes[config] = search.bisect(plan.search, plan.slo_p99_ms, probe, plan.trials)
        search.write_search(PlanDir(run.plan_dir) / SEARCH, plan.search, plan.slo_p99_ms,
                            outcomes)
    progress.close()
    return outcomes


def _shown_path(path: Path) -> str:
    """Relative to the repository when inside it: a shared report need not show a home dir."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(resolved)


def execute_analysis(plan_dir: Path, executed: Path, options: dict[str, Any] | None = None) -> None:
    """Execute analyze.ipynb over a plan's run directories into `executed` (its kernel's
    own output into analysis.log beside it); `options` are further notebook parameters
    (baseline_dir, loss_budget, p99_target_ms)."""
    with executed.with_suffix(".log").open("w") as log:
        pm.execute_notebook(
            str(ANALYZE_NOTEBOOK),
            str(executed),
            parameters={"plan_dir": _shown_path(plan_dir), **(options or {})},
            kernel_name="python3",
            cwd=str(REPO_ROOT),
            progress_bar=False,
            kernel_manager_class=kernel_manager_for_log(log),
        )


def build_report(plan_dir: Path, reports_dir: Path = Path("reports"),
                 options: dict[str, Any] | None = None) -> Path:
    """Execute analyze.ipynb over a plan's run directories and export one HTML file."""
    plan_name = plan_dir.name
    executed = PlanDir(plan_dir) / ANALYSIS
    if options and options.get("baseline_dir"):
        options = {**options, "baseline_dir": _shown_path(Path(options["baseline_dir"]))}
    execute_analysis(plan_dir, executed, options)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return export_html(
        executed,
        reports_dir.resolve() / f"{plan_name}-{stamp}.html",
        title=f"Kafka ingestion lab: {plan_name}",
    )
