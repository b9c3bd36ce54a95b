"""Figures of a plan. Each function takes the loaded runs and returns a Figure (or None
when the plan holds nothing to draw), with units on every axis and the spread across
trials drawn, never hidden."""

from __future__ import annotations

import math

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._style import (
    COMPONENT_COLOURS,
    MACHINE_LABEL,
    legend_height,
    legend_outside,
    log_ms,
    mode_palette,
    new_figure,
    palette,
    style,
    thousands,
)
from experiments.analysis.load import COMPONENTS, Runs

__all__ = [
    "cpu_per_component",
    "latency_vs_throughput",
    "palette",
    "percentile_spectrum",
    "setting_effect",
    "throughput_over_time",
]

NINES_TICKS = {
    50.0: "50%",
    90.0: "90%",
    99.0: "99%",
    99.9: "99.9%",
    99.99: "99.99%",
    99.999: "99.999%",
    99.9999: "99.9999%",
}


def _trial_counts(runs: Runs) -> dict[str, str]:
    counts = runs.summaries.groupby("config", sort=False).size()
    return {c: f"{c} ({n} trial{'s' if n > 1 else ''})" for c, n in counts.items()}


def throughput_over_time(runs: Runs) -> Figure | None:
    """Events accepted per second for each configuration; warm-up shaded."""
    series = runs.series
    if series.empty:
        return None
    labels = _trial_counts(runs)
    data = series.assign(label=series["config"].map(labels))
    colours = {labels[c]: colour for c, colour in palette(runs).items() if c in labels}
    with style():
        figure, axes = new_figure(legend_height(4.5, len(labels)))
        axis = axes[0, 0]
        first = int(series["second"].min())
        if first < 0:
            axis.axvspan(first - 0.5, -0.5, color="0.92", zorder=0)
            axis.text(
                first - 0.3,
                0.02,
                "warm-up\n(not measured)",
                transform=axis.get_xaxis_transform(),
                fontsize=8,
                color="0.35",
                va="bottom",
            )
        sns.lineplot(
            data=data,
            x="second",
            y="events_accepted",
            hue="label",
            hue_order=[labels[c] for c in runs.configs if c in labels],
            palette=colours,
            estimator="median",
            errorbar=("pi", 100),
            marker="o",
            markersize=4,
            ax=axis,
        )
        axis.set_ylim(bottom=0)
        thousands(axis)
        axis.set_xlabel("second of the run (0 = start of the measured window)")
        axis.set_ylabel("events accepted per second")
        axis.set_title("Events accepted per second (line: median of trials; band: min-max)")
        legend_outside(axis, "configuration")
    return figure


def _nines(percentile: float | np.ndarray) -> float | np.ndarray:
    """x position of a percentile on the 'nines' axis: 90% -> 1, 99% -> 2, 99.9% -> 3."""
    return -np.log10(1 - np.asarray(percentile) / 100)


def percentile_spectrum(runs: Runs) -> Figure | None:
    """Latency at each percentile of the merged histograms, on a log 'nines' axis."""
    spectrum = aggregate.percentile_spectrum(runs)
    if spectrum.empty:
        return None
    colours = palette(runs)
    x_max = 0.0
    with style():
        labels = list(dict.fromkeys(spectrum["config"]))
        figure, axes = new_figure(legend_height(4.8, len(labels), labels))
        axis = axes[0, 0]
        for config, group in spectrum.groupby("config", sort=False):
            inner = group[group["resolved"] & (group["percentile"] < 100)]
            x = _nines(inner["percentile"].to_numpy())
            axis.plot(
                x,
                inner["latency_ms"],
                marker="o",
                markersize=4,
                color=colours[config],
                label=f"{config} ({group['samples'].iloc[0]:,} requests)",
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


def latency_vs_throughput(runs: Runs) -> Figure | None:
    """p50 and p99 against achieved events/s: one point per run, a line through medians."""
    s = runs.summaries
    if s.empty:
        return None
    table = aggregate.config_table(runs)
    colours, mode_colours = palette(runs), mode_palette(runs)
    with style():
        figure, axes = new_figure(
            legend_height(4.5, len(runs.configs) + len(runs.modes)), ncols=2, sharey=True
        )
        for axis, metric, label in zip(axes[0], ("p50_ms", "p99_ms"), ("p50", "p99"), strict=True):
            for mode, group in table.groupby("mode", sort=False):
                group = group.sort_values("events_per_s_median")
                axis.plot(
                    group["events_per_s_median"],
                    group[f"{metric}_median"],
                    color=mode_colours[mode],
                    linewidth=1.5,
                    alpha=0.7,
                    label=f"{mode} (median)",
                )
            sns.scatterplot(
                data=s,
                x="events_per_s",
                y=metric,
                hue="config",
                hue_order=list(runs.configs),
                palette=colours,
                s=45,
                edgecolor="white",
                ax=axis,
                legend=axis is axes[0, 1],
            )
            log_ms(axis)
            axis.set_xlim(left=0, right=s["events_per_s"].max() * 1.1)
            thousands(axis, "x")
            axis.set_xlabel("achieved events/s")
            axis.set_ylabel("latency (ms, log scale)")
            axis.set_title(f"{label} latency versus throughput")
        legend_outside(axes[0, 1], "point: one run; line: median")
        if axes[0, 0].get_legend() is not None:
            axes[0, 0].get_legend().remove()
    return figure


def setting_effect(runs: Runs) -> Figure | None:
    """Throughput and p99 for each producer-settings bundle, per mode.

    Only modes measured with two or more bundles are drawn: a mode measured with one only
    would mix the effect of the mode with that of the settings.
    """
    if not aggregate.producer_settings(runs) or runs.summaries.empty:
        return None
    s = runs.summaries.assign(variant=aggregate.producer_variants(runs, runs.summaries))
    counts = s.groupby("mode")["variant"].nunique()
    modes = [m for m in runs.modes if counts.get(m, 0) > 1]
    if not modes:
        return None
    s = s[s["mode"].isin(modes)]
    # Bundles in plan order, the default first: it is the baseline of every comparison.
    order = sorted(dict.fromkeys(s["variant"]), key=lambda v: v != "default")
    mode_colours = mode_palette(runs)
    with style():
        figure, axes = new_figure(1.2 + 0.45 * len(order) * max(len(modes), 1.5), ncols=2, sharey=True)
        for axis, metric, label in zip(
            axes[0],
            ("events_per_s", "p99_ms"),
            ("events accepted per second", "p99 latency (ms)"),
            strict=True,
        ):
            common = {
                "data": s,
                "x": metric,
                "y": "variant",
                "hue": "mode",
                "order": order,
                "hue_order": modes,
                "palette": mode_colours,
                "ax": axis,
            }
            dodge = 0.4 if len(modes) > 1 else False
            sns.stripplot(**common, dodge=len(modes) > 1, alpha=0.6, size=5, legend=False)
            sns.pointplot(
                **common, dodge=dodge, estimator="median", errorbar=None, markers="D", linestyles="none"
            )
            axis.set_xlim(0, s[metric].max() * 1.1)
            if metric == "events_per_s":
                thousands(axis, "x")
            axis.set_xlabel(label)
            axis.set_ylabel("producer settings")
            axis.set_title("throughput" if metric == "events_per_s" else "p99 latency")
        if axes[0, 0].get_legend() is not None:
            axes[0, 0].get_legend().remove()
        legend_outside(axes[0, 1], "mode")
        figure.suptitle("Effect of producer settings (dot: one run; diamond: median of trials)")
    return figure


def cpu_per_component(runs: Runs) -> Figure | None:
    """Median CPU of generator, service, broker and the whole machine, per configuration."""
    s = runs.summaries
    if s.empty:
        return None
    long = s.melt(
        id_vars=["config"],
        value_vars=[f"cpu_{c}" for c in (*COMPONENTS, "machine")],
        var_name="component",
        value_name="cpu_percent",
    )
    long["component"] = long["component"].str.removeprefix("cpu_").replace({"machine": MACHINE_LABEL})
    bound = s.groupby("config", sort=False)["generator_bound"].agg(
        lambda b: int(b.fillna(False).astype(bool).sum())
    )
    trials = s.groupby("config", sort=False).size()
    names = {c: c + (f"\n(generator-bound {bound[c]}/{trials[c]})" if bound[c] else "") for c in runs.configs}
    long["config"] = long["config"].map(names)
    with style():
        # Horizontal bars: configuration labels stay readable however many there are.
        figure, axes = new_figure(1.3 + 0.6 * len(names))
        axis = axes[0, 0]
        sns.barplot(
            data=long,
            y="config",
            x="cpu_percent",
            hue="component",
            order=list(names.values()),
            hue_order=[*COMPONENTS, MACHINE_LABEL],
            palette=COMPONENT_COLOURS,
            estimator="median",
            errorbar=("pi", 100),
            capsize=0.1,
            err_kws={"linewidth": 1},
            ax=axis,
        )
        cores = s["cores"].dropna()
        if len(cores):
            capacity = float(cores.max()) * 100
            axis.axvline(capacity, color="0.3", linestyle="--", linewidth=1)
            axis.text(
                capacity,
                1.0,
                f"machine capacity: {int(cores.max())} cores ",
                transform=axis.get_xaxis_transform(),
                ha="right",
                va="bottom",
                fontsize=8,
            )
            axis.set_xlim(0, capacity * 1.04)
        axis.set_ylabel("")
        axis.set_xlabel("CPU (%, 100 = one core)")
        figure.suptitle(
            "Mean CPU per component over the measured window (bar: median of trials; whisker: min-max)"
        )
        # Below the figure: a side legend would take width from the bars.
        handles, labels = axis.get_legend_handles_labels()
        axis.legend_ = None
        figure.legend(handles, labels, loc="outside lower center", ncols=4, frameon=False)
    return figure
