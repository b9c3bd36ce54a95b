"""Configurations (runs that differ only in trial): medians, spread, merged histograms."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from experiments.analysis.configs import config_label, is_missing, is_producer_param, variant_label
from experiments.analysis.runs import Runs
from experiments.histograms import merge_histograms
from experiments.rundir import CPU_KEYS

# The spectrum is read at these percentiles; 0 is the minimum and 100 the maximum.
PERCENTILES = (0.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)
SPREAD_METRICS = ("events_per_s", "throughput_rps", "p50_ms", "p99_ms", "p999_ms")
# IQR and standard deviation of two numbers say nothing the min and max do not.
MIN_TRIALS_FOR_DISPERSION = 3
# CPU of everything else on the box above this share of the machine makes a run suspect:
# the service, broker and generator shared their cores with something the suite did not run.
CPU_OTHER_SHARE = 0.10
# The parameter an open-loop sweep or search varies.
RATE_PARAM = "rate"


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median, min, max of trial values; IQR and stdev only from three trials on."""
    array = np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)
    n = len(array)
    if n == 0:
        nan = math.nan
        return {"n": 0, "median": nan, "min": nan, "max": nan, "iqr": nan, "std": nan}
    enough = n >= MIN_TRIALS_FOR_DISPERSION
    q1, q3 = np.percentile(array, [25, 75])
    return {
        "n": n,
        "median": float(np.median(array)),
        "min": float(array.min()),
        "max": float(array.max()),
        "iqr": float(q3 - q1) if enough else math.nan,
        "std": float(array.std(ddof=1)) if enough else math.nan,
    }


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def varying_params(runs: Runs) -> list[str]:
    """Parameters that vary across the plan (trial and output locations excluded)."""
    return list(runs.varying)


def producer_settings(runs: Runs) -> list[str]:
    """Varying producer settings: `producer.<name>` columns and the producer profile."""
    return [c for c in runs.varying if is_producer_param(c)]


def producer_variants(runs: Runs, table: pd.DataFrame) -> pd.Series:
    """Per row of `table` (summaries or config table), its producer settings as one label.

    Plans vary producer settings in bundles ({acks: 1, enable.idempotence: false}), so a
    bundle, not a single column, is the unit whose effect is measured.
    """
    settings = producer_settings(runs)
    return pd.Series(
        [variant_label(row, settings) for row in table.to_dict("records")],
        index=table.index,
        dtype="object",
    )


def config_table(runs: Runs, metrics: Sequence[str] = SPREAD_METRICS) -> pd.DataFrame:
    """One row per configuration: its parameters, trial count, and spread of each metric.

    Columns per metric: `<metric>_median`, `_min`, `_max`, `_iqr`, `_std`; plus median CPU
    per component, summed audit losses and how many trials were generator-bound.
    """
    s = runs.summaries
    rows = []
    for config in runs.configs:
        group = s[s["configuration"] == config]
        first = group.iloc[0]
        row: dict[str, object] = {"configuration": config, "mode": first["mode"]}
        row.update({c: first[c] for c in runs.varying if c != "mode"})
        row["trials"] = len(group)
        row["cores"] = first["cores"]
        for metric in metrics:
            stats = spread(group[metric])
            row.update({f"{metric}_{k}": v for k, v in stats.items() if k != "n"})
        for component in CPU_KEYS:
            row[f"cpu_{component}_median"] = spread(group[f"cpu_{component}"])["median"]
        row["error_rate_median"] = spread(group["error_rate"])["median"]
        row["acknowledged"] = _sum(group["acknowledged"])
        row["lost"] = _sum(group["lost"])
        row["duplicates"] = _sum(group["duplicates"])
        row["generator_bound_trials"] = _count_true(group["generator_bound"])
        row["overloaded_trials"] = _count_true(group["overloaded"])
        row["open_loop"] = bool((group["load_model"] == "open").any())
        row["offered_rps_median"] = spread(group["offered_rps"])["median"]
        row["unfinished_fraction_median"] = spread(group["unfinished_fraction"])["median"]
        row["unfinished_fraction_max"] = spread(group["unfinished_fraction"])["max"]
        row["cpu_other_median"] = spread(group["cpu_other"])["median"]
        row["cpu_other_max"] = spread(group["cpu_other"])["max"]
        row["busy_box_trials"] = int(busy_box(group).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def overload_marks(runs: Runs) -> dict[str, str]:
    """Per configuration its label with the overload mark, for every table and legend:
    `durable, rate=3000 (OVERLOADED)`, `... (OVERLOADED in 1 of 2)`, or the label alone."""
    s = runs.summaries
    marks = {}
    for config in runs.configs:
        group = s.loc[s["configuration"] == config, "overloaded"]
        over, trials = _count_true(group), len(group)
        if not over:
            marks[config] = config
        elif over == trials:
            marks[config] = f"{config} (OVERLOADED)"
        else:
            marks[config] = f"{config} (OVERLOADED in {over} of {trials})"
    return marks


def _count_true(values: pd.Series) -> int:
    return int(sum(1 for v in values if not is_missing(v) and bool(v)))


def busy_box(summaries: pd.DataFrame) -> pd.Series:
    """Per run: whether everything else on the box took more than CPU_OTHER_SHARE of it."""
    limit = summaries["cores"].astype(float) * 100 * CPU_OTHER_SHARE
    return summaries["cpu_other"].astype(float).gt(limit).fillna(False)


def sweep_label(runs: Runs, table: pd.DataFrame | None = None) -> pd.Series:
    """Per row, the configuration without its offered rate: the line a rate sweep draws."""
    table = runs.summaries if table is None else table
    others = [c for c in runs.varying if c != RATE_PARAM]
    return pd.Series(
        [config_label(row, others) for row in table.to_dict("records")], index=table.index, dtype="object"
    )


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
    columns = ["configuration", "mode", "offered_rps", "trials", "overloaded_trials", "unfinished_fraction_median"]
    metrics = ("events_per_s", "p50_ms", "p99_ms", "p999_ms")
    columns += [f"{m}_{k}" for m in metrics for k in ("median", "min", "max")]
    rows = []
    for (sweep, offered), group in s.groupby(["configuration", "offered_rps"], sort=False):
        row: dict[str, object] = {
            "configuration": sweep,
            "mode": group["mode"].iloc[0],
            "offered_rps": float(offered),
            "trials": len(group),
            "overloaded_trials": _count_true(group["overloaded"]),
            "unfinished_fraction_median": spread(group["unfinished_fraction"])["median"],
        }
        for metric in metrics:
            stats = spread(group[metric])
            row.update({f"{metric}_{k}": stats[k] for k in ("median", "min", "max")})
        rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    order = {label: i for i, label in enumerate(dict.fromkeys(s["configuration"]))}
    return table.sort_values(["configuration", "offered_rps"], key=lambda c: c.map(order) if c.name == "configuration" else c)


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


def holds(row: pd.Series | dict, slo_p99_ms: float) -> bool:
    """One run holds the SLO: not overloaded and p99 within the budget."""
    p99 = row["p99_ms"]
    return not (not is_missing(row["overloaded"]) and bool(row["overloaded"])) and (
        not is_missing(p99) and float(p99) <= slo_p99_ms
    )


def capacity(runs: Runs) -> pd.DataFrame:
    """Capacity at the plan's SLO per sweep line, with the spread over trials.

    Per trial: the highest offered rate that holds (not overloaded, p99 <= slo_p99_ms) with
    every lower rate of that trial holding too, so "holds up to N" is true of all rates
    below N that were measured; NaN when even the lowest rate failed. Then the median and
    min-max of the trials. `all_held` says the highest rate measured still held (the
    capacity is at least that). A search plan's capacity comes from its search.json.
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
        all_held = True
        for trial, runs_of_trial in group.groupby("trial", sort=True, dropna=False):
            ordered = runs_of_trial.sort_values("offered_rps")
            found = math.nan
            for _, run in ordered.iterrows():
                if not holds(run, slo):
                    all_held = False
                    break
                found = float(run["offered_rps"]) * per_request
            per_trial[trial] = found
        # A trial where nothing held counts as 0 (not as missing) once another trial held:
        # leaving it out would report the lucky trials only.
        values = list(per_trial.values())
        if not all(math.isnan(v) for v in values):
            values = [0.0 if math.isnan(v) else v for v in values]
        stats = spread(values)
        rows.append(
            {
                "configuration": sweep,
                "mode": group["mode"].iloc[0],
                "slo_p99_ms": slo,
                "trials": len(per_trial),
                "per_trial": per_trial,
                "median": stats["median"],
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
            p99 = spread(v for v in step.get("p99_ms") or [] if v is not None)
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
            stats = spread(group[metric])
            row.update({f"{metric}_{k}": stats[k] for k in ("median", "min", "max")})
        for column in class_columns:
            row[f"{column}_median"] = spread(group[column])["median"]
        rows.append(row)
    return pd.DataFrame(rows)


def _sum(values: pd.Series) -> float:
    """Sum that stays unknown (NaN) when no run reported the count."""
    present = values.dropna()
    return float(present.sum()) if len(present) else math.nan


def merged_histograms(runs: Runs) -> dict[str, HdrHistogram]:
    """Per configuration, the merge of its trials' histograms (configs without any omitted)."""
    merged = {}
    for config in runs.configs:
        names = runs.summaries.loc[runs.summaries["configuration"] == config, "run"]
        parts = [runs.histograms[n] for n in names if n in runs.histograms]
        if parts:
            merged[config] = merge_histograms(parts)
    return merged


def percentiles_ms(histogram: HdrHistogram, percentiles: Sequence[float] = PERCENTILES) -> dict[float, float]:
    """Latency in milliseconds at each percentile (histograms record microseconds)."""
    if histogram.get_total_count() == 0:
        return {p: math.nan for p in percentiles}
    values = histogram.get_percentile_to_value_dict(list(percentiles))
    return {p: values[p] / 1000.0 for p in percentiles}


def percentile_spectrum(runs: Runs, percentiles: Sequence[float] = PERCENTILES) -> pd.DataFrame:
    """Long table: config, mode, percentile, latency_ms, samples, resolved.

    `resolved` is False where fewer samples than the percentile needs were recorded
    (p99.999 of 10,000 latencies is just the maximum): plots leave those points out.
    """
    modes = _first_by_config(runs.summaries, "mode")
    rows = []
    for config, histogram in merged_histograms(runs).items():
        samples = histogram.get_total_count()
        for p, value in percentiles_ms(histogram, percentiles).items():
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


def _first_by_config(summaries: pd.DataFrame, column: str) -> Mapping[str, object]:
    return summaries.drop_duplicates("configuration").set_index("configuration")[column].to_dict()


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
    table["mode"] = table["configuration"].map(_first_by_config(runs.summaries, "mode"))
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
    overloaded = runs.summaries.groupby("configuration", sort=False)["overloaded"].agg(_count_true)
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
