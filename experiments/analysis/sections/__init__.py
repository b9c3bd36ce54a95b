"""The report's sections, one module per question (the interface: experiments/analysis/blocks.py).

notebooks/analyze.ipynb shows them in its order, one line each:
`report.show_section(sections.throughput, runs)`. A module here is found by its name on
first use, so adding a section is its module and that one line, nothing else.
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
