"""What a report section is, and what it hands the report: blocks, shown in order.

A section is a module of experiments/analysis/sections/ that answers one question and
defines

    TITLE: str                             # its heading in the report
    INTRO: str                             # Markdown under the heading: what it shows, how to read it
    def render(runs: Runs) -> list[Block]  # its figures, tables and takeaways, in order

`report.show_section(module, runs)` displays it in a notebook. A block with nothing in it
(no figure, an empty table, an empty sentence) is left out, and a section none of whose
blocks holds anything shows nothing at all, not even its heading: that is how a question
that does not apply to a plan (faults in a plan without faults) stays out of its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis.runs import Runs


@dataclass(frozen=True)
class Text:
    """Markdown written for the reader (a note, a sub-heading)."""

    markdown: str


@dataclass(frozen=True)
class Table:
    """A table of formatted strings, printed without its index."""

    frame: pd.DataFrame


@dataclass(frozen=True)
class Chart:
    """A figure; None when the plan holds nothing to draw for it."""

    figure: Figure | None


@dataclass(frozen=True)
class Takeaway:
    """One computed sentence under a figure or table; empty when its question does not apply."""

    text: str


Block = Text | Table | Chart | Takeaway


def has_content(block: Block) -> bool:
    match block:
        case Text(markdown=text) | Takeaway(text=text):
            return bool(text)
        case Table(frame=frame):
            return not frame.empty
        case Chart(figure=figure):
            return figure is not None


class Section(Protocol):
    """The interface a section module implements (module attributes, a module function)."""

    TITLE: str
    INTRO: str

    def render(self, runs: Runs) -> list[Block]: ...
