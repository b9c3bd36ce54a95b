"""The Throughput section: completions per second, the ramp to a steady rate, and which
mode sustained more; an overloaded configuration is never called steady."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import throughput

from ..conftest import RUN_NAMES, MakePlan


def test_fixture_takeaways(runs: Runs) -> None:
    assert throughput.takeaway(runs) == (
        "fire-and-forget sustained 1.7x the throughput of durable (4,012 vs 2,426 events/s, "
        "median of 2 trials): events/s +65% (95% CI +30% to +110%), better; best durable configuration: "
        "linger.ms=5"
    )
    assert throughput.ramp_takeaway(runs) == (
        "counting from the first warm-up second, durable, linger.ms=0 ramped from 724 to 1,804 "
        "events/s in 4 s; durable, linger.ms=5 ramped from 978 to 2,446 events/s in 4 s; "
        "fire-and-forget ran at its steady 4,002 events/s from the first second (steady: median "
        "per-second rate of completions in the measured window; reached: 90% of it)"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert throughput.takeaway(runs) == "durable sustained 1,779 events/s, one trial"


def test_two_modes_one_trial_each(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[4]]))
    assert throughput.takeaway(runs) == (
        "fire-and-forget sustained 2.3x the throughput of durable (4,031 vs 1,779 events/s, one trial each): "
        "events/s +127% (too few trials for an interval)"
    )


def test_one_mode_two_trials(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:2]))
    assert throughput.takeaway(runs) == (
        "durable sustained 1,784 events/s, median of 2 trials, range 1,779-1,788"
    )


def test_ramp(runs: Runs) -> None:
    ramp = throughput.ramp(runs).set_index("configuration")
    durable = runs.series[runs.series["configuration"] == "durable, linger.ms=0"]
    first = durable[durable["second"] == -2]["events_accepted"].median()
    measured = durable[durable["phase"] == "measure"].groupby("second")["events_accepted"].median()
    assert ramp.loc["durable, linger.ms=0", "first_rate"] == first
    assert ramp.loc["durable, linger.ms=0", "steady_rate"] == measured.median()
    assert ramp.loc["durable, linger.ms=0", "seconds_to_steady"] == 4
    assert ramp.loc["fire-and-forget", "seconds_to_steady"] == 1
    assert (ramp["warmup_s"] == 2).all()


def test_per_second_band(runs: Runs) -> None:
    table = throughput.per_second(runs)
    assert len(table) == 3 * 12
    row = table[(table["configuration"] == "fire-and-forget") & (table["second"] == 0)].iloc[0]
    values = runs.series[(runs.series["configuration"] == "fire-and-forget") & (runs.series["second"] == 0)]
    assert (row["min"], row["max"]) == (values["events_accepted"].min(), values["events_accepted"].max())
    assert row["phase"] == "measure"
    assert isinstance(table, pd.DataFrame)


def test_overloaded_takeaways_word_for_word(saturation_runs: Runs) -> None:
    assert throughput.takeaway(saturation_runs) == (
        "fire-and-forget sustained 2.0x the throughput of durable (1,500 vs 750 events/s, median of "
        "2 trials): events/s +100% (95% CI +100% to +100%), better; best fire-and-forget configuration: "
        "rate=1500; best durable configuration: "
        "rate=750; overloaded, so not steady and left out: durable, rate=1500 completed 1,000 of "
        "1,500 requests/s offered (37% unfinished), durable, rate=3000 completed 1,000 of 3,000 "
        "requests/s offered (77% unfinished), fire-and-forget, rate=3000 completed 2,500 of 3,000 "
        "requests/s offered (18% unfinished)"
    )
    assert throughput.ramp_takeaway(saturation_runs) == (
        "counting from the first warm-up second, durable, rate=500 ran at its steady 500 events/s "
        "from the first second; durable, rate=750 ran at its steady 750 events/s from the first "
        "second; durable, rate=1500 never reached a steady rate: overloaded in 2 of 2 trials, it "
        "completed a median 1,000 events/s per second of the window against 1,500 requests/s "
        "offered; durable, rate=3000 never reached a steady rate: overloaded in 2 of 2 trials, it "
        "completed a median 1,000 events/s per second of the window against 3,000 requests/s "
        "offered; fire-and-forget, rate=500 ran at its steady 500 events/s from the first second; "
        "fire-and-forget, rate=750 ran at its steady 750 events/s from the first second; "
        "fire-and-forget, rate=1500 ran at its steady 1,500 events/s from the first second; "
        "fire-and-forget, rate=3000 never reached a steady rate: overloaded in 2 of 2 trials, it "
        "completed a median 2,500 events/s per second of the window against 3,000 requests/s "
        "offered (steady: median per-second rate of completions in the measured window; reached: "
        "90% of it)"
    )


def test_the_overloaded_run_alone_is_never_called_steady(overloaded_only: Runs) -> None:
    assert throughput.takeaway(overloaded_only) == (
        "every configuration was overloaded, so none sustained a rate: durable completed 1,000 of "
        "3,000 requests/s offered (77% unfinished)"
    )
    assert throughput.ramp_takeaway(overloaded_only) == (
        "counting from the first warm-up second, durable never reached a steady rate: overloaded "
        "in 1 of 1 trials, it completed a median 1,000 events/s per second of the window against "
        "3,000 requests/s offered (steady: median per-second rate of completions in the measured "
        "window; reached: 90% of it)"
    )
    for takeaway in (throughput.takeaway, throughput.ramp_takeaway):
        assert "sustained 1,000" not in takeaway(overloaded_only)
        assert "steady 1,000" not in takeaway(overloaded_only)


def _legend_texts(figure: Figure) -> list[str]:
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def test_throughput_chart_reads_completions_and_marks_overload(saturation_runs: Runs) -> None:
    figure = throughput.figure(saturation_runs)
    assert figure is not None
    axis = figure.axes[0]
    assert "completion" in axis.get_xlabel()
    assert "durable, rate=3000 (2 trials) (OVERLOADED)" in _legend_texts(figure)
    drawn_seconds = {x for line in axis.get_lines() for x in line.get_xdata()}
    assert max(saturation_runs.series["second"]) in drawn_seconds  # the drain is drawn
    assert any("drain" in t.get_text() for t in axis.texts)


def test_axis_labels_carry_units(runs: Runs) -> None:
    figure = throughput.figure(runs)
    assert figure is not None
    assert figure.axes[0].get_ylabel() == "events accepted per second"
