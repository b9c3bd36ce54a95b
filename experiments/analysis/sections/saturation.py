"""Latency versus load: how latency grows with the load, and where each configuration stops
keeping up.

Closed loop: p50 and p99 against the throughput each run achieved (here). Open loop: the
rate sweep against the offered rate (sweep.py), the capacity at the plan's SLO
(capacity.py) and, for a search plan, the path the search took (here).
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from experiments.analysis import aggregate, capacity, sweep
from experiments.analysis._format import NO_RESULTS, fmt_ms, fmt_num, fmt_pct, fmt_range, fmt_rate, fmt_ratio
from experiments.analysis._style import (
    legend_height,
    legend_outside,
    log_ms,
    mode_palette,
    new_figure,
    palette,
    style,
    thousands,
)
from experiments.analysis.blocks import Block, Chart, Table, Takeaway
from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs

TITLE = "Latency versus load"
INTRO = """
Closed loop: median (p50) and tail (p99) latency against the throughput each run achieved, one
point per run, one line per mode through the medians of its configurations. Open loop: the
completed rate against the **offered** rate (on the dashed identity line the service completed
everything it was offered), and p50 / p99 / p99.9 from the intended send time per offered rate
with the trials' spread; X marks an overloaded trial, the dash-dotted line the knee. With a
latency budget in the plan (`slo_p99_ms`), the capacity at that SLO: per trial the highest
offered rate that is not overloaded and keeps p99 within the budget (every lower rate holding
too), then the median and range over trials; a capacity search shows its path.
"""
# A knee: p99 grows by this factor while throughput grows by less than KNEE_GAIN.
KNEE_P99_FACTOR = 1.5
KNEE_GAIN = 0.10


def render(runs: Runs) -> list[Block]:
    return [
        Chart(closed_figure(runs)),
        Chart(sweep.figure(runs)),
        Table(sweep.table(runs)),
        Takeaway(takeaway(runs)),
        Table(capacity.table(runs)),
        Takeaway(capacity.takeaway(runs)),
        Chart(search_figure(runs)),
        Table(search_table(runs)),
        Takeaway(search_takeaway(runs)),
    ]


def closed_figure(runs: Runs) -> Figure | None:
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


def takeaway(runs: Runs) -> str:
    """Where each configuration stopped completing what was offered (open loop), or how p99
    moved with achieved throughput (closed loop)."""
    if not sweep.saturation_table(runs).empty:
        return sweep.takeaway(runs)
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts = []
    table = table.dropna(subset=["events_per_s_median", "p99_ms_median"])
    if table.empty:
        return "no run reported both its throughput and its p99"
    for mode, group in table.groupby("mode", sort=False):
        group = group.sort_values("events_per_s_median")
        rates, p99 = list(group["events_per_s_median"]), list(group["p99_ms_median"])
        if len(group) == 1:
            parts.append(f"{mode}: one configuration, p99 {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s")
            continue
        verb = "rose" if p99[-1] > p99[0] else "fell"
        text = (
            f"{mode}: p99 {verb} from {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s "
            f"to {fmt_ms(p99[-1])} at {fmt_rate(rates[-1])} events/s"
        )
        for i in range(1, len(rates)):
            gain = rates[i] / rates[i - 1] - 1
            growth = p99[i] / p99[i - 1]
            if growth >= KNEE_P99_FACTOR and gain < KNEE_GAIN:
                text += (
                    f"; knee near {fmt_rate(rates[i - 1])} events/s: the next step "
                    f"added {fmt_pct(gain)} throughput for {fmt_ratio(growth)} the p99"
                )
                break
        parts.append(text)
    return "; ".join(parts) + " (medians of trials)"


def search_figure(runs: Runs) -> Figure | None:
    """The capacity search: the rate tried at each step (filled: holds, x: fails), per
    configuration, with the capacity found."""
    path = capacity.search_path(runs)
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
            found = steps["capacity"].iloc[0]
            if not is_missing(found):
                axis.axhline(found, color=colour, linestyle="--", linewidth=1)
                axis.annotate(
                    f"capacity {found:,.0f}/s",
                    (1, found),
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


def search_table(runs: Runs) -> pd.DataFrame:
    """The capacity search's path: each step's value, its trials' p99 and the verdict."""
    path = capacity.search_path(runs)
    rows = []
    for _, r in path.iterrows():
        rows.append(
            {
                "configuration": r["configuration"],
                "step": str(r["step"]),
                "offered requests/s": fmt_rate(r["value"]),
                "p99 ms (median, min-max)": (
                    f"{fmt_num(r['p99_ms_median'])} ({fmt_range(r['p99_ms_min'], r['p99_ms_max'])})"
                ),
                "overloaded trials": f"{r['overloaded_trials']} of {r['trials']}",
                "verdict": str(r["verdict"])
                + (f" (confirmation: {r['trials']} trials in all)" if r["confirmation"] else ""),
            }
        )
    return pd.DataFrame(rows)


def search_takeaway(runs: Runs) -> str:
    """The capacity search's path per configuration: each value tried and whether it held."""
    path = capacity.search_path(runs)
    if path.empty:
        return ""
    parts = []
    for config, steps in path.groupby("configuration", sort=False):
        tried = ", ".join(
            f"{fmt_rate(r['value'])} {'holds' if r['holds'] else 'fails'}"
            + (f" on {r['trials']} trials" if r["confirmation"] else "")
            for _, r in steps.iterrows()
        )
        low, high = steps["bracket_low"].iloc[0], steps["bracket_high"].iloc[0]
        parts.append(f"{config}: {tried}; capacity between {fmt_range(low, high, fmt_rate)}/s")
    return "; ".join(parts)
