"""Display of the report in a notebook: the header, then one section per call.

`show_section(sections.throughput, runs)` is the whole of a section's cell in
notebooks/analyze.ipynb; the HTML export keeps what is displayed here and drops the code.
Tables are printed without their index and figures as embedded PNGs described by their
titles, so the report is one file that screen readers can describe too.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis import header
from experiments.analysis._format import escape_markdown
from experiments.analysis.blocks import Block, Chart, Section, Table, Takeaway, Text, has_content
from experiments.analysis.runs import Runs


def show_header(runs: Runs, title: str = "") -> None:
    """The report's opening: title, plan, machine, versions, and the cells without a result."""
    show(*header.render(runs, title))


def show_section(section: Section, runs: Runs) -> None:
    """The section's heading and introduction, then its blocks; nothing at all when none of
    its blocks has anything to show for this plan."""
    blocks = [block for block in section.render(runs) if has_content(block)]
    if blocks:
        show(Text(f"## {section.TITLE}\n\n{section.INTRO.strip()}"), *blocks)


def show(*blocks: Block) -> None:
    """Display blocks in a notebook, in order; empty ones are skipped."""
    from IPython.display import HTML, Markdown, display

    for block in blocks:
        if not has_content(block):
            continue
        match block:
            case Text(markdown=text):
                display(Markdown(text))
            case Takeaway(text=text):
                display(Markdown(caption(text)))
            case Table(frame=frame):
                display(HTML(table_html(frame)))
            case Chart(figure=figure) if figure is not None:
                display(HTML(figure_html(figure)))


def caption(text: str) -> str:
    """A takeaway as the Markdown line printed under its figure."""
    return f"**Takeaway:** {escape_markdown(text)}"


def table_html(table: pd.DataFrame) -> str:
    """HTML of a formatted table, without the index."""
    return table.to_html(index=False, border=0, escape=True, classes="lab-table")


def figure_html(figure: Figure, dpi: int = 100) -> str:
    """The figure as an embedded PNG with alt text (its titles)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    titles = [figure.get_suptitle(), *(axis.get_title() for axis in figure.axes)]
    alt = "; ".join(t for t in titles if t) or "figure"
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" '
        'style="max-width: 100%; height: auto;"/>'
    )
