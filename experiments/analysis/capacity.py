"""Capacity at an SLO: the highest offered rate each configuration holds with p99 within
the plan's budget (`slo_p99_ms`) and without overload, from a rate sweep (per trial, then the
spread) or from a capacity search (its search.json), and the path the search took.

Shared by the sections that print it (saturation, summary). As in the sweep's tables,
`configuration` here leaves the rate out.
"""

from __future__ import annotations

import math

import pandas as pd

from experiments import search
from experiments.analysis import aggregate
from experiments.analysis._format import fmt_range, fmt_rate, plural
from experiments.analysis.configs import format_value, is_missing
from experiments.analysis.runs import Runs
from experiments.analysis.sweep import open_loop_runs, sweep_label


def holds(row: pd.Series | dict, slo_p99_ms: float) -> bool:
    """One run holds the SLO: not overloaded and p99 within the budget."""
    p99 = row["p99_ms"]
    return not (not is_missing(row["overloaded"]) and bool(row["overloaded"])) and (
        not is_missing(p99) and float(p99) <= slo_p99_ms
    )


def _rate_holds(group: pd.DataFrame, slo: float) -> bool:
    """The capacity search's rule (experiments/search.py) over one rate's trials: none
    overloaded and the one-sided 95% upper bound of their p99 within the budget."""
    results = [{"overloaded": None if is_missing(r["overloaded"]) else bool(r["overloaded"]),
                "latency_ms": {"p99": None if is_missing(r["p99_ms"]) else float(r["p99_ms"])}}
               for _, r in group.iterrows()]
    return search.verdict(results, slo)[0] == search.HOLDS


def at_slo(runs: Runs) -> pd.DataFrame:
    """Capacity at the plan's SLO per sweep line.

    `median` (the capacity): the highest offered rate whose trials show it holds by the
    capacity search's rule (no trial overloaded, the one-sided 95% upper bound of their p99
    within slo_p99_ms) with every lower rate holding too; NaN when even the lowest rate does not.
    One lucky or unlucky trial no longer decides it, so a sweep and a search of one build
    agree. `per_trial`, `min` and `max`: each trial's own highest holding rate (every lower
    rate of that trial holding), for the spread. `all_held` says the highest rate measured
    still held (the capacity is at least that). A search plan's capacity comes from its
    search.json.
    """
    columns = ["configuration", "mode", "slo_p99_ms", "trials", "per_trial", "median", "min", "max",
               "all_held", "highest_rate", "source"]  # fmt: skip
    slo = runs.slo_p99_ms
    if slo is None:
        return pd.DataFrame(columns=columns)
    if runs.search:
        return _searched_capacity(runs, slo, columns)
    s = open_loop_runs(runs)
    rows = []
    for sweep, group in s.groupby("configuration", sort=False):
        # Rates are offered requests; a batch request carries batch_size events.
        per_request = _events_per_request(group)
        per_trial: dict[object, float] = {}
        capacity, all_held = math.nan, True
        for rate, at_rate in group.groupby("offered_rps", sort=True):
            if not _rate_holds(at_rate, slo):
                all_held = False
                break
            capacity = float(rate) * per_request
        # A trial added to an undecided rate (runner.top_up_undecided) has no runs at the
        # rates below it, so it has no capacity of its own: the plan's trials have one each.
        own_capacity = set(group.loc[group["offered_rps"] == group["offered_rps"].min(), "trial"])
        for trial, runs_of_trial in group.groupby("trial", sort=True, dropna=False):
            if trial not in own_capacity:
                continue
            ordered = runs_of_trial.sort_values("offered_rps")
            found = math.nan
            for _, run in ordered.iterrows():
                if not holds(run, slo):
                    break
                found = float(run["offered_rps"]) * per_request
            per_trial[trial] = found
        # A trial where nothing held counts as 0 (not as missing) once another trial held:
        # leaving it out would report the lucky trials only.
        values = list(per_trial.values())
        if not all(math.isnan(v) for v in values):
            values = [0.0 if math.isnan(v) else v for v in values]
        stats = aggregate.spread(values)
        rows.append(
            {
                "configuration": sweep,
                "mode": group["mode"].iloc[0],
                "slo_p99_ms": slo,
                "trials": len(per_trial),
                "per_trial": per_trial,
                "median": capacity,
                "min": stats["min"],
                "max": stats["max"],
                "all_held": all_held,
                "highest_rate": float(group["offered_rps"].max()) * per_request,
                "source": "sweep",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _events_per_request(group: pd.DataFrame) -> float:
    sizes = group["batch_size"].dropna() if "batch_size" in group else pd.Series(dtype=float)
    return float(sizes.median()) if len(sizes) and group["endpoint"].eq("batch").all() else 1.0


def searched_configs(runs: Runs) -> dict[str, tuple[str, dict]]:
    """search.json's configurations keyed by the report's own sweep label.

    The runner names them by its cell slug (`mode=durable`); the report names configurations
    by their varying parameters (`durable`). The runs each step lists tie the two together;
    a configuration none of whose runs loaded keeps the runner's name.
    """
    configs = (runs.search or {}).get("configs") or {}
    s = runs.summaries
    labels = dict(zip(s["run"], sweep_label(runs), strict=True)) if len(s) else {}
    out: dict[str, tuple[str, dict]] = {}
    for key, found in configs.items():
        if not isinstance(found, dict):
            continue
        named = (
            labels[r] for step in found.get("steps") or [] for r in step.get("runs") or [] if r in labels
        )
        out[next(named, str(key))] = (str(key), found)
    return out


def _searched_capacity(runs: Runs, slo: float, columns: list[str]) -> pd.DataFrame:
    modes = dict(zip(runs.summaries["run"], runs.summaries["mode"], strict=True))
    rows = []
    for label, (_key, found) in searched_configs(runs).items():
        steps = [step for step in found.get("steps") or [] if isinstance(step, dict)]
        first_run = next((r for step in steps for r in step.get("runs") or []), None)
        value = found.get("capacity")
        value = math.nan if value is None else float(value)
        trials = max((len(step.get("runs") or []) for step in steps), default=0)
        rows.append(
            {
                "configuration": label,
                "mode": modes.get(first_run, label.split(",")[0]),
                "slo_p99_ms": slo,
                "trials": trials,
                "per_trial": {},
                "median": value,
                "min": value,
                "max": value,
                "all_held": bool(steps) and all(step.get("holds") for step in steps),
                "highest_rate": max(
                    (float(step["value"]) for step in steps if "value" in step), default=math.nan
                ),
                "source": "search",
            }
        )
    return pd.DataFrame(rows, columns=columns)


def search_path(runs: Runs) -> pd.DataFrame:
    """The steps of a capacity search (search.json), one row per step of each configuration,
    with the configuration's capacity and bracket as the search found them."""
    columns = ["configuration", "step", "value", "trials", "p99_ms_median", "p99_ms_min", "p99_ms_max",
               "overloaded_trials", "holds", "capacity", "bracket_low", "bracket_high"]  # fmt: skip
    rows = []
    for label, (_key, found) in searched_configs(runs).items():
        bracket = [*(found.get("bracket") or []), None, None]
        for step in found.get("steps") or []:
            p99 = aggregate.spread(v for v in step.get("p99_ms") or [] if v is not None)
            overloaded = step.get("overloaded") or []
            rows.append(
                {
                    "configuration": label,
                    "step": step.get("step"),
                    "value": step.get("value"),
                    "trials": len(step.get("runs") or []),
                    "p99_ms_median": p99["median"],
                    "p99_ms_min": p99["min"],
                    "p99_ms_max": p99["max"],
                    "overloaded_trials": sum(1 for o in overloaded if o),
                    "holds": bool(step.get("holds")),
                    "capacity": found.get("capacity"),
                    "bracket_low": bracket[0],
                    "bracket_high": bracket[1],
                }
            )
    return pd.DataFrame(rows, columns=columns)


def heading(runs: Runs) -> str:
    return f"capacity at p99 <= {format_value(runs.slo_p99_ms)} ms (events/s)"


def by_run_configuration(runs: Runs) -> dict[str, str]:
    """The capacity of each run configuration's sweep line, as text, keyed by the run
    configuration (with its rate), for tables of configurations."""
    capacities = at_slo(runs)
    if capacities.empty:
        return {}
    described = {row["configuration"]: describe(row) for _, row in capacities.iterrows()}
    lines = sweep_label(runs)
    return {c: described.get(w, "n/a") for c, w in zip(runs.summaries["configuration"], lines, strict=True)}


def describe(row: pd.Series) -> str:
    """`625 (500-750)`, `>= 3,000` when every rate held, `none held`."""
    if is_missing(row["median"]):
        return "none held"
    prefix = ">= " if row["all_held"] else ""
    spread = fmt_range(row["min"], row["max"], fmt_rate)
    if row["source"] == "search" or row["min"] == row["max"]:
        return prefix + fmt_rate(row["median"])
    return f"{prefix}{fmt_rate(row['median'])} ({spread})"


def table(runs: Runs) -> pd.DataFrame:
    """Capacity at the plan's SLO per configuration (without its rate), with every trial's."""
    capacities = at_slo(runs)
    path = search_path(runs)
    rows = []
    for _, r in capacities.iterrows():
        row = {
            "configuration": r["configuration"],
            heading(runs): describe(r),
            "trials": str(r["trials"]),
        }
        if r["source"] == "search":
            steps = path[path["configuration"] == r["configuration"]]
            low, high = (steps[c].iloc[0] if len(steps) else None for c in ("bracket_low", "bracket_high"))
            row["per trial / bracket"] = f"search bracket {fmt_range(low, high, fmt_rate)}"
        else:
            row["per trial / bracket"] = ", ".join(
                f"t{format_value(t)}: {'none held' if is_missing(v) else fmt_rate(v)}"
                for t, v in r["per_trial"].items()
            )
        row["highest rate measured"] = fmt_rate(r["highest_rate"])
        rows.append(row)
    return pd.DataFrame(rows)


def takeaway(runs: Runs) -> str:
    """The highest offered rate each configuration holds within the plan's p99 budget.

    Empty when the plan sets no budget or has no open-loop run: there is nothing to say.
    """
    table = at_slo(runs)
    if table.empty:
        return ""
    budget = f"p99 <= {format_value(float(table['slo_p99_ms'].iloc[0]))} ms"
    parts = []
    for i, (_, row) in enumerate(table.iterrows()):
        subject = f"{row['configuration']} holds {budget}" if i == 0 else str(row["configuration"])
        unit = " events/s" if i == 0 else ""
        if is_missing(row["median"]):
            parts.append(f"{subject} at none of the offered rates measured")
            continue
        at_least = "at least " if row["all_held"] else ""
        text = f"{subject} up to {at_least}{fmt_rate(row['median'])}{unit}"
        if row["source"] != "search" and row["trials"] > 1 and row["min"] != row["max"]:
            spread = fmt_range(row["min"], row["max"], fmt_rate)
            text += f" (shown by {row['trials']} trials together; each alone: {spread})"
        elif row["source"] != "search" and row["trials"] > 1:
            text += f" (in each of {row['trials']} trials)"
        parts.append(text)
    text = ", ".join(parts)
    if (table["source"] == "search").any():
        text += f" ({_search_note(runs)})"
    elif table["all_held"].any():
        text += " (at least: the highest rate measured still held)"
    return text


def _search_note(runs: Runs) -> str:
    path = search_path(runs)
    resolution = (runs.search or {}).get("resolution")
    steps = path.groupby("configuration", sort=False).size()
    run_count = int(path["trials"].sum())
    return (
        f"capacity search to a resolution of {fmt_rate(resolution)}/s: "
        f"{plural(int(steps.max()) if len(steps) else 0, 'step')} per configuration, "
        f"{run_count} runs in all"
    )
