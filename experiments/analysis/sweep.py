"""An open-loop rate sweep: per offered rate what each configuration completed and at which
latency, where it stopped keeping up (the knee), drawn against the OFFERED rate.

Against the completed rate a collapsing service folds the curve back on itself; the offered
rate is what the experimenter chose. A sweep line is a configuration without its rate: in the
tables here `configuration` leaves the rate out and `offered_rps` is the rate.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_ms, fmt_num, fmt_pct, fmt_range, fmt_rate
from experiments.analysis._style import (
    legend_height,
    log_ms,
    mode_palette,
    new_figure,
    palette,
    style,
    thousands,
)
from experiments.analysis.configs import config_labels
from experiments.analysis.runs import Runs

# The parameter an open-loop sweep or search varies.
RATE_PARAM = "rate"


def sweep_label(runs: Runs, table: pd.DataFrame | None = None) -> pd.Series:
    """Per row, the configuration without its offered rate: the line a rate sweep draws."""
    table = runs.summaries if table is None else table
    others = [c for c in runs.varying if c != RATE_PARAM]
    return pd.Series(config_labels(table, others), index=table.index, dtype="object")


def open_loop_runs(runs: Runs) -> pd.DataFrame:
    """Open-loop runs with a known offered rate, each labelled by its sweep line: its
    `configuration` without the rate, which is the `offered_rps` column of the sweep."""
    s = runs.summaries
    if s.empty:
        return s
    s = s.assign(configuration=sweep_label(runs))
    return s[(s["load_model"] == "open") & s["offered_rps"].notna()]


def saturation_table(runs: Runs) -> pd.DataFrame:
    """Per sweep line and offered rate: completed rate and latency, median and min-max.

    Drawn against the OFFERED rate, which the experimenter chose: against the completed
    rate a collapsing service folds the curve back on itself.
    """
    s = open_loop_runs(runs)
    columns = ["configuration", "mode", "offered_rps", "trials", "overloaded_trials",
               "unfinished_fraction_median"]
    metrics = ("events_per_s", "p50_ms", "p99_ms", "p999_ms")
    columns += [f"{m}_{k}" for m in metrics for k in ("median", "min", "max")]
    rows = []
    for (sweep, offered), group in s.groupby(["configuration", "offered_rps"], sort=False):
        row: dict[str, object] = {
            "configuration": sweep,
            "mode": group["mode"].iloc[0],
            "offered_rps": float(offered),
            "trials": len(group),
            "overloaded_trials": aggregate.count_true(group["overloaded"]),
            "unfinished_fraction_median": aggregate.spread(group["unfinished_fraction"])["median"],
        }
        for metric in metrics:
            stats = aggregate.spread(group[metric])
            row.update({f"{metric}_{k}": stats[k] for k in ("median", "min", "max")})
        rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    order = {label: i for i, label in enumerate(dict.fromkeys(s["configuration"]))}
    return table.sort_values(["configuration", "offered_rps"],
                             key=lambda c: c.map(order) if c.name == "configuration" else c)


def knees(runs: Runs) -> dict[str, float | None]:
    """Per sweep line: the highest offered rate below the first one that overloaded a trial.

    None when the first rate already overloaded, or when no rate did (no knee measured).
    """
    table = saturation_table(runs)
    found: dict[str, float | None] = {}
    for sweep, group in table.groupby("configuration", sort=False):
        group = group.sort_values("offered_rps")
        over = group[group["overloaded_trials"] > 0]
        if over.empty:
            found[sweep] = None
            continue
        below = group[group["offered_rps"] < over["offered_rps"].iloc[0]]
        found[sweep] = float(below["offered_rps"].iloc[-1]) if len(below) else None
    return found


SATURATION_KEY = "line: median of trials; X: overloaded; dash-dot: knee; p50 dotted, p99 solid, p99.9 dashed"


def figure(runs: Runs) -> Figure | None:
    """Open loop against the OFFERED rate: completed rate with the identity line (left), and
    p50 / p99 / p99.9 with the trials' min-max (right); overloaded points crossed, the knee
    and the SLO budget marked."""
    table = saturation_table(runs)
    if table.empty:
        return None
    knee_rates = knees(runs)
    sweeps = list(dict.fromkeys(table["configuration"]))
    colours = sweep_colours(runs, table)
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
            knee = knee_rates.get(sweep)
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


def sweep_colours(runs: Runs, table: pd.DataFrame) -> dict[str, tuple[float, float, float]]:
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


def table(runs: Runs) -> pd.DataFrame:
    """Per offered rate: completed rate, unfinished share, latency, overloaded trials."""
    table = saturation_table(runs)
    rows = []
    for _, r in table.iterrows():
        rows.append(
            {
                "configuration": r["configuration"],
                "offered requests/s": fmt_rate(r["offered_rps"]),
                "completed events/s (median, min-max)": (
                    f"{fmt_rate(r['events_per_s_median'])} "
                    f"({fmt_range(r['events_per_s_min'], r['events_per_s_max'], fmt_rate)})"
                ),
                "unfinished (median)": fmt_pct(r["unfinished_fraction_median"]),
                "p99 ms (median, min-max)": (
                    f"{fmt_num(r['p99_ms_median'])} ({fmt_range(r['p99_ms_min'], r['p99_ms_max'])})"
                ),
                "overloaded": f"{r['overloaded_trials']} of {r['trials']}"
                + (" (OVERLOADED)" if r["overloaded_trials"] else ""),
            }
        )
    return pd.DataFrame(rows)


def takeaway(runs: Runs) -> str:
    table = saturation_table(runs)
    knee_rates = knees(runs)
    parts = []
    for sweep, group in table.groupby("configuration", sort=False):
        group = group.sort_values("offered_rps")
        over = group[group["overloaded_trials"] > 0]
        held = group if over.empty else group[group["offered_rps"] < over["offered_rps"].iloc[0]]
        if held.empty:
            first = over.iloc[0]
            parts.append(
                f"{sweep}: overloaded from the lowest offered rate, {fmt_rate(first['offered_rps'])}/s "
                f"(completed {fmt_rate(first['events_per_s_median'])} events/s)"
            )
            continue
        low, high = held.iloc[0], held.iloc[-1]
        text = f"{sweep}: completed what was offered up to {fmt_rate(high['offered_rps'])}/s"
        if len(held) > 1:
            text += (
                f" (p99 {fmt_ms(low['p99_ms_median'])} at {fmt_rate(low['offered_rps'])}/s, "
                f"{fmt_ms(high['p99_ms_median'])} at {fmt_rate(high['offered_rps'])}/s)"
            )
        else:
            text += f" (p99 {fmt_ms(high['p99_ms_median'])})"
        if over.empty:
            parts.append(text + "; not overloaded at any offered rate measured, so no knee")
            continue
        first = over.iloc[0]
        trials = (
            ""
            if first["overloaded_trials"] == first["trials"]
            else (f" in {first['overloaded_trials']} of {first['trials']} trials")
        )
        text += (
            f"; at {fmt_rate(first['offered_rps'])}/s it was overloaded{trials}, completing "
            f"{fmt_rate(first['events_per_s_median'])} events/s with p99 {fmt_ms(first['p99_ms_median'])}"
        )
        knee = knee_rates.get(sweep)
        if knee is not None:
            text += f": knee near {fmt_rate(knee)}/s"
        parts.append(text)
    return "; ".join(parts) + " (medians of trials; rates offered in requests/s)"
