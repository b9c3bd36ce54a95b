"""Aggregation every section shares: a configuration's trials as medians and spread, the
overload mark of every label, the busy-box flag, merged latency histograms.

A configuration is the set of varying parameters a run was executed with; its runs are
trials of one experiment (configs.py). Aggregations that answer one question only live with
their section (experiments/analysis/sections/).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from experiments.analysis.configs import is_missing
from experiments.analysis.runs import Runs
from experiments.histograms import merge_histograms
from experiments.rundir import CPU_KEYS

# A latency spectrum is read at these percentiles; 0 is the minimum and 100 the maximum.
PERCENTILES = (0.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0)
SPREAD_METRICS = ("events_per_s", "throughput_rps", "p50_ms", "p99_ms", "p999_ms")
# IQR and standard deviation of two numbers say nothing the min and max do not.
MIN_TRIALS_FOR_DISPERSION = 3


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
        row["generator_bound_trials"] = count_true(group["generator_bound"])
        row["overloaded_trials"] = count_true(group["overloaded"])
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
        over, trials = count_true(group), len(group)
        if not over:
            marks[config] = config
        elif over == trials:
            marks[config] = f"{config} (OVERLOADED)"
        else:
            marks[config] = f"{config} (OVERLOADED in {over} of {trials})"
    return marks


def count_true(values: pd.Series) -> int:
    return int(sum(1 for v in values if not is_missing(v) and bool(v)))


def busy_box(summaries: pd.DataFrame) -> pd.Series:
    """Per run: whether it was disturbed (rundir.DISTURBED_RULE: other load or a slow host),
    for the report's flag."""
    return summaries["other_load"].astype(bool) | summaries["host_slow"].astype(bool)


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


def first_by_config(summaries: pd.DataFrame, column: str) -> Mapping[str, object]:
    return summaries.drop_duplicates("configuration").set_index("configuration")[column].to_dict()


def run_mark(overloaded: object) -> str:
    """What a run's name carries in a table when it was overloaded."""
    return " (OVERLOADED)" if not is_missing(overloaded) and bool(overloaded) else ""
