"""notebooks/analyze.ipynb: stored clean, runs under papermill, exports one HTML report
whose numbers are the result files' numbers."""

from __future__ import annotations

import html
import json
import pkgutil
import re
import statistics
from pathlib import Path

import IPython.display
import nbformat
import pytest

from experiments.analysis import capacity, header, load_runs, sections
from experiments.analysis._format import escape_markdown
from experiments.analysis.sections import (
    audit,
    cpu,
    faults,
    latency,
    saturation,
    settings,
    summary,
    throughput,
)
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
# Shown only for plans that injected a fault, between the audit and the summary.
FAULTS = "Faults"
SECTION_LINE = re.compile(r"report\.show_section\(sections\.(\w+), runs\)")


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert "output_type" not in NOTEBOOK.read_text()
    assert code[0].metadata.tags == ["parameters"]
    assert 'plan_dir = "results/smoke"' in code[0].source and 'title = ""' in code[0].source
    # A header cell, then one line per section: a section's title and text live in its module.
    assert [c.cell_type for c in notebook.cells] == ["code"] * len(code)
    assert "report.show_header(runs, title)" in code[1].source
    lines = [SECTION_LINE.fullmatch(cell.source) for cell in code[2:]]
    assert all(lines), [cell.source for cell in code[2:]]
    names = [line.group(1) for line in lines if line]
    titles = [getattr(sections, name).TITLE for name in names]
    known = [*SECTIONS[:-1], FAULTS, SECTIONS[-1]]
    assert [title for title in titles if title in known] == known  # in this order, others between
    # Every section module is shown, once: one that is not would never reach a report.
    assert sorted(names) == sorted(m.name for m in pkgutil.iter_modules(sections.__path__))


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
    run_dir = FIXTURE_PLAN / "003-mode=fire-and-forget_defaults-t1"
    summary_json = json.loads((run_dir / "summary.json").read_text())
    provenance = summary_json["provenance"]
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
        throughput.takeaway,
        throughput.ramp_takeaway,
        latency.takeaway,
        saturation.takeaway,
        settings.takeaway,
        cpu.takeaway,
        audit.takeaway,
        summary.spread_takeaway,
        header.failed,
    ):
        assert takeaway(runs) in text, takeaway.__name__
    assert FAILED_CELL in text
    for cell in summary.table(runs)["events/s (min-max)"]:
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
    assert faults.takeaway(runs) in text
    assert faults.replication_takeaway(runs) in text
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
    saturated = load_runs(SATURATION_PLAN)
    for text in (
        throughput.takeaway(saturated),
        throughput.ramp_takeaway(saturated),
        saturation.takeaway(saturated),
        capacity.takeaway(saturated),
    ):
        assert escape_markdown(text) in shown
    assert "durable, rate=3000 (OVERLOADED)" in shown
    assert "## Faults" not in shown
    shown = _run_cells_in_process(FAULTS_PLAN, monkeypatch)
    assert "## Faults" in shown
    assert escape_markdown(faults.takeaway(load_runs(FAULTS_PLAN))) in shown


def test_notebook_copes_with_a_bare_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the envelope: no series, cpu, histogram, audit, latency or CPU means."""
    bare = json.loads((FIXTURE_PLAN / "001-mode=durable_linger.ms=0-t1" / "summary.json").read_text())
    for key in ("latency_ms", "cpu_percent", "generator_bound", "generator_ceiling_rps"):
        bare["results"].pop(key)
    bare.pop("audit")
    bare.pop("provenance")
    (tmp_path / "001-mode=durable-t1").mkdir()
    (tmp_path / "001-mode=durable-t1" / "summary.json").write_text(json.dumps(bare))
    shown = _run_cells_in_process(tmp_path, monkeypatch)
    assert "durable sustained 1,779 events/s, one trial" in shown
    assert "no run recorded a delivery audit" in shown
    assert "**Machine:** unknown" in shown
