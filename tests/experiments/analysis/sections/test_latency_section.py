"""The Latency section: the percentile spectrum of a configuration's merged histograms,
its table and its sentence."""

from __future__ import annotations

from experiments.analysis import Runs, aggregate, load_runs
from experiments.analysis.sections import latency

from ..conftest import RUN_NAMES, MakePlan


def test_fixture_takeaway(runs: Runs) -> None:
    assert latency.takeaway(runs) == (
        "p99 / p99.9 from the merged histograms of all trials: durable, linger.ms=0 68.7 ms / "
        "130 ms; durable, linger.ms=5 45.2 ms / 86.8 ms; fire-and-forget 22.6 ms / 41.6 ms"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert latency.takeaway(runs) == (
        "p99 of durable is 69.4 ms; p99.9 128 ms (histogram of its one trial, 17,792 requests)"
    )


def test_percentile_spectrum_from_merged_trials(runs: Runs) -> None:
    spectrum = latency.percentile_spectrum(runs)
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


def test_spectrum_table(runs: Runs, saturation_runs: Runs) -> None:
    spectrum = latency.table(runs).set_index("configuration")
    assert list(spectrum.columns) == [
        "requests", "min", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "p99.999", "max",
    ]  # fmt: skip
    assert spectrum.loc["fire-and-forget", "requests"] == "80,250"
    assert spectrum.loc["fire-and-forget", "p99.999"] == "-"  # not resolved by 80,250 requests
    spectrum = latency.table(saturation_runs)
    assert "durable, rate=3000 (OVERLOADED)" in set(spectrum["configuration"])


def test_axis_labels_carry_units(runs: Runs) -> None:
    spectrum = latency.figure(runs)
    assert spectrum is not None
    axis = spectrum.axes[0]
    assert axis.get_ylabel() == "latency (ms, log scale)"
    assert axis.get_yscale() == "log"
    labels = [t.get_text() for t in axis.get_xticklabels()]
    assert labels == ["50%", "90%", "99%", "99.9%", "99.99%"]
