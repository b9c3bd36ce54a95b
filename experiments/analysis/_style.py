"""Shared look of the report's figures: colours, sizes, axes formats, legends.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot, so a
notebook displays each one exactly once, where the report shows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import seaborn as sns
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from experiments.analysis.runs import Runs
from experiments.rundir import COMPONENTS

# One colour family per mode, so every configuration of a mode reads as kin in every figure.
MODE_FAMILIES = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")
MACHINE_LABEL = "machine (all processes)"
# generator, service, broker, proxy (rundir.COMPONENTS), then the whole machine.
COMPONENT_COLOURS = dict(zip((*COMPONENTS, MACHINE_LABEL),
                             ("#8da0cb", "#fc8d62", "#66c2a5", "#e78ac3", "#bdbdbd"), strict=True))
WIDTH = 10.0
MAX_SIDE_LEGEND = 8
# Past this many characters a side legend takes more width than the axes can spare.
MAX_SIDE_LABEL = 32


@contextmanager
def style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        yield


def new_figure(height: float, ncols: int = 1, nrows: int = 1, **kwargs: object) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)  # type: ignore[arg-type]
    return figure, axes


def palette(runs: Runs) -> dict[str, tuple[float, float, float]]:
    """A colour per configuration: the mode picks the family, the rank within it the shade
    (from a medium to a dark tone, so no configuration is drawn in a near-white)."""
    colours: dict[str, tuple[float, float, float]] = {}
    for i, mode in enumerate(runs.modes):
        in_mode = set(runs.summaries.loc[runs.summaries["mode"] == mode, "configuration"])
        configs = [c for c in runs.configs if c in in_mode]
        cmap = colormaps[MODE_FAMILIES[i % len(MODE_FAMILIES)]]
        tones = np.linspace(0.45, 0.95, len(configs)) if len(configs) > 1 else [0.75]
        for config, tone in zip(configs, tones, strict=True):
            red, green, blue, _ = cmap(float(tone))
            colours[config] = (red, green, blue)
    return colours


def mode_palette(runs: Runs) -> dict[str, tuple[float, float, float]]:
    """One colour per mode: the dark tone of its family."""
    colours = {}
    for i, mode in enumerate(runs.modes):
        red, green, blue, _ = colormaps[MODE_FAMILIES[i % len(MODE_FAMILIES)]](0.8)
        colours[mode] = (red, green, blue)
    return colours


def legend_below(labels: list[str]) -> bool:
    return len(labels) > MAX_SIDE_LEGEND or max(map(len, labels), default=0) > MAX_SIDE_LABEL


def legend_height(base: float, entries: int, labels: list[str] | None = None) -> float:
    """Figure height leaving the axes their size when the legend moves below them."""
    below = legend_below(labels) if labels is not None else entries > MAX_SIDE_LEGEND
    return base + 0.5 + 0.21 * math.ceil(entries / 2) if below else base


def thousands(axis: Axes, which: str = "y") -> None:
    formatter = FuncFormatter(lambda value, _: f"{value:,.0f}")
    (axis.yaxis if which == "y" else axis.xaxis).set_major_formatter(formatter)


def log_ms(axis: Axes) -> None:
    """Log latency axis labelled 1, 2, 5, 10, 20, 50 ms rather than powers of ten."""
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def legend_outside(axis: Axes, title: str) -> None:
    """Legend right of the axes; with many entries, below the figure in two columns so the
    axes keep their width."""
    legend = axis.get_legend()
    if legend is None:
        return
    texts = [t.get_text() for t in legend.get_texts()]
    if not legend_below(texts):
        sns.move_legend(axis, "upper left", bbox_to_anchor=(1.01, 1), title=title, frameon=False)
        return
    handles, labels = legend.legend_handles, texts
    legend.remove()
    axis.figure.legend(handles, labels, loc="outside lower center", ncols=2, title=title, frameon=False)
