"""Display in a notebook: a section's heading, introduction and blocks in order, empty blocks
left out, and nothing at all for a section with nothing to show."""

from __future__ import annotations

from types import SimpleNamespace

import IPython.display
import pandas as pd
import pytest
from matplotlib.figure import Figure

from experiments.analysis import Runs, report, sections
from experiments.analysis.blocks import Block, Chart, Table, Takeaway, Text
from experiments.analysis.sections import summary


def _displayed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(IPython.display, "display", lambda *items: shown.extend(str(i.data) for i in items))
    return shown


def _section(*blocks: Block) -> SimpleNamespace:
    return SimpleNamespace(TITLE="A question", INTRO="\nWhat it shows.\n", render=lambda runs: list(blocks))


def test_tables_render_without_index(runs: Runs) -> None:
    html = report.table_html(summary.table(runs))
    assert html.startswith("<table") and "<th>configuration</th>" in html
    assert report.caption("a_b") == "**Takeaway:** a\\_b"


def test_a_section_shows_its_heading_then_its_blocks_in_order(
        runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _displayed(monkeypatch)
    figure = Figure()
    figure.add_subplot().set_title("drawn")
    section = _section(Text("a note"), Takeaway(""), Table(pd.DataFrame()), Chart(None),
                       Table(pd.DataFrame({"configuration": ["durable"]})), Chart(figure), Takeaway("t_1"))
    report.show_section(section, runs)
    assert shown[0] == "## A question\n\nWhat it shows."
    assert shown[1] == "a note"
    assert shown[2].startswith("<table") and "durable" in shown[2]
    assert shown[3].startswith('<img alt="drawn"')
    assert shown[4] == "**Takeaway:** t\\_1"
    assert len(shown) == 5  # the empty takeaway, table and chart are left out


def test_a_section_with_nothing_to_show_shows_nothing(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _displayed(monkeypatch)
    report.show_section(_section(Takeaway(""), Table(pd.DataFrame()), Chart(None)), runs)
    report.show_section(sections.faults, runs)  # the fixture plan injected no fault
    assert shown == []


def test_the_header_opens_the_report(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _displayed(monkeypatch)
    report.show_header(runs, "Fixture")
    assert shown[0].startswith("# Fixture\n")
    assert shown[1].startswith("**Takeaway:** 2 of 8 cells produced no result")
    assert "007-mode=fire-and-forget\\_linger.ms=5-t1" in shown[1] and "<table" in shown[2]


def test_a_section_that_does_not_exist_is_named(runs: Runs) -> None:
    with pytest.raises(AttributeError, match="no report section 'no_such_question'"):
        _ = sections.no_such_question
