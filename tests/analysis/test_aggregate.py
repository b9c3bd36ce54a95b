"""Aggregation: medians and spread on known numbers, exact histogram merges."""

from __future__ import annotations

import math
import random
from typing import Any

import pandas as pd
import pytest
from hdrh.histogram import HdrHistogram

from experiments import histograms
from experiments.analysis import Runs, aggregate


def test_spread_of_four_values() -> None:
    stats = aggregate.spread([4.0, 1.0, 3.0, 2.0])
    assert stats["n"] == 4
    assert stats["median"] == 2.5
    assert (stats["min"], stats["max"]) == (1.0, 4.0)
    assert stats["iqr"] == pytest.approx(1.5)  # 3.25 - 1.75, linear interpolation
    assert stats["std"] == pytest.approx(1.2909944)


def test_spread_below_three_trials_has_no_dispersion() -> None:
    stats = aggregate.spread([10.0, 20.0])
    assert stats["median"] == 15.0
    assert math.isnan(stats["iqr"]) and math.isnan(stats["std"])
    assert aggregate.spread([None, math.nan])["n"] == 0


def test_config_table_medians_and_ranges(runs: Runs, summaries_json: dict[str, dict[str, Any]]) -> None:
    table = aggregate.config_table(runs).set_index("configuration")
    assert list(table.index) == list(runs.configs)
    t1, t2 = (
        summaries_json[n]["results"]
        for n in ("002-mode=durable_linger.ms=5-t1", "005-mode=durable_linger.ms=5-t2")
    )
    row = table.loc["durable, linger.ms=5"]
    assert row["trials"] == 2
    assert row["events_per_s_median"] == pytest.approx((t1["events_per_s"] + t2["events_per_s"]) / 2)
    assert row["events_per_s_min"] == min(t1["events_per_s"], t2["events_per_s"])
    assert row["p99_ms_max"] == max(t1["latency_ms"]["p99"], t2["latency_ms"]["p99"])
    assert math.isnan(row["events_per_s_iqr"])
    assert row["producer.linger.ms"] == 5
    assert table.loc["fire-and-forget", "lost"] == 12
    assert table.loc["fire-and-forget", "generator_bound_trials"] == 1


def _histogram(values: list[int]) -> HdrHistogram:
    histogram = HdrHistogram(1, 60_000_000, 3)
    for value in values:
        histogram.record_value(value)
    return histogram


def test_merged_histogram_equals_one_histogram_of_all_values() -> None:
    rng = random.Random(7)
    parts = [[round(rng.lognormvariate(8, 1)) for _ in range(n)] for n in (500, 1500, 40)]
    histograms = [_histogram(values) for values in parts]
    merged = aggregate.merge_histograms(histograms)
    everything = _histogram([v for values in parts for v in values])
    assert merged.get_total_count() == 2040
    assert aggregate.percentiles_ms(merged) == aggregate.percentiles_ms(everything)
    # The inputs are left as they were.
    assert [h.get_total_count() for h in histograms] == [500, 1500, 40]


def test_one_owner_of_histogram_merging() -> None:
    """Issue 11: the analysis merges with experiments.histograms, not a copy of its own."""
    assert aggregate.merge_histograms is histograms.merge_histograms


def test_percentile_spectrum_from_merged_trials(runs: Runs) -> None:
    spectrum = aggregate.percentile_spectrum(runs)
    assert len(spectrum) == 3 * len(aggregate.PERCENTILES)
    config = "fire-and-forget"
    merged = aggregate.merge_histograms(
        [
            runs.histograms["003-mode=fire-and-forget_defaults-t1"],
            runs.histograms["006-mode=fire-and-forget_defaults-t2"],
        ]
    )
    rows = spectrum[spectrum["configuration"] == config].set_index("percentile")
    assert rows.loc[99.0, "latency_ms"] == merged.get_value_at_percentile(99.0) / 1000
    assert rows.loc[100.0, "latency_ms"] == merged.get_max_value() / 1000
    assert rows["samples"].iloc[0] == 40311 + 39939
    # 80,250 requests resolve p99.99 (8 above it) but not p99.999 (0.8 above it).
    assert rows.loc[99.99, "resolved"] and not rows.loc[99.999, "resolved"]
    assert rows["latency_ms"].is_monotonic_increasing


def test_producer_settings(runs: Runs) -> None:
    assert aggregate.producer_settings(runs) == ["producer.linger.ms"]
    assert aggregate.varying_params(runs) == ["mode", "producer.linger.ms"]


def test_ramp(runs: Runs) -> None:
    ramp = aggregate.ramp(runs).set_index("configuration")
    durable = runs.series[runs.series["configuration"] == "durable, linger.ms=0"]
    first = durable[durable["second"] == -2]["events_accepted"].median()
    measured = durable[durable["phase"] == "measure"].groupby("second")["events_accepted"].median()
    assert ramp.loc["durable, linger.ms=0", "first_rate"] == first
    assert ramp.loc["durable, linger.ms=0", "steady_rate"] == measured.median()
    assert ramp.loc["durable, linger.ms=0", "seconds_to_steady"] == 4
    assert ramp.loc["fire-and-forget", "seconds_to_steady"] == 1
    assert (ramp["warmup_s"] == 2).all()


def test_per_second_band(runs: Runs) -> None:
    table = aggregate.per_second(runs)
    assert len(table) == 3 * 12
    row = table[(table["configuration"] == "fire-and-forget") & (table["second"] == 0)].iloc[0]
    values = runs.series[(runs.series["configuration"] == "fire-and-forget") & (runs.series["second"] == 0)]
    assert (row["min"], row["max"]) == (values["events_accepted"].min(), values["events_accepted"].max())
    assert row["phase"] == "measure"
    assert isinstance(table, pd.DataFrame)
