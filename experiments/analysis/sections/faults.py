"""Faults: what each producer mode loses when the service or a broker fails during the load,
how long it gave no successful answer, and what failed meanwhile. Only plans that inject a
fault have this section.
"""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_count, fmt_range, fmt_seconds
from experiments.analysis._style import log_ms, new_figure, palette, style, thousands
from experiments.analysis.blocks import Block, Chart, Table, Takeaway
from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs

TITLE = "Faults"
INTRO = """
What each producer mode loses when something fails during the load: one timeline per fault
kind with the fault window shaded (completed events per second, error answers by status, p99
per second of send time), then per configuration the audit (acknowledged, lost, duplicates),
the time from the fault to its recovery (for a killed leader: until another node leads the
partition, which Kafka decides only when the dead broker's session times out; for a pause: the
SIGCONT; for the service: ready again), how long the service gave no successful answer after
the fault started, and the requests that
failed during the fault: error answers, and transport failures such as refused connections while
the service was down (median and min-max over trials). A loss in any trial is named, even when
the median is zero.
"""
FAULT_EVENTS = {
    "service-kill": "the service was killed",
    "service-term": "the service was stopped with SIGTERM",
    "broker-kill": "the partition leader was killed",
    "broker-pause": "the broker was paused",
    "broker-restart": "the broker was restarted",
}


def render(runs: Runs) -> list[Block]:
    if not runs.has_faults:
        return []
    charts: list[Block] = [Chart(figure) for figure in timelines(runs)]
    return [*charts, Table(table(runs)), Takeaway(takeaway(runs)), Takeaway(replication_takeaway(runs))]


def fault_table(runs: Runs) -> pd.DataFrame:
    """Per configuration with a fault: loss, duplicates, unavailability and errors per trial.

    Spread columns (`<metric>_median`, `_min`, `_max`) for acknowledged, lost, duplicates,
    recovered_after_s, unavailable_s and errors_during_fault; `lost_<status>` medians per answer class;
    `lost_trials`, how many trials lost any acknowledged event.
    """
    s = runs.summaries
    if s.empty or "fault_kind" not in s:
        return pd.DataFrame()
    s = s[s["fault_kind"].notna() & (s["fault_kind"] != "none")]
    metrics = ("acknowledged", "lost", "duplicates", "recovered_after_s", "unavailable_s",
               "errors_during_fault")
    class_columns = sorted(c for c in s.columns if c.startswith("lost_") and c[5:].isdigit())
    rows = []
    for config in [c for c in runs.configs if c in set(s["configuration"])]:
        group = s[s["configuration"] == config]
        row: dict[str, object] = {
            "configuration": config,
            "mode": group["mode"].iloc[0],
            "fault": group["fault_kind"].iloc[0],
            "trials": len(group),
            "not_injected": sum(1 for injected in group["fault_injected"] if injected is False),
            "never_recovered": int(group["first_ok_after_fault_s"].isna().sum()),
            # Trials that lost acknowledged events: a loss in one trial of three has a
            # median of 0, and must still be said.
            "lost_trials": int((group["lost"].fillna(0) > 0).sum()),
        }
        for metric in metrics:
            stats = aggregate.spread(group[metric])
            row.update({f"{metric}_{k}": stats[k] for k in ("median", "min", "max")})
        for column in class_columns:
            row[f"{column}_median"] = aggregate.spread(group[column])["median"]
        rows.append(row)
    return pd.DataFrame(rows)


def table(runs: Runs) -> pd.DataFrame:
    """Mode x fault: acknowledged, lost, duplicates, unavailability and errors (median, min-max)."""
    table = fault_table(runs)
    rows = []
    for _, r in table.iterrows():
        row = {"configuration": r["configuration"], "fault": r["fault"], "trials": str(r["trials"])}
        for metric, label, fmt in (
            ("acknowledged", "acknowledged", fmt_count),
            ("lost", "acknowledged and lost", fmt_count),
            ("duplicates", "duplicates", fmt_count),
            ("recovered_after_s", "fault to recovery", fmt_seconds),
            ("unavailable_s", "unavailable after the fault start", fmt_seconds),
            ("errors_during_fault", "failed requests during the fault (error answers and "
                                    "transport failures)", fmt_count),
        ):
            median, low, high = (r[f"{metric}_{k}"] for k in ("median", "min", "max"))
            row[f"{label} (median, min-max)"] = f"{fmt(median)} ({fmt_range(low, high, fmt)})"
        if r["not_injected"]:
            row["configuration"] += f" (fault NOT injected in {r['not_injected']} of {r['trials']})"
        rows.append(row)
    return pd.DataFrame(rows)


def timelines(runs: Runs) -> list[Figure]:
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


def fault_phrase(kind: str) -> str:
    """`when the broker was paused and then the service was killed` (kinds chain with `+`)."""
    events = [FAULT_EVENTS.get(part, f"{part} happened") for part in str(kind).split("+")]
    return "when " + " and then ".join(events)


def takeaway(runs: Runs) -> str:
    """Per fault kind, which mode lost acknowledged events and how long service was out."""
    table = fault_table(runs)
    if table.empty:
        return ""
    sentences = []
    for kind, group in table.groupby("fault", sort=False):
        phrase = fault_phrase(str(kind))
        # Any trial's loss counts: the median alone would call one lossy trial of three clean.
        lossy = group[group["lost_max"].fillna(0) > 0]
        clean = group[group["lost_max"].fillna(0) == 0]
        parts = []
        for _, row in lossy.iterrows():
            if row["lost_trials"] == row["trials"]:
                parts.append(
                    f"{_who(group, row)} acknowledged "
                    f"{fmt_count(row['lost_median'])} events it never delivered {phrase}"
                    f"{_trial_spread(row, 'lost', fmt_count)}"
                )
            else:
                parts.append(
                    f"{_who(group, row)} acknowledged events it never delivered {phrase} in "
                    f"{row['lost_trials']} of {row['trials']} trials (up to "
                    f"{fmt_count(row['lost_max'])}; median {fmt_count(row['lost_median'])})"
                )
        if lossy.empty:
            parts.append(f"no mode lost an acknowledged event {phrase}")
        else:
            parts += [f"{_who(group, r)} lost none" for _, r in clean.iterrows()]
        outage = ", ".join(
            f"{fmt_seconds(r['unavailable_s_median'])} ({_who(group, r)})" for _, r in group.iterrows()
        )
        sentence = "; ".join(parts) + f"; first successful answer after the fault start: {outage}"
        low, high = group["recovered_after_s_min"].min(), group["recovered_after_s_max"].max()
        if str(kind) == "broker-kill" and not (pd.isna(low) or pd.isna(high)):
            # Kafka moves leadership only once the dead broker's session has timed out; how
            # long that took decides what buffered fire-and-forget events outlive.
            sentence += (f"; another node led the partition {fmt_range(low, high, fmt_seconds)} "
                         f"after the kill (all trials)")
        never = group[group["never_recovered"] > 0]
        if len(never):
            sentence += "; never answered again in " + ", ".join(
                f"{r['never_recovered']} of {r['trials']} trials ({r['configuration']})"
                for _, r in never.iterrows()
            )
        failed_injection = group[group["not_injected"] > 0]
        if len(failed_injection):
            sentence += "; the fault was NOT injected in " + ", ".join(
                f"{r['not_injected']} of {r['trials']} trials ({r['configuration']})"
                for _, r in failed_injection.iterrows()
            )
        sentences.append(sentence)
    return "; ".join(sentences)


def _who(group: pd.DataFrame, row: pd.Series) -> str:
    """The mode, or the whole configuration when the mode alone is ambiguous in `group`."""
    return str(row["configuration"] if int((group["mode"] == row["mode"]).sum()) > 1 else row["mode"])


def _trial_spread(row: pd.Series, metric: str, fmt: object) -> str:
    if row["trials"] < 2:
        return " (one trial)"
    low, high = row[f"{metric}_min"], row[f"{metric}_max"]
    if low == high:
        return f" (each of {row['trials']} trials)"
    return f" (median of {row['trials']} trials, range {fmt_range(low, high, fmt)})"


def replication_takeaway(runs: Runs) -> str:
    """Whether durable's acknowledgement could survive the loss of a broker in this plan."""
    s = runs.summaries
    if s.empty:
        return ""
    column = "replication_factor" if "replication_factor" in s else None
    factors = s[column] if column else pd.Series([None] * len(s), index=s.index)
    single = s[[is_missing(f) or float(f) <= 1 for f in factors]]
    if single.empty:
        return ""
    durable = single[single["mode"] == "durable"]
    scope = "every run" if len(single) == len(s) else f"{len(single)} of {len(s)} runs"
    who = f" ({len(durable)} of them durable)" if len(durable) and len(single) != len(s) else ""
    return (
        f"the run topic had replication factor 1 in {scope}{who}: there durable is not durable "
        "against the loss of that broker; its acknowledgement means one broker wrote the event, "
        "and a broker lost with its disk loses it"
    )
