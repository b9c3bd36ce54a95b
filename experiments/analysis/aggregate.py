"""Configurations (runs that differ only in trial): medians, spread, merged histograms."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from experiments.analysis.load import COMPONENTS, Runs
from experiments.analysis.params import is_producer_param, variant_label

# The spectrum is read at these percentiles; 0 is the minimum and 100 the maximum.
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
        group = s[s["config"] == config]
        first = group.iloc[0]
        row: dict[str, object] = {"config": config, "mode": first["mode"]}
        row.update({c: first[c] for c in runs.varying if c != "mode"})
        row["trials"] = len(group)
        row["cores"] = first["cores"]
        for metric in metrics:
            stats = spread(group[metric])
            row.update({f"{metric}_{k}": v for k, v in stats.items() if k != "n"})
        for component in (*COMPONENTS, "machine"):
            row[f"cpu_{component}_median"] = spread(group[f"cpu_{component}"])["median"]
        row["error_rate_median"] = spread(group["error_rate"])["median"]
        row["acknowledged"] = _sum(group["acknowledged"])
        row["lost"] = _sum(group["lost"])
        row["duplicates"] = _sum(group["duplicates"])
        row["generator_bound_trials"] = int(group["generator_bound"].fillna(False).astype(bool).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _sum(values: pd.Series) -> float:
    """Sum that stays unknown (NaN) when no run reported the count."""
    present = values.dropna()
    return float(present.sum()) if len(present) else math.nan


def merge_histograms(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    """Exact merge: the counts of every bucket added, inputs left untouched.

    Percentiles of trials cannot be averaged; percentiles of the merged histogram are those
    of all recorded latencies together.
    """
    histograms = list(histograms)
    if not histograms:
        raise ValueError("no histograms to merge")
    merged = HdrHistogram(
        min(h.lowest_trackable_value for h in histograms),
        max(h.highest_trackable_value for h in histograms),
        max(h.significant_figures for h in histograms),
    )
    for histogram in histograms:
        merged.add(histogram)
    return merged


def merged_histograms(runs: Runs) -> dict[str, HdrHistogram]:
    """Per configuration, the merge of its trials' histograms (configs without any omitted)."""
    merged = {}
    for config in runs.configs:
        names = runs.summaries.loc[runs.summaries["config"] == config, "run"]
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
                    "config": config,
                    "mode": modes.get(config),
                    "percentile": p,
                    "latency_ms": value,
                    "samples": samples,
                    "resolved": resolved,
                }
            )
    columns = ["config", "mode", "percentile", "latency_ms", "samples", "resolved"]
    return pd.DataFrame(rows, columns=columns)


def _first_by_config(summaries: pd.DataFrame, column: str) -> Mapping[str, object]:
    return summaries.drop_duplicates("config").set_index("config")[column].to_dict()


def per_second(runs: Runs) -> pd.DataFrame:
    """Events accepted per second, median and min/max across the trials of a config."""
    columns = ["config", "mode", "second", "phase", "median", "min", "max"]
    series = runs.series
    if series.empty:
        return pd.DataFrame(columns=columns)
    grouped = series.groupby(["config", "second"], sort=False)
    table = grouped["events_accepted"].agg(["median", "min", "max"])
    table["phase"] = grouped["phase"].first()
    table = table.reset_index()
    table["mode"] = table["config"].map(_first_by_config(runs.summaries, "mode"))
    order = {config: i for i, config in enumerate(runs.configs)}
    table = table.assign(_order=table["config"].map(order))
    return table.sort_values(["_order", "second"])[columns].reset_index(drop=True)


def ramp(runs: Runs, fraction: float = 0.9) -> pd.DataFrame:
    """Per config: the first second's rate, the steady rate and when it was first reached.

    Steady = median over the measured window of the per-second trial medians; the ramp is
    counted from the first recorded second (warm-up included), because that is where a
    slow start happens.
    """
    table = per_second(runs)
    rows = []
    for config in runs.configs:
        seconds = table[table["config"] == config].sort_values("second")
        if seconds.empty:
            continue
        measured = seconds[seconds["phase"] == "measure"]
        steady = float(measured["median"].median()) if len(measured) else math.nan
        reached = seconds[seconds["median"] >= fraction * steady]
        start = int(seconds["second"].iloc[0])
        rows.append(
            {
                "config": config,
                "mode": seconds["mode"].iloc[0],
                "first_rate": float(seconds["median"].iloc[0]),
                "steady_rate": steady,
                "seconds_to_steady": int(reached["second"].iloc[0]) - start + 1 if len(reached) else math.nan,
                "warmup_s": int((seconds["phase"] == "warmup").sum()),
            }
        )
    return pd.DataFrame(rows)
