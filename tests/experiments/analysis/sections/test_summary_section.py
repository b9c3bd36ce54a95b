"""The Summary section: one row per configuration as the files say, overload marks, the
capacity column, and how much trials disagreed."""

from __future__ import annotations

from typing import Any

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import summary

from ..conftest import RUN_NAMES, MakePlan


def test_fixture_spread_takeaway(runs: Runs) -> None:
    assert summary.spread_takeaway(runs) == (
        "coefficient of variation across trials: events/s at most 3.1% (durable, linger.ms=5), "
        "median 0.659%; events per service core at most 1.3% (durable, linger.ms=0), median 1.1%; "
        "p99 at most 6.4% (durable, linger.ms=5), median 2.5%"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert summary.spread_takeaway(runs) == (
        "one trial per configuration: the spread across trials is unknown, so no comparison can be decided"
    )


def test_summary_table_prints_the_files_numbers(
    runs: Runs, summaries_json: dict[str, dict[str, Any]]
) -> None:
    table = summary.table(runs).set_index("configuration")
    assert list(table.index) == list(runs.configs)
    row = table.loc["fire-and-forget"]
    a, b = (
        summaries_json[n]["results"]
        for n in ("003-mode=fire-and-forget_defaults-t1", "006-mode=fire-and-forget_defaults-t2")
    )
    assert row["events/s (median)"] == f"{(a['events_per_s'] + b['events_per_s']) / 2:,.0f}" == "4,012"
    assert row["events/s (min-max)"] == "3,994-4,031"
    assert row["p99 ms (median, min-max)"] == "22.6 (22.2-23.0)"
    assert row["lost events"] == "12"
    assert row["generator-bound trials"] == "1 of 2"
    # IQR and stdev only appear once some configuration has three trials.
    assert "events/s IQR / stdev" not in table.columns


def test_summary_table_marks_overload_and_carries_capacity(saturation_runs: Runs) -> None:
    table = summary.table(saturation_runs).set_index("configuration")
    row = table.loc["durable, rate=3000 (OVERLOADED)"]
    assert row["offered requests/s"] == "3,000"
    assert row["events/s (median)"] == "1,000"
    assert row["unfinished (median)"] == "77%"
    assert row["overloaded trials"] == "2 of 2"
    assert row["capacity at p99 <= 50 ms (events/s)"] == "500 (500-750)"  # test_capacity.py says why
    assert table.loc["fire-and-forget, rate=1500", "capacity at p99 <= 50 ms (events/s)"] == "1,500"
    marked = [c for c in table.index if "OVERLOADED" in c]
    assert marked == [
        "durable, rate=1500 (OVERLOADED)",
        "durable, rate=3000 (OVERLOADED)",
        "fire-and-forget, rate=3000 (OVERLOADED)",
    ]


def test_a_searched_capacity_is_the_same_for_every_rate_of_a_configuration(search_runs: Runs) -> None:
    capacity = summary.table(search_runs)["capacity at p99 <= 50 ms (events/s)"]
    assert list(dict.fromkeys(capacity)) == ["812", "2,062"]


def test_closed_loop_tables_keep_their_shape(runs: Runs) -> None:
    columns = list(summary.table(runs).columns)
    assert not [c for c in columns if "offered" in c or "overloaded" in c or "capacity" in c]
