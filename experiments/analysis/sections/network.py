"""The network between the parts: what the round trip between the service, the brokers and
the followers costs each producer mode, beside the closed-loop model; what acks=all costs
per round trip; and what fire-and-forget loses under a fault as the round trip grows. Only
plans with a run behind the latency proxy (`network` other than loopback,
experiments/network) have this section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_count, fmt_ms, fmt_pct, fmt_range, fmt_rate, fmt_seconds, plural
from experiments.analysis._style import MODE_FAMILIES, log_ms, new_figure, style, thousands
from experiments.analysis.blocks import Block, Chart, Table, Takeaway, Text
from experiments.analysis.confidence import verdict_cell, with_verdict
from experiments.analysis.configs import is_missing, mode_rank
from experiments.analysis.runs import Runs
from experiments.stats import Comparison, compare

TITLE = "The network between the parts"
INTRO = """
Every run of this plan on the suite's own cluster either talked over loopback or had every
listener of every node behind a latency proxy (`network`: experiments/network), which
measured the round trip it got before the load (summary.json `network`). Figures are drawn
against that **measured** client round trip (the proxy's own hop included; loopback at 0),
per producer mode and acks, with the median of the trials.

The **model** is the closed loop's bound: N connections each waiting at least the round
trips its answer needs (durable with acks=1: the client's; with acks=all: the client's and
one replication round trip, the followers' next fetch; fire-and-forget: none) cannot
complete more than N / (those round trips) requests per second, nor more than the same mode
did on loopback, where the service set the limit. Where the measured throughput follows the
service's flat line the service is the bottleneck; where it follows N / round trips the
network is. A run whose measured round trip missed the asked one (off by more than 10% or
0.2 ms) is marked *(calibration missed)*, an open-loop run that could not keep its rate
*(OVERLOADED)*.
"""
LOOPBACK_LABEL = "loopback"


def render(runs: Runs) -> list[Block]:
    frame = network_runs(runs)
    if frame.empty:
        return []
    blocks: list[Block] = [Chart(figure(frame)), Table(table(frame)), Takeaway(model_takeaway(frame)),
                           Takeaway(calibration_takeaway(frame))]
    acks = acks_table(frame)
    if len(acks):
        blocks += [Text("### What acks=all costs per round trip"), Table(acks),
                   Takeaway(acks_takeaway(frame))]
    faults = fault_table(frame)
    if len(faults):
        blocks += [Text("### Loss and unavailability under a fault, by round trip"), Table(faults),
                   Takeaway(fault_takeaway(frame))]
    return blocks


def _acks(summary: Mapping[str, Any]) -> str:
    """The run's acks: its own producer_config, else what the service reported, else the
    service's default (all, service/modes.py); -1 is all."""
    params = summary.get("params") or {}
    service = summary.get("service") or {}
    for config in (params.get("producer_config"), service.get("producer_config")):
        if isinstance(config, Mapping) and config.get("acks") is not None:
            value = str(config["acks"]).lower()
            return "all" if value == "-1" else value
    return "all"


def _measured(network: Mapping[str, Any], listener: str) -> float:
    if not network.get("proxied"):
        return 0.0  # loopback: tens of microseconds, not measured
    value = (network.get("measured_rtt_ms") or {}).get(listener)
    return math.nan if value is None else float(value)


def network_runs(runs: Runs) -> pd.DataFrame:
    """One row per run with a result, with its network as asked and measured; empty when no
    run of the plan was behind the proxy (the section does not apply)."""
    s = runs.summaries
    rows = []
    for _, r in s.iterrows():
        summary = runs.raw.get(r["run"]) or {}
        network = summary.get("network") or {}
        asked = network.get("asked") or {}
        params = summary.get("params") or {}
        fault = r["fault_kind"] if not is_missing(r["fault_kind"]) else "none"
        closed = r["load_model"] != "open"
        rows.append({
            "run": r["run"],
            "configuration": r["configuration"],
            "trial": r["trial"],
            "mode": r["mode"],
            "acks": _acks(summary),
            "load": (f"closed loop, {fmt_count(r['connections'])} connections" if closed
                     else f"open loop, {fmt_rate(r['rate'])} requests/s"),
            "closed": closed,
            "connections": r["connections"],
            "fault": fault,
            "network": str(network.get("profile") or params.get("network") or LOOPBACK_LABEL),
            "proxied": bool(network.get("proxied")),
            "asked_client_ms": (asked.get("client") or {}).get("rtt_ms", 0),
            "asked_broker_ms": (asked.get("broker") or {}).get("rtt_ms", 0),
            "client_rtt_ms": _measured(network, "client"),
            "replication_rtt_ms": _measured(network, "replication"),
            "missed": bool(network.get("missed")),
            "events_per_s": r["events_per_s"],
            "throughput_rps": r["throughput_rps"],
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"],
            "overloaded": r["overloaded"],
            "acknowledged": r["acknowledged"],
            "lost": r["lost"],
            "unavailable_s": r["unavailable_s"],
        })
    frame = pd.DataFrame(rows)
    if frame.empty or not frame["proxied"].any():
        return pd.DataFrame()
    return frame


def waits_ms(mode: str, acks: str, client_rtt_ms: float, replication_rtt_ms: float) -> float:
    """The round trips an answer of `mode` with `acks` waits for: durable waits for the
    leader's answer (acks=1: the client's round trip) and, with acks=all, for the followers'
    next fetch (one replication round trip more); fire-and-forget answers from its buffer."""
    if mode != "durable" or acks == "0":
        return 0.0
    return client_rtt_ms + (replication_rtt_ms if acks == "all" else 0.0)


def points(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs without a fault, one row per configuration: medians of the trials, the model's
    bound for the closed loop, and the marks."""
    healthy = frame[frame["fault"] == "none"]
    rows = []
    for config, group in healthy.groupby("configuration", sort=False):
        first = group.iloc[0]
        median = {c: aggregate.spread(group[c])["median"] for c in
                  ("client_rtt_ms", "replication_rtt_ms", "events_per_s", "throughput_rps", "p50_ms",
                   "p99_ms")}
        rows.append({
            "configuration": config, "mode": first["mode"], "acks": first["acks"], "load": first["load"],
            "closed": first["closed"], "connections": first["connections"], "network": first["network"],
            "proxied": first["proxied"], "asked_client_ms": first["asked_client_ms"],
            "asked_broker_ms": first["asked_broker_ms"], "trials": len(group),
            "missed": int(group["missed"].sum()), "overloaded": aggregate.count_true(group["overloaded"]),
            **median,
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["waits_ms"] = [waits_ms(r["mode"], r["acks"], r["client_rtt_ms"], r["replication_rtt_ms"])
                         for _, r in table.iterrows()]
    table["model_events_per_s"] = [_model(table, r) for _, r in table.iterrows()]
    order = sorted(table.index, key=lambda i: (table.loc[i, "load"], mode_rank(table.loc[i, "mode"]),
                                               table.loc[i, "acks"] != "all", table.loc[i, "client_rtt_ms"]))
    return table.loc[order].reset_index(drop=True)


def _compared(frame: pd.DataFrame, base: str, other: str, column: str, metric: str,
              higher_is_better: bool = True) -> Comparison:
    """`other` against `base` over their trials without a fault (stats.compare: the interval,
    the verdict, or "too few trials for an interval")."""
    healthy = frame[frame["fault"] == "none"]

    def trials(configuration: str) -> list[float]:
        values = healthy.loc[healthy["configuration"] == configuration, column]
        return [float(v) for v in values if not is_missing(v) and v > 0]

    return compare(trials(base), trials(other), metric, higher_is_better=higher_is_better)


def _loopback(table: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    same = table[(table["mode"] == row["mode"]) & (table["acks"] == row["acks"])
                 & (table["load"] == row["load"]) & ~table["proxied"].astype(bool)]
    return same.iloc[0] if len(same) else None


def _model(table: pd.DataFrame, row: pd.Series, client_rtt_ms: float | None = None,
           replication_rtt_ms: float | None = None) -> float:
    """Closed loop: min(the loopback throughput, N / waits) in events/s, at the row's round
    trips or at those given; nan for the open loop."""
    if not row["closed"]:
        return math.nan
    client = row["client_rtt_ms"] if client_rtt_ms is None else client_rtt_ms
    replication = row["replication_rtt_ms"] if replication_rtt_ms is None else replication_rtt_ms
    waits = waits_ms(row["mode"], row["acks"], client, replication)
    loopback = _loopback(table, row)
    ceiling = float(loopback["events_per_s"]) if loopback is not None else math.inf
    per_request = row["events_per_s"] / row["throughput_rps"] if row["throughput_rps"] else 1.0
    bound = row["connections"] * per_request * 1000 / waits if waits > 0 else math.inf
    value = min(ceiling, bound)
    return value if math.isfinite(value) else math.nan


def model_curve(table: pd.DataFrame, line: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model along a closed-loop line, from loopback to its longest round trip (the
    replication round trip interpolated between the measured points), so its bend shows."""
    line = line.sort_values("client_rtt_ms")
    grid = np.linspace(0.0, float(line["client_rtt_ms"].max()), 200)
    replication = np.interp(grid, line["client_rtt_ms"], line["replication_rtt_ms"])
    row = line.iloc[-1]
    return grid, np.array([_model(table, row, c, r) for c, r in zip(grid, replication, strict=True)])


def _series_colour(modes: list[str], mode: str, acks: str) -> tuple[float, float, float]:
    family = colormaps[MODE_FAMILIES[modes.index(mode) % len(MODE_FAMILIES)]]
    red, green, blue, _ = family(0.85 if acks == "all" else 0.5)
    return (red, green, blue)


def figure(frame: pd.DataFrame) -> Figure | None:
    """Per load (closed loop, open loop): events/s and p99 against the measured client round
    trip, one line per mode and acks; the closed loop's model dashed beside its line."""
    table = points(frame)
    if table.empty:
        return None
    loads = list(dict.fromkeys(table["load"]))
    modes = sorted(dict.fromkeys(table["mode"]), key=mode_rank)
    with style():
        figure, axes = new_figure(2.2 + 3.0 * len(loads), ncols=2, nrows=len(loads), sharex=True)
        for row, load in enumerate(loads):
            rate_axis, tail_axis = axes[row, 0], axes[row, 1]
            in_load = table[table["load"] == load]
            for (mode, acks), line in in_load.groupby(["mode", "acks"], sort=False):
                colour = _series_colour(modes, str(mode), str(acks))
                label = f"{mode}, acks={acks}"
                line = line.sort_values("client_rtt_ms")
                rate_axis.plot(line["client_rtt_ms"], line["events_per_s"], color=colour, marker="o",
                               label=label)
                if line["closed"].iloc[0] and line["model_events_per_s"].notna().any():
                    grid, model = model_curve(table, line)
                    rate_axis.plot(grid, model, color=colour, linestyle="--", linewidth=1,
                                   label=f"{label}: model")
                tail_axis.plot(line["client_rtt_ms"], line["p99_ms"], color=colour, marker="o", label=label)
            rate_axis.set_ylim(bottom=0)
            thousands(rate_axis)
            rate_axis.set_ylabel("events/s")
            rate_axis.set_title(f"{load}: events/s" + (" (dashed: model)" if in_load["closed"].any() else ""))
            log_ms(tail_axis)
            tail_axis.set_ylabel("p99 (ms, log scale)")
            tail_axis.set_title(f"{load}: p99")
        for axis in axes[-1, :]:
            axis.set_xlabel("measured client round trip (ms; loopback at 0)")
        figure.suptitle("Events/s and p99 against the round trip (medians of trials)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=2, frameon=False)
    return figure


def _marks(row: Mapping[str, Any]) -> str:
    marks = []
    if row["missed"]:
        marks.append(f"calibration missed in {row['missed']} of {row['trials']}")
    if row["overloaded"]:
        marks.append(f"OVERLOADED in {row['overloaded']} of {row['trials']}")
    return "; ".join(marks)


def _network_label(row: Mapping[str, Any]) -> str:
    if not row["proxied"]:
        return LOOPBACK_LABEL
    asked = f"{row['asked_client_ms']} ms"
    if row["asked_broker_ms"] != row["asked_client_ms"]:
        asked += f" client, {row['asked_broker_ms']} ms broker"
    return f"{row['network']} ({asked})" if row["network"] != f"{row['asked_client_ms']}ms" else asked


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per configuration without a fault: the network asked and measured, events/s against the
    model, and p50 and p99."""
    rows = []
    for _, r in points(frame).iterrows():
        model = r["model_events_per_s"]
        rows.append({
            "load": r["load"],
            "mode, acks": f"{r['mode']}, acks={r['acks']}",
            "network asked": _network_label(r),
            "measured round trip, client / replication":
                f"{fmt_ms(r['client_rtt_ms'])} / {fmt_ms(r['replication_rtt_ms'])}" if r["proxied"]
                else LOOPBACK_LABEL,
            "trials": str(r["trials"]),
            "events/s": fmt_rate(r["events_per_s"]),
            "model events/s": fmt_rate(model),
            "of the model": fmt_pct(r["events_per_s"] / model) if model and not is_missing(model) else "n/a",
            "p50": fmt_ms(r["p50_ms"]),
            "p99": fmt_ms(r["p99_ms"]),
            "mark": _marks(r),
        })
    return pd.DataFrame(rows)


def crossover_ms(row: Mapping[str, Any], loopback_events_per_s: float) -> float:
    """The round trip per link at which N / waits meets the loopback throughput: past it the
    network, not the service, limits the closed loop (both links at the same round trip)."""
    links = 0 if row["mode"] != "durable" or row["acks"] == "0" else (2 if row["acks"] == "all" else 1)
    if not links or not loopback_events_per_s:
        return math.nan
    per_request = row["events_per_s"] / row["throughput_rps"] if row["throughput_rps"] else 1.0
    return 1000 * row["connections"] * per_request / (links * loopback_events_per_s)


def model_takeaway(frame: pd.DataFrame) -> str:
    """Per closed-loop mode and acks: loopback against the longest round trip, and where the
    model says the network takes over from the service."""
    table = points(frame)
    if table.empty:
        return ""
    closed = table[table["closed"].astype(bool)]
    parts = []
    for (mode, acks), line in closed.groupby(["mode", "acks"], sort=False):
        proxied = line[line["proxied"].astype(bool)]
        if proxied.empty:
            continue
        far = proxied.loc[proxied["client_rtt_ms"].idxmax()]
        loopback = _loopback(table, far)
        at = fmt_ms(far["client_rtt_ms"])
        head = f"{mode}, acks={acks}: {fmt_rate(far['events_per_s'])} events/s at {at}"
        if loopback is None:
            parts.append(f"{head} (model {fmt_rate(far['model_events_per_s'])})")
            continue
        change = _compared(frame, loopback["configuration"], far["configuration"], "events_per_s", "events/s")
        text = f"{head}, {with_verdict(change)} against loopback's {fmt_rate(loopback['events_per_s'])}"
        cross = crossover_ms(far, float(loopback["events_per_s"]))
        if math.isnan(cross):
            text += " (its answer waits for no round trip)"
        else:
            text += (f"; the model's bound meets loopback's throughput at {fmt_ms(cross)} per link, past "
                     f"which the round trips and not the service limit it (at {at}: "
                     f"{fmt_pct(far['events_per_s'] / far['model_events_per_s'])} of the model)")
        parts.append(text)
    if not parts:
        return ""
    return "Closed loop: " + "; ".join(parts) + "."


def calibration_takeaway(frame: pd.DataFrame) -> str:
    """Asked against measured round trips over the proxied runs, and which runs missed."""
    proxied = frame[frame["proxied"]]
    if proxied.empty:
        return ""
    parts = []
    for (client, broker), group in proxied.groupby(["asked_client_ms", "asked_broker_ms"], sort=True):
        client_rtt = aggregate.spread(group["client_rtt_ms"])
        replication = aggregate.spread(group["replication_rtt_ms"])
        parts.append(f"asked {client} ms client / {broker} ms broker: measured "
                     f"{fmt_range(client_rtt['min'], client_rtt['max'])} ms client, "
                     f"{fmt_range(replication['min'], replication['max'])} ms replication")
    missed = proxied[proxied["missed"]]
    verdict = (f"every one of the {plural(len(proxied), 'proxied run')} within the miss rule" if missed.empty
               else f"{len(missed)} of {len(proxied)} proxied runs missed it ({', '.join(missed['run'])})")
    return "Measured round trips (medians over the nodes, the proxy's hop included): " + "; ".join(parts) \
        + f"; {verdict}."


def acks_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """acks=all beside acks=1 in the same mode, load and network (configurations without a fault)."""
    table = points(frame)
    if table.empty:
        return table
    key = ["mode", "load", "network", "asked_client_ms", "asked_broker_ms"]
    return table[table["acks"] == "all"].merge(table[table["acks"] == "1"], on=key, suffixes=("_all", "_1"))


def _signed_ms(value: float) -> str:
    return ("+" if not is_missing(value) and value > 0 else "") + fmt_ms(value)


def acks_table(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in acks_pairs(frame).iterrows():
        replication = r["replication_rtt_ms_all"]
        added = r["p50_ms_all"] - r["p50_ms_1"]
        events = _compared(frame, r["configuration_1"], r["configuration_all"], "events_per_s", "events/s")
        rows.append({
            "load": r["load"],
            "mode": r["mode"],
            "network": _network_label({**r, "proxied": r["proxied_all"]}),
            "replication round trip": fmt_ms(replication) if r["proxied_all"] else "loopback",
            "events/s acks=all / acks=1":
                f"{fmt_rate(r['events_per_s_all'])} / {fmt_rate(r['events_per_s_1'])}",
            "events/s change": events.change(),
            "verdict": verdict_cell(events),
            "p50 added": _signed_ms(added),
            "p99 added": _signed_ms(r["p99_ms_all"] - r["p99_ms_1"]),
            "p50 added, in replication round trips": f"{added / replication:.1f}"
            if r["proxied_all"] and replication and not is_missing(replication) else "n/a",
        })
    return pd.DataFrame(rows)


def acks_takeaway(frame: pd.DataFrame) -> str:
    """Per mode and load, what acks=all costs on loopback and at the longest round trip."""
    pairs = acks_pairs(frame)
    if pairs.empty:
        return ""
    parts = []
    for (mode, load), group in pairs.groupby(["mode", "load"], sort=False):
        group = group.sort_values("client_rtt_ms_all")
        said = []
        for _, r in group.iterrows():
            where = f"at {fmt_ms(r['client_rtt_ms_all'])}" if r["proxied_all"] else "on loopback"
            base, other = r["configuration_1"], r["configuration_all"]
            events = _compared(frame, base, other, "events_per_s", "events/s")
            p50 = _compared(frame, base, other, "p50_ms", "p50", higher_is_better=False)
            said.append(f"{where}: {with_verdict(events)}; {with_verdict(p50)} "
                        f"({_signed_ms(r['p50_ms_all'] - r['p50_ms_1'])})")
        parts.append(f"{mode} ({load}): " + ", ".join(said))
    return "acks=all against acks=1: " + "; ".join(parts) + "."


def fault_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs with a fault, per configuration: round trip, acknowledged, lost and unavailability."""
    faulted = frame[frame["fault"] != "none"]
    rows = []
    for _, group in faulted.groupby("configuration", sort=False):
        first = group.iloc[0]
        acknowledged, lost = aggregate.spread(group["acknowledged"]), aggregate.spread(group["lost"])
        unavailable = aggregate.spread(group["unavailable_s"])
        rows.append({
            "mode, acks": f"{first['mode']}, acks={first['acks']}",
            "fault": first["fault"],
            "load": first["load"],
            "measured client round trip": fmt_ms(aggregate.spread(group["client_rtt_ms"])["median"])
            if first["proxied"] else "loopback",
            "trials": str(len(group)),
            "acknowledged (median)": fmt_count(acknowledged["median"]),
            "acknowledged and lost (median, max)": f"{fmt_count(lost['median'])}, {fmt_count(lost['max'])}",
            "lost of acknowledged (median)": fmt_pct(lost["median"] / acknowledged["median"])
            if acknowledged["median"] else "n/a",
            "unavailable after the fault (median)": fmt_seconds(unavailable["median"]),
            "_order": (first["fault"], mode_rank(first["mode"]), first["acks"] != "all",
                       aggregate.spread(group["client_rtt_ms"])["median"]),
        })
    rows.sort(key=lambda row: row.pop("_order"))
    return pd.DataFrame(rows)


def fault_takeaway(frame: pd.DataFrame) -> str:
    """Per fault kind, fire-and-forget's loss and durable's unavailability by round trip."""
    faulted = frame[frame["fault"] != "none"]
    if faulted.empty:
        return ""
    parts = []
    for (fault, mode), group in faulted.groupby(["fault", "mode"], sort=False):
        by_rtt = group.groupby("client_rtt_ms", sort=True)
        said = []
        for rtt, trials in by_rtt:
            where = f"at {fmt_ms(rtt)}" if trials["proxied"].any() else "on loopback"
            lost, acknowledged = trials["lost"].fillna(0).sum(), trials["acknowledged"].fillna(0).sum()
            if mode == "durable":
                gap = fmt_seconds(aggregate.spread(trials["unavailable_s"])["median"])
                said.append(f"{gap} without an answer, {fmt_count(lost)} of {fmt_count(acknowledged)} "
                            f"acknowledged lost {where}")
            else:
                said.append(f"{fmt_count(lost)} of {fmt_count(acknowledged)} acknowledged lost "
                            f"({fmt_pct(lost / acknowledged) if acknowledged else 'n/a'}) {where}")
        parts.append(f"{mode} under {fault}: " + "; ".join(said))
    return "; ".join(parts) + "."
