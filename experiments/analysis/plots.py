"""Figures of a plan. Each function takes the loaded runs and returns a Figure (or None
when the plan holds nothing to draw), with units on every axis and the spread across
trials drawn, never hidden."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
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
from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs
from experiments.rundir import COMPONENTS, CPU_KEYS

__all__ = [
    "cpu_per_component",
    "fault_timelines",
    "latency_vs_throughput",
    "palette",
    "percentile_spectrum",
    "saturation",
    "search_path",
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
    """Legend labels: configuration, trial count and the overload mark."""
    counts = runs.summaries.groupby("configuration", sort=False).size()
    marks = aggregate.overload_marks(runs)
    return {c: f"{c} ({n} trial{'s' if n > 1 else ''})" + marks[c].removeprefix(c) for c, n in counts.items()}


def _shade_phases(axis: Axes, first: int, window_end: float | None, last: int) -> None:
    """Warm-up and drain shaded grey: neither counts as throughput."""
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
    if window_end is not None and last >= window_end:
        axis.axvspan(window_end - 0.5, last + 0.5, facecolor="0.94", hatch="//", edgecolor="0.85", zorder=0)
        axis.text(
            window_end - 0.3,
            0.02,
            "drain\n(not counted)",
            transform=axis.get_xaxis_transform(),
            fontsize=8,
            color="0.35",
            va="bottom",
        )


def throughput_over_time(runs: Runs) -> Figure | None:
    """Events accepted per second of COMPLETION for each configuration; warm-up and drain
    shaded; the offered rate dotted for open-loop configurations."""
    series = runs.series
    if series.empty:
        return None
    labels = _trial_counts(runs)
    data = series.assign(label=series["configuration"].map(labels))
    colours = {labels[c]: colour for c, colour in palette(runs).items() if c in labels}
    windows = runs.summaries["measured_s"].dropna()
    window_end = float(windows.max()) if len(windows) else None
    with style():
        figure, axes = new_figure(legend_height(4.5, len(labels), list(labels.values())))
        axis = axes[0, 0]
        _shade_phases(axis, int(series["second"].min()), window_end, int(series["second"].max()))
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
        table = aggregate.config_table(runs)
        for _, row in table[table["open_loop"]].iterrows():
            if row["configuration"] in labels and not math.isnan(row["offered_rps_median"]):
                axis.axhline(
                    row["offered_rps_median"],
                    color=colours[labels[row["configuration"]]],
                    linestyle=":",
                    linewidth=1,
                )
        axis.set_ylim(bottom=0)
        thousands(axis)
        axis.set_xlabel("second of the run by completion time (0 = start of the measured window)")
        axis.set_ylabel("events accepted per second")
        title = "Events accepted per second of completion (line: median of trials; band: min-max"
        axis.set_title(title + ("; dotted: offered rate)" if table["open_loop"].any() else ")"))
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


def latency_vs_throughput(runs: Runs) -> Figure | None:
    """Closed loop: p50 and p99 against achieved events/s, one point per run, a line through
    medians. Open-loop runs are drawn against their offered rate instead (`saturation`):
    against the achieved rate a collapsing service folds the curve back."""
    s = runs.summaries
    if s.empty:
        return None
    s = s[s["load_model"] != "open"]
    if s.empty:
        return None
    table = aggregate.config_table(runs)
    table = table[table["configuration"].isin(set(s["configuration"]))]
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
                hue="configuration",
                hue_order=[c for c in runs.configs if c in set(s["configuration"])],
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
            over = s[s["overloaded"].map(lambda v: not is_missing(v) and bool(v))]
            if len(over):
                # Overloaded runs crossed out: their throughput is not a setting's effect.
                axis.scatter(
                    over[metric],
                    [order.index(v) for v in over["variant"]],
                    marker="X",
                    s=70,
                    color="black",
                    zorder=6,
                    label="overloaded run",
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
        title = "Effect of producer settings (dot: one run; diamond: median of trials"
        marked = s["overloaded"].map(lambda v: not is_missing(v) and bool(v)).any()
        figure.suptitle(title + ("; X: overloaded run)" if marked else ")"))
    return figure


def cpu_per_component(runs: Runs) -> Figure | None:
    """Median CPU of generator, service, broker and the whole machine, per configuration."""
    s = runs.summaries
    if s.empty:
        return None
    long = s.melt(
        id_vars=["configuration"],
        value_vars=[f"cpu_{c}" for c in CPU_KEYS],
        var_name="component",
        value_name="cpu_percent",
    )
    long["component"] = long["component"].str.removeprefix("cpu_").replace({"machine": MACHINE_LABEL})
    bound = s.groupby("configuration", sort=False)["generator_bound"].agg(
        lambda b: int(b.fillna(False).astype(bool).sum())
    )
    trials = s.groupby("configuration", sort=False).size()
    marks = aggregate.overload_marks(runs)
    names = {
        c: marks[c] + (f"\n(generator-bound {bound[c]}/{trials[c]})" if bound[c] else "")
        for c in runs.configs
    }
    long["configuration"] = long["configuration"].map(names)
    with style():
        # Horizontal bars: configuration labels stay readable however many there are.
        figure, axes = new_figure(1.3 + 0.6 * len(names))
        axis = axes[0, 0]
        sns.barplot(
            data=long,
            y="configuration",
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


SATURATION_KEY = "line: median of trials; X: overloaded; dash-dot: knee; p50 dotted, p99 solid, p99.9 dashed"


def saturation(runs: Runs) -> Figure | None:
    """Open loop against the OFFERED rate: completed rate with the identity line (left), and
    p50 / p99 / p99.9 with the trials' min-max (right); overloaded points crossed, the knee
    and the SLO budget marked."""
    table = aggregate.saturation_table(runs)
    if table.empty:
        return None
    knees = aggregate.knees(runs)
    sweeps = list(dict.fromkeys(table["configuration"]))
    colours = _sweep_colours(runs, table)
    slo = runs.slo_p99_ms
    with style():
        figure, axes = new_figure(legend_height(4.8, len(sweeps) + 4), ncols=2)
        left, right = axes[0]
        top = float(table["offered_rps"].max()) * 1.08
        left.plot([0, top], [0, top], color="0.5", linestyle="--", linewidth=1, label="completed = offered")
        for sweep in sweeps:
            rows = table[table["configuration"] == sweep]
            x, colour = rows["offered_rps"], colours[sweep]
            left.plot(x, rows["events_per_s_median"], marker="o", color=colour, label=sweep)
            left.fill_between(x, rows["events_per_s_min"], rows["events_per_s_max"], color=colour, alpha=0.2)
            over = rows[rows["overloaded_trials"] > 0]
            left.scatter(
                over["offered_rps"],
                over["events_per_s_median"],
                marker="X",
                s=90,
                color=colour,
                edgecolor="black",
                linewidth=0.6,
                zorder=5,
            )
            for metric, style_, label in (
                ("p50_ms", ":", "p50"),
                ("p99_ms", "-", "p99"),
                ("p999_ms", "--", "p99.9"),
            ):
                valid = rows.dropna(subset=[f"{metric}_median"])
                lower = valid[f"{metric}_median"] - valid[f"{metric}_min"]
                upper = valid[f"{metric}_max"] - valid[f"{metric}_median"]
                right.errorbar(
                    valid["offered_rps"],
                    valid[f"{metric}_median"],
                    yerr=[lower, upper],
                    color=colour,
                    linestyle=style_,
                    marker="o",
                    markersize=3,
                    capsize=2,
                    label=f"{sweep} {label}",
                )
            over = over.dropna(subset=["p99_ms_median"])
            right.scatter(
                over["offered_rps"],
                over["p99_ms_median"],
                marker="X",
                s=90,
                color=colour,
                edgecolor="black",
                linewidth=0.6,
                zorder=5,
            )
            knee = knees.get(sweep)
            if knee is not None:
                for axis in (left, right):
                    axis.axvline(knee, color=colour, linestyle="-.", linewidth=1)
                left.annotate(
                    f"knee {knee:,.0f}/s",
                    (knee, 0.02),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    fontsize=8,
                    color=colour,
                    ha="right",
                    va="bottom",
                )
        if slo is not None:
            right.axhline(slo, color="crimson", linewidth=1, label=f"SLO p99 <= {slo:g} ms")
        left.scatter([], [], marker="X", s=90, color="0.6", edgecolor="black", label="overloaded (a trial)")
        left.set_xlim(0, top)
        left.set_ylim(0, top)
        thousands(left, "x")
        thousands(left)
        left.set_xlabel("offered requests/s")
        left.set_ylabel("completed events/s in the window")
        left.set_title("Completed against offered rate (band: min-max of trials)")
        log_ms(right)
        right.set_xlim(0, top)
        thousands(right, "x")
        right.set_xlabel("offered requests/s")
        right.set_ylabel("latency from intended send (ms, log scale)")
        right.set_title("Latency against offered rate (bars: min-max)")
        handles, labels = left.get_legend_handles_labels()
        for handle, label in zip(*right.get_legend_handles_labels(), strict=True):
            if label.startswith("SLO"):
                handles.append(handle)
                labels.append(label)
        figure.legend(
            handles, labels, loc="outside lower center", ncols=3, frameon=False, title=SATURATION_KEY
        )
    return figure


def _sweep_colours(runs: Runs, table: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
    """A colour per sweep line: its mode's family, shades within a mode."""
    colours = {}
    modes = mode_palette(runs)
    for mode, group in table.groupby("mode", sort=False):
        lines = list(dict.fromkeys(group["configuration"]))
        if len(lines) == 1:
            colours[lines[0]] = modes.get(mode, (0.3, 0.3, 0.3))
            continue
        family = palette(runs)
        configs = [
            c
            for c in runs.configs
            if runs.summaries.loc[runs.summaries["configuration"] == c, "mode"].iloc[0] == mode
        ]
        for i, line in enumerate(lines):
            colours[line] = family[configs[min(i, len(configs) - 1)]]
    return colours


def search_path(runs: Runs) -> Figure | None:
    """The capacity search: the rate tried at each step (filled: holds, x: fails), per
    configuration, with the capacity found."""
    path = aggregate.search_path(runs)
    if path.empty:
        return None
    configs = list(dict.fromkeys(path["configuration"]))
    mode_colours = mode_palette(runs)
    with style():
        figure, axes = new_figure(4.2)
        axis = axes[0, 0]
        for config in configs:
            steps = path[path["configuration"] == config]
            colour = mode_colours.get(config.split(",")[0], (0.3, 0.3, 0.3))
            axis.plot(steps["step"], steps["value"], color=colour, linewidth=1, alpha=0.6)
            held, failed = steps[steps["holds"]], steps[~steps["holds"]]
            axis.scatter(
                held["step"], held["value"], color=colour, marker="o", s=50, label=f"{config}: holds"
            )
            axis.scatter(
                failed["step"], failed["value"], color=colour, marker="x", s=60, label=f"{config}: fails"
            )
            capacity = steps["capacity"].iloc[0]
            if not is_missing(capacity):
                axis.axhline(capacity, color=colour, linestyle="--", linewidth=1)
                axis.annotate(
                    f"capacity {capacity:,.0f}/s",
                    (1, capacity),
                    xycoords=("axes fraction", "data"),
                    ha="right",
                    va="bottom",
                    fontsize=8,
                    color=colour,
                )
        axis.set_xticks(sorted(set(int(v) for v in path["step"])))
        axis.set_ylim(bottom=0)
        thousands(axis)
        axis.set_xlabel("search step")
        axis.set_ylabel("offered requests/s")
        slo = runs.slo_p99_ms
        budget = f" at p99 <= {slo:g} ms" if slo is not None else ""
        axis.set_title(f"Capacity search{budget} (o: step holds; x: fails; dashed: capacity found)")
        axis.legend()
        legend_outside(axis, "configuration")
    return figure


def fault_timelines(runs: Runs) -> list[Figure]:
    """One figure per fault kind: completed events, error answers by status and p99 per
    second, the fault window shaded; medians of trials per configuration."""
    s = runs.summaries
    if s.empty or not runs.has_faults or runs.series.empty:
        return []
    colours = palette(runs)
    figures = []
    for kind in dict.fromkeys(s.loc[s["fault_kind"].notna() & (s["fault_kind"] != "none"), "fault_kind"]):
        configs = [c for c in runs.configs if (s.loc[s["configuration"] == c, "fault_kind"] == kind).any()]
        series = runs.series[runs.series["configuration"].isin(configs)]
        errors = runs.errors[runs.errors["configuration"].isin(configs)] if len(runs.errors) else runs.errors
        with style():
            figure, axes = new_figure(8.0, nrows=3, sharex=True)
            throughput, failures, tail = axes[:, 0]
            for axis in axes[:, 0]:
                _shade_fault(axis, s[s["configuration"].isin(configs)])
            for config in configs:
                colour = colours[config]
                rows = series[series["configuration"] == config].groupby("second")
                throughput.plot(
                    rows["events_accepted"].median(), color=colour, marker="o", markersize=3, label=config
                )
                tail.plot(rows["p99_ms"].median(), color=colour, marker="o", markersize=3, label=config)
                if len(errors):
                    mine = errors[errors["configuration"] == config]
                    per_status = (
                        mine.groupby(["status", "second", "run"])["count"]
                        .sum()
                        .groupby(["status", "second"])
                        .median()
                    )
                    for (status, line), style_ in zip(
                        per_status.groupby(level=0), ("-", "--", ":", "-."), strict=False
                    ):
                        line = line.droplevel(0)
                        failures.plot(
                            line.index,
                            line.to_numpy(),
                            color=colour,
                            linestyle=style_,
                            marker="o",
                            markersize=3,
                            label=f"{config}: {status}",
                        )
            throughput.set_ylim(bottom=0)
            thousands(throughput)
            throughput.set_ylabel("events accepted/s")
            throughput.set_title(f"Fault: {kind} (shaded: fault window; medians of trials)")
            failures.set_ylabel("error answers/s")
            failures.set_ylim(bottom=0)
            failures.set_title("Error answers per second by status (transport: no HTTP answer)")
            log_ms(tail)
            tail.set_ylabel("p99 (ms, log scale)")
            tail.set_title("p99 per second of send time")
            tail.set_xlabel("second of the run (0 = start of the measured window)")
            # One legend below all three panels: configurations, then their error statuses.
            handles, labels = throughput.get_legend_handles_labels()
            more = failures.get_legend_handles_labels()
            figure.legend(
                handles + more[0],
                labels + more[1],
                loc="outside lower center",
                ncols=2,
                frameon=False,
                title="configuration (error panel: configuration: status)",
            )
        figures.append(figure)
    return figures


def _shade_fault(axis: Axes, summaries: pd.DataFrame) -> None:
    """The union of the runs' fault windows, shaded once per distinct window."""
    seen = set()
    for windows in summaries["fault_windows"].dropna():
        for start, end in json.loads(windows):
            if (start, end) in seen:
                continue
            seen.add((start, end))
            axis.axvspan(start - 0.5, end - 0.5, color="#f4cccc", alpha=0.6, zorder=0)
