"""The Latency versus load section: closed loop against the achieved rate, open loop against
the offered rate (sweep.py, capacity.py: their own tests), and a capacity search's path."""

from __future__ import annotations

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import saturation

from ..conftest import RUN_NAMES, SATURATION_PLAN, MakePlan, edit_summary


def test_fixture_takeaway(runs: Runs) -> None:
    assert saturation.takeaway(runs) == (
        "durable: p99 fell from 68.5 ms at 1,784 events/s to 45.1 ms at 2,426 events/s; "
        "fire-and-forget: one configuration, p99 22.6 ms at 4,012 events/s (medians of trials)"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert saturation.takeaway(runs) == (
        "durable: one configuration, p99 69.4 ms at 1,779 events/s (medians of trials)"
    )


def test_saturation_knee_and_default_baseline(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:1] + RUN_NAMES[2:4])
    points = {
        RUN_NAMES[0]: (8, 1000.0, 10.0),
        RUN_NAMES[2]: (16, 1800.0, 12.0),
        RUN_NAMES[3]: (32, 1850.0, 40.0),
    }
    for name, (connections, rate, p99) in points.items():
        edit_summary(
            plan / name,
            params__connections=connections,
            params__trial=1,
            run__trial=1,
            params__producer_config={},
            results__events_per_s=rate,
            results__latency_ms__p99=p99,
        )
    runs = load_runs(plan)
    assert runs.varying == ("connections",)
    assert saturation.takeaway(runs) == (
        "durable: p99 rose from 10.0 ms at 1,000 events/s to 40.0 ms at 1,850 events/s; knee near "
        "1,800 events/s: the next step added 2.8% throughput for 3.3x the p99 (medians of trials)"
    )


def test_overloaded_takeaway_word_for_word(saturation_runs: Runs) -> None:
    assert saturation.takeaway(saturation_runs) == (
        "durable: completed what was offered up to 750/s (p99 18.8 ms at 500/s, 51.6 ms at 750/s); "
        "at 1,500/s it was overloaded, completing 1,000 events/s with p99 2,382 ms: knee near 750/s; "
        "fire-and-forget: completed what was offered up to 1,500/s (p99 8.58 ms at 500/s, 15.4 ms "
        "at 1,500/s); at 3,000/s it was overloaded, completing 2,500 events/s with p99 1,171 ms: "
        "knee near 1,500/s (medians of trials; rates offered in requests/s)"
    )


def test_the_overloaded_run_alone_is_never_called_steady(overloaded_only: Runs) -> None:
    assert saturation.takeaway(overloaded_only) == (
        "durable: overloaded from the lowest offered rate, 3,000/s (completed 1,000 events/s) "
        "(medians of trials; rates offered in requests/s)"
    )
    assert "sustained 1,000" not in saturation.takeaway(overloaded_only)
    assert "steady 1,000" not in saturation.takeaway(overloaded_only)


def test_open_loop_runs_are_not_drawn_against_the_achieved_rate(saturation_runs: Runs) -> None:
    assert saturation.closed_figure(saturation_runs) is None  # open loop: not against achieved


def test_search_path(search_runs: Runs) -> None:
    assert saturation.search_takeaway(search_runs) == (
        "durable: 500 holds, 3,000 fails, 1,750 fails, 1,125 fails, 812 holds, 969 fails; capacity "
        "between 812-969/s; fire-and-forget: 500 holds, 3,000 fails, 1,750 holds, 2,375 fails, "
        "2,062 holds, 2,219 fails; capacity between 2,062-2,219/s"
    )
    table = saturation.search_table(search_runs)
    assert table.iloc[1].to_dict() == {
        "configuration": "durable",
        "step": "2",
        "offered requests/s": "3,000",
        "p99 ms (median, min-max)": "n/a (n/a)",
        "overloaded trials": "2 of 2",
        "verdict": "fails",
    }
    figure = saturation.search_figure(search_runs)
    assert figure is not None and figure.axes[0].get_ylabel() == "offered requests/s"
    assert saturation.search_figure(load_runs(SATURATION_PLAN)) is None
