"""Aggregation every section shares: medians and spread on known numbers, exact histogram merges."""

from __future__ import annotations

import math
import random
from typing import Any

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
