"""The smoke plan end to end: papermill cells against the real broker, then the HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from experiments.kafka import BOOTSTRAP_ENV
from experiments.plans import load_plan
from experiments.runner import run_plan

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RUN_FILES = [
    "summary.json",
    "series.csv",
    "cpu.csv",
    "latency.hdr",
    "acks.csv",
    "audit.json",
    "metrics.prom",
    "service.log",
    "notebook.ipynb",
]
SECTIONS = [
    "Throughput over time",
    "Latency percentile spectrum",
    "Latency versus load",
    "Effect of producer settings",
    "CPU per component",
    "Delivery audit",
    "Summary",
]


@pytest.fixture(scope="module")
def smoke(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("smoke")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BOOTSTRAP_ENV, bootstrap)
        outcome = run_plan("smoke", base / "results", base / "reports")
    assert outcome.failed == {}, outcome.failed
    assert outcome.report is not None
    return {"plan_dir": outcome.plan_dir, "report": outcome.report}


def test_every_cell_ran_and_wrote_what_the_summary_promises(smoke: dict[str, Path]) -> None:
    cells = load_plan("smoke").cells(smoke["plan_dir"].parent)
    assert len(cells) == 2
    for cell in cells:
        run_dir = smoke["plan_dir"] / cell.id
        missing = [name for name in RUN_FILES if not (run_dir / name).exists()]
        assert missing == [], (cell.id, missing)
        executed = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["schema"] == "lab.run/2"
        assert summary["service"]["mode"] == cell.params["mode"]
        assert summary["results"]["ok"] > 0
        assert summary["audit"]["lost"] == 0
        assert summary["audit"]["acknowledged"] == summary["audit"]["present"]
        assert summary["provenance"]["git"]["commit"]


def test_report_has_every_section_and_the_numbers_of_the_files(smoke: dict[str, Path]) -> None:
    html = smoke["report"].read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    for section in SECTIONS:
        assert section in text, section
    assert "<img" in html and "data:image/png;base64" in html
    assert "import " not in text  # no code cells in a shared report
    for run_dir in sorted(p for p in smoke["plan_dir"].iterdir() if (p / "summary.json").exists()):
        summary = json.loads((run_dir / "summary.json").read_text())
        acknowledged = summary["audit"]["acknowledged"]
        assert f"{acknowledged:,}" in text or str(acknowledged) in text, (run_dir.name, acknowledged)


def test_explore_notebook_runs_for_a_newcomer(
    bootstrap: str, tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill as pm

    monkeypatch.setenv(BOOTSTRAP_ENV, bootstrap)
    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(
        str(repo_root / "notebooks" / "explore.ipynb"),
        str(out),
        parameters={"duration_s": 2.0, "warmup_s": 0.5, "connections": 4, "results_root": str(tmp_path)},
        kernel_name="python3",
        cwd=str(repo_root),
        progress_bar=False,
    )
    executed = nbformat.read(out, as_version=4)
    printed = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "durable:" in printed and "fire-and-forget:" in printed
    assert "lost 0" in printed
    assert len(list(tmp_path.glob("explore-*/*/summary.json"))) == 2
