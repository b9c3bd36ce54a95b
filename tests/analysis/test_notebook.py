"""notebooks/analyze.ipynb: stored clean, runs under papermill, exports one HTML report
whose numbers are the result files' numbers."""

from __future__ import annotations

import html
import json
import re
import statistics
from pathlib import Path

import IPython.display
import nbformat
import pytest

from experiments.analysis import load_runs, report, takeaways
from experiments.report_export import export_html
from experiments.runner import ANALYZE_NOTEBOOK, execute_analysis

from .conftest import FAILED_CELL, FAULTS_PLAN, FIXTURE_PLAN, SATURATION_PLAN

NOTEBOOK = ANALYZE_NOTEBOOK
SECTIONS = (
    "Throughput over time",
    "Latency percentile spectrum",
    "Latency versus load",
    "Effect of producer settings",
    "CPU per component",
    "Delivery audit",
    "Summary",
)


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "output_type" not in NOTEBOOK.read_text()
    assert code[0].metadata.tags == ["parameters"]
    assert 'plan_dir = "results/smoke"' in code[0].source and 'title = ""' in code[0].source
    headings = [c.source.splitlines()[0] for c in notebook.cells if c.cell_type == "markdown"]
    assert headings == [f"## {section}" for section in SECTIONS]


@pytest.mark.slow
def test_report_from_the_fixture_plan(tmp_path: Path) -> None:
    executed = tmp_path / "analyze.ipynb"
    # The runner's own steps: execute from the repository root, then its HTML export.
    execute_analysis(FIXTURE_PLAN, executed)
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type in ("error", "stream")]

    page = export_html(executed, tmp_path / "report.html", title="fixture").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for section in SECTIONS:
        assert re.search(rf"<h2[^>]*>{section}<", page), section
    assert "load_runs(" not in page  # no code in the shared report
    figures = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert len(figures) == 5 and all(figures)  # embedded, each described by its titles

    # The header names the plan, machine, versions and commit from summary.json.
    summary = json.loads((FIXTURE_PLAN / "003-mode=fire-and-forget_defaults-t1" / "summary.json").read_text())
    provenance = summary["provenance"]
    for fact in (
        "Kafka ingestion lab: plan fixture",
        provenance["machine"]["cpu_model"],
        provenance["kafka_version"],
        provenance["python"],
        provenance["git"]["commit"][:12],
    ):
        assert fact in text, fact

    # Median throughput of fire-and-forget, computed here from the files, is printed.
    rates = [
        json.loads((FIXTURE_PLAN / name / "summary.json").read_text())["results"]["events_per_s"]
        for name in ("003-mode=fire-and-forget_defaults-t1", "006-mode=fire-and-forget_defaults-t2")
    ]
    assert f"{statistics.median(rates):,.0f}" == "4,012"
    assert "4,012" in text

    # Every takeaway appears exactly as computed from the same files.
    runs = load_runs(FIXTURE_PLAN)
    for takeaway in (
        takeaways.throughput,
        takeaways.ramp,
        takeaways.latency,
        takeaways.saturation,
        takeaways.setting_effect,
        takeaways.cpu,
        takeaways.audit,
        takeaways.spread,
        takeaways.failed,
    ):
        assert takeaway(runs) in text, takeaway.__name__
    assert FAILED_CELL in text
    for cell in report.summary_table(runs)["events/s (min-max)"]:
        assert cell in text
    # No fault in the plan: no Faults section.
    assert not re.search(r"<h2[^>]*>Faults<", page)


@pytest.mark.slow
def test_report_of_a_fault_plan_has_a_faults_section(tmp_path: Path) -> None:
    executed = tmp_path / "analyze.ipynb"
    execute_analysis(FAULTS_PLAN, executed)
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type in ("error", "stream")]
    page = export_html(executed, tmp_path / "report.html", title="faults").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert re.search(r"<h2[^>]*>Faults<", page)
    runs = load_runs(FAULTS_PLAN)
    assert takeaways.faults(runs) in text
    assert takeaways.replication(runs) in text
    figures = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert sum("Fault: " in alt for alt in figures) == 2


def _run_cells_in_process(plan_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute the notebook's code here (magics dropped), quick, for plans at the edges;
    returns the text of everything it displayed."""
    shown: list[str] = []

    def display(*items: object) -> None:
        shown.extend(str(getattr(item, "data", item)) for item in items)

    monkeypatch.setattr(IPython.display, "display", display)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict[str, object] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        exec(compile(code, "analyze.ipynb", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            namespace["plan_dir"] = str(plan_dir)
    return "\n".join(shown)


def test_notebook_copes_with_a_plan_without_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "001-mode=durable-t1").mkdir()
    (tmp_path / "001-mode=durable-t1" / "error.txt").write_text("LabError: no broker\n")
    shown = _run_cells_in_process(tmp_path, monkeypatch)
    assert "LabError: no broker" in shown
    assert "no run of this plan produced results" in shown


def test_notebook_shows_overload_capacity_and_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _run_cells_in_process(SATURATION_PLAN, monkeypatch)
    saturation = load_runs(SATURATION_PLAN)
    for text in (
        takeaways.throughput(saturation),
        takeaways.ramp(saturation),
        takeaways.saturation(saturation),
        takeaways.capacity(saturation),
    ):
        assert report._escape(text) in shown
    assert "durable, rate=3000 (OVERLOADED)" in shown
    assert "## Faults" not in shown
    shown = _run_cells_in_process(FAULTS_PLAN, monkeypatch)
    assert "## Faults" in shown
    assert report._escape(takeaways.faults(load_runs(FAULTS_PLAN))) in shown


def test_notebook_copes_with_a_bare_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the envelope: no series, cpu, histogram, audit, latency or CPU means."""
    summary = json.loads((FIXTURE_PLAN / "001-mode=durable_linger.ms=0-t1" / "summary.json").read_text())
    for key in ("latency_ms", "cpu_percent", "generator_bound", "generator_ceiling_rps"):
        summary["results"].pop(key)
    summary.pop("audit")
    summary.pop("provenance")
    (tmp_path / "001-mode=durable-t1").mkdir()
    (tmp_path / "001-mode=durable-t1" / "summary.json").write_text(json.dumps(summary))
    shown = _run_cells_in_process(tmp_path, monkeypatch)
    assert "durable sustained 1,779 events/s, one trial" in shown
    assert "no run recorded a delivery audit" in shown
    assert "**Machine:** unknown" in shown
