"""CPU per component: the cores the load generator, the service and the broker used, the
whole machine beside them, and whether the client or a busy box set the limit."""

from __future__ import annotations

import math

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import NO_RESULTS, fmt_cores, fmt_count, fmt_pct, fmt_rate, plural
from experiments.analysis._style import COMPONENT_COLOURS, MACHINE_LABEL, new_figure, style
from experiments.analysis.blocks import Block, Chart, Table, Takeaway
from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs
from experiments.rundir import (
    COMPONENTS,
    CPU_BOUND_FRACTION,
    CPU_OTHER_SHARE,
    DISTURBED_DIR,
    HOST_SLOW_FACTOR,
    HOST_SLOW_SHARE,
    HOST_SLOW_SHARE_ANY,
    MACHINE,
    OPTIONAL_COMPONENTS,
)

TITLE = "CPU per component"
INTRO = f"""
Mean CPU over the measured window of the load generator, the service and the broker (and of the
latency proxy, in runs behind one), and of the whole machine (100% = one core). A generator near
its limit means the client, not the service, capped the throughput. The table gives every run,
with the CPU of everything else on the box: a run where other processes took more than
{CPU_OTHER_SHARE:.0%} of the machine is flagged, its numbers shared the cores with work the suite
did not start. So is a run whose host ran the machine slow in more than {HOST_SLOW_SHARE_ANY:.0%} of
its window, or in more than {HOST_SLOW_SHARE:.0%} of it when CPU-bound (the service or the machine at
{CPU_BOUND_FRACTION:.0%} of its cores): once a second the suite times a fixed
piece of work in thread CPU time, and a second where it took more than {HOST_SLOW_FACTOR}x its best
is slow (a virtual machine's cores slow down while the host's other tenants are busy; on the
2-core box the suite was built on, by 1.7-1.8x for seconds at a time, while every CPU figure
reads the same).
"""


def render(runs: Runs) -> list[Block]:
    return [Chart(figure(runs)), Table(table(runs)), Takeaway(takeaway(runs))]


def components(runs: Runs) -> list[str]:
    """The components shown: every one, but an optional one (the latency proxy) only where
    some run of the plan sampled it."""
    s = runs.summaries
    return [c for c in COMPONENTS
            if c not in OPTIONAL_COMPONENTS or (f"cpu_{c}" in s and s[f"cpu_{c}"].notna().any())]


def figure(runs: Runs) -> Figure | None:
    """Median CPU of generator, service, broker and the whole machine, per configuration."""
    s = runs.summaries
    if s.empty:
        return None
    shown = components(runs)
    long = s.melt(
        id_vars=["configuration"],
        value_vars=[f"cpu_{c}" for c in (*shown, MACHINE)],
        var_name="component",
        value_name="cpu_percent",
    )
    long["component"] = long["component"].str.removeprefix("cpu_").replace({MACHINE: MACHINE_LABEL})
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
            hue_order=[*shown, MACHINE_LABEL],
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
        figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    return figure


def table(runs: Runs) -> pd.DataFrame:
    """Mean CPU per run and component, with everything else on the box, flagged above 10%."""
    s = runs.summaries
    shown = components(runs)
    rows = []
    for _, r in s.iterrows():
        row = {"run": r["run"] + aggregate.run_mark(r["overloaded"]), "configuration": r["configuration"]}
        row.update({f"{c} (cores)": fmt_cores(r[f"cpu_{c}"]) for c in shown})
        row["everything else (cores)"] = fmt_cores(r["cpu_other"])
        row["machine (cores)"] = fmt_cores(r["cpu_machine"])
        flags = []
        if r["other_load"]:
            flags.append(f"other load > {fmt_pct(CPU_OTHER_SHARE)} of the machine")
        if r["host_slow"]:
            flags.append(f"slow host in {fmt_count(r['host_slow_seconds'])} s of the window")
        if not r["launched_by_suite"]:
            flags.append("external target: its CPU only where found by port")
        row["flag"] = "; ".join(flags)
        rows.append(row)
    return pd.DataFrame(rows)


def takeaway(runs: Runs) -> str:
    """Cores used per component, the busiest one, and whether the generator was the limit."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts, busiest = [], []
    shown = components(runs)
    for _, row in table.iterrows():
        used = {c: row[f"cpu_{c}_median"] for c in shown}
        used = {c: v for c, v in sorted(used.items(), key=lambda kv: -_value(kv[1]))}
        top = next(iter(used))
        busiest.append(top)
        listed = ", ".join(f"{c} {fmt_cores(v)}" for c, v in used.items())
        per_core = row["events_per_s_median"] / (row["cpu_service_median"] / 100)
        parts.append(
            f"{row['configuration']}: {listed} of {fmt_count(row['cores'])} cores "
            f"({fmt_rate(per_core)} events/s per service core)"
        )
    text = "; ".join(parts)
    if len(set(busiest)) == 1:
        text += f". The busiest component is the {busiest[0]} in every configuration"
    else:
        text += ". The busiest component differs between configurations"
    known = table[table["cpu_machine_median"].notna() & table["cores"].notna()]
    saturated = known[known["cpu_machine_median"] >= 0.9 * known["cores"].astype(float) * 100]
    if len(saturated):
        text += "; the machine was saturated in " + ", ".join(saturated["configuration"])
    text += _busy_box(runs)
    bound = runs.summaries[runs.summaries["generator_bound"].fillna(False).astype(bool)]
    if len(bound):
        configs = ", ".join(dict.fromkeys(bound["configuration"]))
        text += (
            f"; the generator was flagged generator-bound in {len(bound)} of "
            f"{len(runs.summaries)} runs ({configs}): there the client, not the service, "
            "set the limit"
        )
    return text


def _busy_box(runs: Runs) -> str:
    """Runs disturbed by the box (rundir.DISTURBED_RULE): everything else took more than 10%
    of it, so their CPU was shared, or the host ran its cores slow."""
    s = runs.summaries
    busy = s[aggregate.busy_box(s)]
    rerun = ""
    if runs.set_aside:
        rerun = (
            f"; {plural(len(runs.set_aside), 'run')} ran again because other processes used more "
            f"than {fmt_pct(CPU_OTHER_SHARE)} of the box during them or the host ran it slow "
            f"(the rule reads the box, not the result; the disturbed runs are kept in "
            f"{DISTURBED_DIR}/: {', '.join(runs.set_aside)})"
        )
    if busy.empty:
        return rerun
    which = ", ".join(_disturbance(r) for _, r in busy.iterrows())
    return (
        f"; the box disturbed {len(busy)} of {len(s)} runs ({which}): their figures were "
        "measured on a machine shared with other work or slowed by its host"
    ) + rerun


def _disturbance(run: pd.Series) -> str:
    parts = []
    if run["other_load"]:
        parts.append(f"other processes {fmt_cores(run['cpu_other'])} of {fmt_count(run['cores'])} cores")
    if run["host_slow"]:
        parts.append(f"host slow in {fmt_count(run['host_slow_seconds'])} s of the window")
    return f"{run['run']}: {' and '.join(parts)}"


def _value(x: object) -> float:
    return -math.inf if is_missing(x) else float(x)  # type: ignore[arg-type]
