"""Throughput over time: how many events each configuration completed per second, how
fast it got there, and which mode sustained more.

Rates are on the completion clock (what the service did in that second); an overloaded
configuration sustained nothing and is never called steady (rundir.OVERLOAD_RULE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from experiments.analysis import aggregate, confidence
from experiments.analysis._format import NO_RESULTS, fmt_pct, fmt_range, fmt_rate, fmt_ratio
from experiments.analysis._style import legend_height, legend_outside, new_figure, palette, style, thousands
from experiments.analysis.blocks import Block, Chart, Takeaway
from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs
from experiments.rundir import OVERLOAD_FRACTION, UNFINISHED_FRACTION

TITLE = "Throughput over time"
INTRO = f"""
Events accepted per second of **completion** for every configuration (what the service did in
that second), from the first second of warm-up (shaded, not part of the measured window) through
the drain after the window (hatched: answers still arriving, kept for latency but never counted
as throughput). The line is the median of the trials, the band spans the slowest to the fastest
trial; for open-loop runs the dotted line is the offered rate. Configurations marked OVERLOADED
completed less than {OVERLOAD_FRACTION:.0%} of what was offered, or left more than
{UNFINISHED_FRACTION:.0%} of it unfinished.
"""


def render(runs: Runs) -> list[Block]:
    return [Chart(figure(runs)), Takeaway(takeaway(runs)), Takeaway(ramp_takeaway(runs))]


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


def figure(runs: Runs) -> Figure | None:
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


def per_second(runs: Runs, column: str = "events_accepted") -> pd.DataFrame:
    """A series.csv column per second, median and min/max across the trials of a config.

    `events_accepted` (the default) is on the completion clock: what the service did in
    that second, the drain after the window included.
    """
    columns = ["configuration", "mode", "second", "phase", "median", "min", "max"]
    series = runs.series
    if series.empty or column not in series:
        return pd.DataFrame(columns=columns)
    grouped = series.groupby(["configuration", "second"], sort=False)
    table = grouped[column].agg(["median", "min", "max"])
    table["phase"] = grouped["phase"].first()
    table = table.reset_index()
    table["mode"] = table["configuration"].map(aggregate.first_by_config(runs.summaries, "mode"))
    order = {config: i for i, config in enumerate(runs.configs)}
    table = table.assign(_order=table["configuration"].map(order))
    return table.sort_values(["_order", "second"])[columns].reset_index(drop=True)


def ramp(runs: Runs, fraction: float = 0.9) -> pd.DataFrame:
    """Per config: the first second's rate, the steady rate and when it was first reached.

    Steady = median over the measured window of the per-second trial medians (completion
    clock); the ramp is counted from the first recorded second (warm-up included), because
    that is where a slow start happens. `overloaded_trials`: trials marked overloaded, whose
    "steady" rate is only what a collapsing service managed, never a steady state.
    """
    overloaded = runs.summaries.groupby("configuration", sort=False)["overloaded"].agg(aggregate.count_true)
    table = per_second(runs)
    rows = []
    for config in runs.configs:
        seconds = table[table["configuration"] == config].sort_values("second")
        if seconds.empty:
            continue
        measured = seconds[seconds["phase"] == "measure"]
        steady = float(measured["median"].median()) if len(measured) else math.nan
        reached = seconds[seconds["median"] >= fraction * steady]
        start = int(seconds["second"].iloc[0])
        rows.append(
            {
                "configuration": config,
                "mode": seconds["mode"].iloc[0],
                "first_rate": float(seconds["median"].iloc[0]),
                "steady_rate": steady,
                "seconds_to_steady": int(reached["second"].iloc[0]) - start + 1 if len(reached) else math.nan,
                "warmup_s": int((seconds["phase"] == "warmup").sum()),
                "overloaded_trials": int(overloaded.get(config, 0)),
            }
        )
    return pd.DataFrame(rows)


def _trials_phrase(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    if high == 1:
        return "one trial each" if len(counts) > 1 else "one trial"
    return f"median of {high} trials" if low == high else f"median of {low}-{high} trials"


def _best_per_mode(table: pd.DataFrame) -> pd.DataFrame:
    """Each mode's configuration with the highest median throughput, best mode first."""
    best = table.loc[table.groupby("mode", sort=False)["events_per_s_median"].idxmax()]
    return best.sort_values("events_per_s_median", ascending=False)


def takeaway(runs: Runs) -> str:
    """Which mode sustained more events per second, and by how much.

    Throughput is what completed inside the measured window. A configuration with an
    overloaded trial did not sustain anything: it is left out of the comparison and named
    with what it completed of what was offered.
    """
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    table = table.dropna(subset=["events_per_s_median"])
    if table.empty:
        return "no run reported its throughput"
    overloaded = table[table["overloaded_trials"] > 0]
    steady = table[table["overloaded_trials"] == 0]
    if steady.empty:
        return "every configuration was overloaded, so none sustained a rate: " + _overloaded_list(overloaded)
    text = _sustained(runs, steady)
    if len(overloaded):
        text += "; overloaded, so not steady and left out: " + _overloaded_list(overloaded)
    return text


def _sustained(runs: Runs, table: pd.DataFrame) -> str:
    best = _best_per_mode(table)
    several = table.groupby("mode").size().max() > 1
    trials = _trials_phrase(list(best["trials"]))
    if len(best) == 1:
        row = best.iloc[0]
        spread = fmt_range(row["events_per_s_min"], row["events_per_s_max"], fmt_rate)
        where = f" ({row['configuration']})" if several else ""
        up_to = "up to " if several else ""
        text = f"{row['mode']} sustained {up_to}{fmt_rate(row['events_per_s_median'])} events/s{where}"
        return text + (f", {trials}, range {spread}" if row["trials"] > 1 else f", {trials}")
    top, rest = best.iloc[0], best.iloc[1:]
    if len(rest) == 1:
        other = rest.iloc[0]
        ratio = top["events_per_s_median"] / other["events_per_s_median"]
        text = (
            f"{top['mode']} sustained {fmt_ratio(ratio)} the throughput of {other['mode']} "
            f"({fmt_rate(top['events_per_s_median'])} vs "
            f"{fmt_rate(other['events_per_s_median'])} events/s, {trials})"
        )
        # The ratio of medians above is what a reader remembers; whether the trials tell
        # the two apart is stats.compare's (the report's comparisons section has the rest).
        compared = confidence.comparison(runs, other["configuration"], top["configuration"], "events/s")
        if compared is not None:
            text += f": {confidence.with_verdict(compared)}"
    else:
        others = ", ".join(f"{fmt_rate(r['events_per_s_median'])} ({r['mode']})" for _, r in rest.iterrows())
        text = (
            f"{top['mode']} sustained the most: {fmt_rate(top['events_per_s_median'])} "
            f"events/s vs {others} ({trials})"
        )
    if several:
        text += "; " + "; ".join(
            f"best {r['mode']} configuration: {_without_mode(r['configuration'], r['mode'])}"
            for _, r in best.iterrows()
            if (table["mode"] == r["mode"]).sum() > 1
        )
    return text


def _overloaded_list(table: pd.DataFrame) -> str:
    """`durable, rate=3000 completed 1,000 of 3,000 requests/s offered (77% unfinished)`."""
    parts = []
    for _, row in table.iterrows():
        trials = (
            ""
            if row["overloaded_trials"] == row["trials"]
            else (f", overloaded in {row['overloaded_trials']} of {row['trials']} trials")
        )
        parts.append(
            f"{row['configuration']} completed {fmt_rate(row['throughput_rps_median'])} of "
            f"{fmt_rate(row['offered_rps_median'])} requests/s offered "
            f"({fmt_pct(row['unfinished_fraction_median'])} unfinished{trials})"
        )
    return ", ".join(parts)


def _without_mode(config: str, mode: str) -> str:
    """`durable, linger.ms=5` -> `linger.ms=5` (the mode is already in the sentence)."""
    rest = config.removeprefix(f"{mode}, ")
    return "the default settings" if rest == mode else rest


def ramp_takeaway(runs: Runs) -> str:
    """How fast each configuration reached its steady rate (the seed's 4K -> 45K picture).

    Rates are completions per second. An overloaded configuration has no steady rate: the
    sentence says what it completed against what was offered instead.
    """
    table = ramp(runs)
    if table.empty:
        return "no per-second series was recorded"
    offered = aggregate.config_table(runs).set_index("configuration")
    parts = []
    for _, row in table.iterrows():
        config = row["configuration"]
        if row["overloaded_trials"] > 0:
            trials = int(offered.at[config, "trials"])
            parts.append(
                f"{config} never reached a steady rate: overloaded in {row['overloaded_trials']} of "
                f"{trials} trials, it completed a median {fmt_rate(row['steady_rate'])} events/s "
                f"per second of the window against {fmt_rate(offered.at[config, 'offered_rps_median'])} "
                "requests/s offered"
            )
        elif is_missing(row["seconds_to_steady"]) or row["seconds_to_steady"] <= 1:
            parts.append(
                f"{config} ran at its steady {fmt_rate(row['steady_rate'])} events/s from the first second"
            )
        else:
            parts.append(
                f"{config} ramped from {fmt_rate(row['first_rate'])} to "
                f"{fmt_rate(row['steady_rate'])} events/s in {int(row['seconds_to_steady'])} s"
            )
    start = "counting from the first warm-up second, " if table["warmup_s"].max() > 0 else ""
    return (
        start + "; ".join(parts) + " (steady: median per-second rate of completions in the "
        "measured window; reached: 90% of it)"
    )
