"""The report's sections, one module per question (the interface: experiments/analysis/blocks.py).

notebooks/analyze.ipynb shows them in its order, one line each:
`report.show_section(sections.throughput, runs)`. A module here is found by its name on
first use, so a new section is two things:

1. `sections/<name>.py` defining `TITLE`, `INTRO` (Markdown) and
   `render(runs: Runs) -> list[Block]` (Text, Table, Chart, Takeaway from blocks.py), with
   its own aggregation, tables, figures and sentences beside it. `runs` is the plan as
   loaded once by the header cell (runs.py: `summaries` one row per run, `series`, `cpu`,
   `errors`, `histograms`, `raw` summaries, `plan_info`, `search`); reuse aggregate.py,
   sweep.py, capacity.py, _style.py and _format.py rather than copying them. Return no
   block with content (or `[]`) when the question does not apply to the plan, and the
   section shows nothing, not even its heading.
2. one cell `report.show_section(sections.<name>, runs)` in notebooks/analyze.ipynb, where
   it should appear in the report.

Its tests go to tests/experiments/analysis/sections/test_<name>_section.py; the notebook
test fails while a module here has no line in the notebook.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"no report section {name!r} in {__name__}") from None
