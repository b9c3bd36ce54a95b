"""Latency percentile spectrum: under which latency each share of requests completed,
from the merged histograms of a configuration's trials (an exact merge, never an average of
percentiles)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_count, fmt_ms, fmt_num
from experiments.analysis._style import legend_height, legend_outside, log_ms, new_figure, palette, style
from experiments.analysis.blocks import Block, Chart, Table, Takeaway
from experiments.analysis.runs import Runs

TITLE = "Latency percentile spectrum"
INTRO = """
The latency under which each share of requests completed, read from the merged HdrHistogram of
all trials of a configuration (exact merge, not an average of percentiles). Each step to the
right is one more nine; percentiles that need more requests than were recorded are left out.
"""


def render(runs: Runs) -> list[Block]:
    return [Chart(figure(runs)), Table(table(runs)), Takeaway(takeaway(runs))]


NINES_TICKS = {
    50.0: "50%",
    90.0: "90%",
    99.0: "99%",
    99.9: "99.9%",
    99.99: "99.99%",
    99.999: "99.999%",
    99.9999: "99.9999%",
}


# Percentiles of the spectrum table, with their column titles.
SPECTRUM_COLUMNS = {
    0.0: "min",
    50.0: "p50",
    75.0: "p75",
    90.0: "p90",
    99.0: "p99",
    99.9: "p99.9",
    99.99: "p99.99",
    99.999: "p99.999",
    100.0: "max",
}


def percentile_spectrum(runs: Runs, percentiles: Sequence[float] = aggregate.PERCENTILES) -> pd.DataFrame:
    """Long table: config, mode, percentile, latency_ms, samples, resolved.

    `resolved` is False where fewer samples than the percentile needs were recorded
    (p99.999 of 10,000 latencies is just the maximum): plots leave those points out.
    """
    modes = aggregate.first_by_config(runs.summaries, "mode")
    rows = []
    for config, histogram in aggregate.merged_histograms(runs).items():
        samples = histogram.get_total_count()
        for p, value in aggregate.percentiles_ms(histogram, percentiles).items():
            resolved = p in (0.0, 100.0) or samples * (1 - p / 100) >= 1
            rows.append(
                {
                    "configuration": config,
                    "mode": modes.get(config),
                    "percentile": p,
                    "latency_ms": value,
                    "samples": samples,
                    "resolved": resolved,
                }
            )
    columns = ["configuration", "mode", "percentile", "latency_ms", "samples", "resolved"]
    return pd.DataFrame(rows, columns=columns)


def _nines(percentile: float | np.ndarray) -> float | np.ndarray:
    """x position of a percentile on the 'nines' axis: 90% -> 1, 99% -> 2, 99.9% -> 3."""
    return -np.log10(1 - np.asarray(percentile) / 100)


def figure(runs: Runs) -> Figure | None:
    """Latency at each percentile of the merged histograms, on a log 'nines' axis."""
    spectrum = percentile_spectrum(runs)
    if spectrum.empty:
        return None
    colours = palette(runs)
    marks = aggregate.overload_marks(runs)
    x_max = 0.0
    with style():
        labels = list(dict.fromkeys(spectrum["configuration"]))
        figure, axes = new_figure(legend_height(4.8, len(labels), labels))
        axis = axes[0, 0]
        for config, group in spectrum.groupby("configuration", sort=False):
            inner = group[group["resolved"] & (group["percentile"] < 100)]
            x = _nines(inner["percentile"].to_numpy())
            axis.plot(
                x,
                inner["latency_ms"],
                marker="o",
                markersize=4,
                color=colours[config],
                label=f"{marks.get(config, config)} ({group['samples'].iloc[0]:,} requests)",
            )
            # The maximum is the top 1/N of N samples: draw it there, dotted, marked x.
            top = group[group["percentile"] == 100].iloc[0]
            x_top = math.log10(max(top["samples"], 1))
            axis.plot(
                [x[-1], x_top],
                [inner["latency_ms"].iloc[-1], top["latency_ms"]],
                linestyle=":",
                marker="x",
                markevery=[1],
                color=colours[config],
            )
            x_max = max(x_max, x_top)
        ticks = [p for p in NINES_TICKS if _nines(p) <= x_max + 1e-9]
        axis.set_xticks([float(_nines(p)) for p in ticks], [NINES_TICKS[p] for p in ticks])
        log_ms(axis)
        axis.set_xlabel("percentile (log scale of nines; leftmost point = min; x = max, placed at 1 - 1/N)")
        axis.set_ylabel("latency (ms, log scale)")
        axis.set_title("Latency percentile spectrum (merged histograms of all trials)")
        axis.legend()
        legend_outside(axis, "configuration")
    return figure


def table(runs: Runs) -> pd.DataFrame:
    """Merged-histogram latency (ms) per configuration at every spectrum percentile."""
    spectrum = percentile_spectrum(runs)
    marks = aggregate.overload_marks(runs)
    rows = []
    for config, group in spectrum.groupby("configuration", sort=False):
        row = {"configuration": marks.get(config, config), "requests": fmt_count(group["samples"].iloc[0])}
        for _, point in group.iterrows():
            value = fmt_num(point["latency_ms"]) if point["resolved"] else "-"
            row[SPECTRUM_COLUMNS.get(point["percentile"], str(point["percentile"]))] = value
        rows.append(row)
    return pd.DataFrame(rows)


def takeaway(runs: Runs) -> str:
    """p99 and p99.9 of each configuration, from the merged histograms of its trials."""
    spectrum = percentile_spectrum(runs, (99.0, 99.9))
    if spectrum.empty:
        return "no latency histogram was recorded"

    def value(config: str, p: float) -> str:
        row = spectrum[(spectrum["configuration"] == config) & (spectrum["percentile"] == p)].iloc[0]
        return fmt_ms(row["latency_ms"]) if row["resolved"] else "n/a (too few samples)"

    configs = list(dict.fromkeys(spectrum["configuration"]))
    if len(configs) == 1:
        config = configs[0]
        samples = fmt_count(spectrum["samples"].iloc[0])
        trials = int((runs.summaries["configuration"] == config).sum())
        source = "histogram of its one trial" if trials == 1 else f"merged histogram of {trials} trials"
        return (
            f"p99 of {config} is {value(config, 99.0)}; p99.9 {value(config, 99.9)} "
            f"({source}, {samples} requests)"
        )
    parts = [f"{c} {value(c, 99.0)} / {value(c, 99.9)}" for c in configs]
    return "p99 / p99.9 from the merged histograms of all trials: " + "; ".join(parts)
