"""Every section: the interface (blocks.py), figures that describe themselves, and plans too
small, empty or partial for some questions."""

from __future__ import annotations

import io
import json
import pkgutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from matplotlib.figure import Figure

from experiments.analysis import Runs, header, load_runs, sections
from experiments.analysis.blocks import Chart, Table, Takeaway, Text, has_content
from experiments.analysis.sections import audit, cpu, latency, saturation, settings, summary, throughput

from ..conftest import RUN_NAMES, MakePlan

SECTION_MODULES = [getattr(sections, m.name) for m in pkgutil.iter_modules(sections.__path__)]
FIGURES = (throughput.figure, latency.figure, saturation.closed_figure, settings.figure, cpu.figure)
TAKEAWAYS = (
    throughput.takeaway,
    latency.takeaway,
    saturation.takeaway,
    settings.takeaway,
    cpu.takeaway,
    audit.takeaway,
    summary.spread_takeaway,
)


def _render(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.mark.parametrize("section", SECTION_MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_section_implements_the_interface(section: ModuleType, runs: Runs, fault_runs: Runs) -> None:
    assert isinstance(section.TITLE, str) and section.TITLE
    assert isinstance(section.INTRO, str) and section.INTRO.strip()
    for plan in (runs, fault_runs):
        blocks = section.render(plan)
        assert all(isinstance(block, Text | Table | Chart | Takeaway) for block in blocks)


@pytest.mark.parametrize("plot", FIGURES, ids=lambda f: f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}")
def test_every_figure_draws_the_fixture(runs: Runs, plot: Callable[[Runs], Figure | None]) -> None:
    figure = plot(runs)
    assert isinstance(figure, Figure)
    assert _render(figure).startswith(b"\x89PNG")
    assert figure.get_suptitle() or all(axis.get_title() for axis in figure.axes)
    for axis in figure.axes:
        assert axis.get_xlabel() or axis.get_ylabel()


@pytest.mark.parametrize(("names", "settings_drawn"),
                         [(RUN_NAMES[:1], False), ((RUN_NAMES[0], RUN_NAMES[2]), True)])
def test_small_plans_draw(make_plan: MakePlan, names: tuple[str, ...], settings_drawn: bool) -> None:
    runs = load_runs(make_plan(names))
    for plot in FIGURES:
        figure = plot(runs)
        if plot is settings.figure and not settings_drawn:
            assert figure is None  # one producer setting only: nothing to compare
            continue
        assert figure is not None, plot.__module__
        assert _render(figure).startswith(b"\x89PNG")


def test_nothing_to_draw(tmp_path: Path) -> None:
    (tmp_path / "001-x-t1").mkdir()
    runs = load_runs(tmp_path)
    assert all(plot(runs) is None for plot in FIGURES)
    for section in SECTION_MODULES:
        shown = [b for b in section.render(runs) if has_content(b) and not isinstance(b, Takeaway)]
        assert shown == [], section.__name__


def test_no_results(tmp_path: Path) -> None:
    (tmp_path / "001-x-t1").mkdir()
    runs = load_runs(tmp_path)
    for takeaway in (
        throughput.takeaway,
        saturation.takeaway,
        cpu.takeaway,
        audit.takeaway,
        summary.spread_takeaway,
    ):
        assert takeaway(runs) == "no run of this plan produced results"
    assert latency.takeaway(runs) == "no latency histogram was recorded"
    assert throughput.ramp_takeaway(runs) == "no per-second series was recorded"
    assert header.failed(runs) == (
        "1 of 1 cells produced no result and is left out: 001-x-t1 (no summary.json and no error.txt)"
    )


# What each dropped summary section feeds: the sentence that must say it is missing, and the
# other sentences that read it too; every other sentence stays as it was.
MISSING = {
    "audit": (audit.takeaway, "no run recorded a delivery audit; 6 runs have no audit", ()),
    "cpu_percent": (cpu.takeaway, "durable, linger.ms=0: generator n/a, service n/a, broker n/a",
                    (summary.spread_takeaway,)),  # events per service core reads the CPU
    "latency_ms": (saturation.takeaway, "no run reported both its throughput and its p99",
                   (settings.takeaway, summary.spread_takeaway)),
}


@pytest.mark.parametrize("drop", MISSING)
def test_missing_sections_are_said_and_leave_the_other_questions_alone(
        make_plan: MakePlan, runs: Runs, drop: str) -> None:
    plan = make_plan(RUN_NAMES)
    for name in RUN_NAMES:
        summary_json = json.loads((plan / name / "summary.json").read_text())
        summary_json.pop(drop, None)
        summary_json["results"].pop(drop, None)
        (plan / name / "summary.json").write_text(json.dumps(summary_json))
    partial = load_runs(plan)
    reader, said, also = MISSING[drop]
    assert reader(partial).startswith(said)
    for takeaway in TAKEAWAYS:
        if takeaway is not reader and takeaway not in also:
            assert takeaway(partial) == takeaway(runs), takeaway.__module__
