"""Open loop under overload (issue 13): throughput from completions, overloaded runs marked
everywhere and never called steady, saturation against the offered rate, capacity at an SLO,
the capacity search's path."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from experiments.analysis import Runs, aggregate, load_runs, plots, report, takeaways

from .conftest import OVERLOADED_RUN, SATURATION_PLAN, SEARCH_PLAN, read_summary

DURABLE_RUNS = {rate: (f"{i:03d}-mode=durable_rate={rate}-t1", f"{i + 8:03d}-mode=durable_rate={rate}-t2")
                for i, rate in zip((1, 2, 3, 4), (500, 750, 1500, 3000), strict=True)}  # fmt: skip


@pytest.fixture
def overloaded_only(tmp_path: Path) -> Runs:
    """A plan of the one overloaded run: offered 3,000/s to a service capped at 1,000/s."""
    shutil.copytree(SATURATION_PLAN / OVERLOADED_RUN, tmp_path / OVERLOADED_RUN)
    return load_runs(tmp_path)


def test_the_overloaded_fixture_is_what_the_issue_describes() -> None:
    results = read_summary(SATURATION_PLAN, OVERLOADED_RUN)["results"]
    assert results["offered_rps"] == 3000.0
    assert results["throughput_rps"] == pytest.approx(1000, rel=0.05)
    assert results["unfinished_fraction"] > 0.01
    assert results["overloaded"] is True
    # Throughput counts completions inside the window only; the cohort adds up.
    assert results["throughput_rps"] == results["ok"] / results["duration_s"]
    cohort = ("completed_in_window", "completed_after_window", "never_sent", "in_flight_at_end")
    assert sum(results[k] for k in cohort) == results["offered"]


def test_load_reads_the_v2_cohort_and_marks(saturation_runs: Runs) -> None:
    row = saturation_runs.summaries.set_index("run").loc[OVERLOADED_RUN]
    results = read_summary(SATURATION_PLAN, OVERLOADED_RUN)["results"]
    for key in ("offered_rps", "sent", "unfinished_fraction", "drain_s", "completed_after_window"):
        assert row[key] == results[key], key
    assert bool(row["overloaded"])
    assert row["engine"] == "raw" and row["launched_by_suite"]
    assert saturation_runs.slo_p99_ms == 50.0
    assert set(saturation_runs.series["phase"]) == {"warmup", "measure", "drain"}


def test_a_summary_without_the_mark_gets_the_contracts_rule(tmp_path: Path) -> None:
    for name in (OVERLOADED_RUN, DURABLE_RUNS[500][0]):
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
        summary = read_summary(tmp_path, name)
        del summary["results"]["overloaded"]
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    marks = load_runs(tmp_path).summaries.set_index("run")["overloaded"]
    assert bool(marks[OVERLOADED_RUN]) and not bool(marks[DURABLE_RUNS[500][0]])


def test_a_lab_run_1_summary_is_refused_with_the_reason(tmp_path: Path) -> None:
    shutil.copytree(SATURATION_PLAN / OVERLOADED_RUN, tmp_path / OVERLOADED_RUN)
    summary = read_summary(tmp_path, OVERLOADED_RUN)
    summary["schema"] = "lab.run/1"
    (tmp_path / OVERLOADED_RUN / "summary.json").write_text(json.dumps(summary))
    runs = load_runs(tmp_path)
    assert runs.summaries.empty
    assert runs.failed.to_dict("records") == [
        {
            "run": OVERLOADED_RUN,
            "error": "summary.json schema 'lab.run/1', expected 'lab.run/2': written by another "
            "version of the suite; re-run the cell (or report it with that version)",
        }
    ]


def test_saturation_table_is_per_offered_rate(saturation_runs: Runs) -> None:
    table = aggregate.saturation_table(saturation_runs)
    durable = table[table["configuration"] == "durable"].set_index("offered_rps")
    assert list(durable.index) == [500.0, 750.0, 1500.0, 3000.0]
    t1, t2 = (read_summary(SATURATION_PLAN, n)["results"] for n in DURABLE_RUNS[750])
    assert durable.loc[750.0, "p99_ms_median"] == statistics.median(
        [t1["latency_ms"]["p99"], t2["latency_ms"]["p99"]]
    )
    assert durable.loc[750.0, "p99_ms_min"] == min(t1["latency_ms"]["p99"], t2["latency_ms"]["p99"])
    assert list(durable["overloaded_trials"]) == [0, 0, 2, 2]
    assert aggregate.knees(saturation_runs) == {"durable": 750.0, "fire-and-forget": 1500.0}


def test_capacity_per_trial_then_median_and_range(saturation_runs: Runs) -> None:
    table = aggregate.capacity(saturation_runs).set_index("configuration")
    # Trial 1 holds 750/s (p99 under 50 ms), trial 2 does not: 750 and 500.
    p99 = [read_summary(SATURATION_PLAN, n)["results"]["latency_ms"]["p99"] for n in DURABLE_RUNS[750]]
    assert p99[0] <= 50 < p99[1]
    assert table.loc["durable", "per_trial"] == {1: 750.0, 2: 500.0}
    assert (table.loc["durable", "median"], table.loc["durable", "min"], table.loc["durable", "max"]) == (
        625.0, 500.0, 750.0,
    )  # fmt: skip
    assert table.loc["fire-and-forget", "per_trial"] == {1: 1500.0, 2: 1500.0}
    assert not table["all_held"].any()


def test_capacity_needs_a_budget_and_says_when_nothing_held(saturation_runs: Runs, tmp_path: Path) -> None:
    for name in DURABLE_RUNS[1500] + DURABLE_RUNS[3000]:
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
    assert aggregate.capacity(load_runs(tmp_path)).empty  # no plan.json: no slo_p99_ms
    assert takeaways.capacity(load_runs(tmp_path)) == ""
    info = json.loads((SATURATION_PLAN / "plan.json").read_text())
    (tmp_path / "plan.json").write_text(json.dumps({**info, "cells": []}))
    runs = load_runs(tmp_path)
    assert math.isnan(aggregate.capacity(runs).iloc[0]["median"])
    assert takeaways.capacity(runs) == "durable holds p99 <= 50 ms at none of the offered rates measured"


def test_overloaded_takeaways_word_for_word(saturation_runs: Runs) -> None:
    assert takeaways.throughput(saturation_runs) == (
        "fire-and-forget sustained 2.0x the throughput of durable (1,500 vs 750 events/s, median of "
        "2 trials); best fire-and-forget configuration: rate=1500; best durable configuration: "
        "rate=750; overloaded, so not steady and left out: durable, rate=1500 completed 1,000 of "
        "1,500 requests/s offered (37% unfinished), durable, rate=3000 completed 1,000 of 3,000 "
        "requests/s offered (77% unfinished), fire-and-forget, rate=3000 completed 2,500 of 3,000 "
        "requests/s offered (18% unfinished)"
    )
    assert takeaways.ramp(saturation_runs) == (
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
    assert takeaways.saturation(saturation_runs) == (
        "durable: completed what was offered up to 750/s (p99 18.8 ms at 500/s, 51.6 ms at 750/s); "
        "at 1,500/s it was overloaded, completing 1,000 events/s with p99 2,382 ms: knee near 750/s; "
        "fire-and-forget: completed what was offered up to 1,500/s (p99 8.58 ms at 500/s, 15.4 ms "
        "at 1,500/s); at 3,000/s it was overloaded, completing 2,500 events/s with p99 1,171 ms: "
        "knee near 1,500/s (medians of trials; rates offered in requests/s)"
    )
    assert takeaways.capacity(saturation_runs) == (
        "durable holds p99 <= 50 ms up to 625 events/s (median of 2 trials, range 500-750), "
        "fire-and-forget up to 1,500 (in each of 2 trials)"
    )


def test_the_overloaded_run_alone_is_never_called_steady(overloaded_only: Runs) -> None:
    assert takeaways.throughput(overloaded_only) == (
        "every configuration was overloaded, so none sustained a rate: durable completed 1,000 of "
        "3,000 requests/s offered (77% unfinished)"
    )
    assert takeaways.ramp(overloaded_only) == (
        "counting from the first warm-up second, durable never reached a steady rate: overloaded "
        "in 1 of 1 trials, it completed a median 1,000 events/s per second of the window against "
        "3,000 requests/s offered (steady: median per-second rate of completions in the measured "
        "window; reached: 90% of it)"
    )
    assert takeaways.saturation(overloaded_only) == (
        "durable: overloaded from the lowest offered rate, 3,000/s (completed 1,000 events/s) "
        "(medians of trials; rates offered in requests/s)"
    )
    for takeaway in (takeaways.throughput, takeaways.ramp, takeaways.saturation):
        assert "sustained 1,000" not in takeaway(overloaded_only)
        assert "steady 1,000" not in takeaway(overloaded_only)


def test_summary_table_marks_overload_and_carries_capacity(saturation_runs: Runs) -> None:
    table = report.summary_table(saturation_runs).set_index("configuration")
    row = table.loc["durable, rate=3000 (OVERLOADED)"]
    assert row["offered requests/s"] == "3,000"
    assert row["events/s (median)"] == "1,000"
    assert row["unfinished (median)"] == "77%"
    assert row["overloaded trials"] == "2 of 2"
    assert row["capacity at p99 <= 50 ms (events/s)"] == "625 (500-750)"
    assert table.loc["fire-and-forget, rate=1500", "capacity at p99 <= 50 ms (events/s)"] == "1,500"
    marked = [c for c in table.index if "OVERLOADED" in c]
    assert marked == [
        "durable, rate=1500 (OVERLOADED)",
        "durable, rate=3000 (OVERLOADED)",
        "fire-and-forget, rate=3000 (OVERLOADED)",
    ]
    assert report.capacity_table(saturation_runs).iloc[0].to_dict() == {
        "configuration": "durable",
        "capacity at p99 <= 50 ms (events/s)": "625 (500-750)",
        "trials": "2",
        "per trial / bracket": "t1: 750, t2: 500",
        "highest rate measured": "3,000",
    }
    spectrum = report.spectrum_table(saturation_runs)
    assert "durable, rate=3000 (OVERLOADED)" in set(spectrum["configuration"])


def test_closed_loop_tables_keep_their_shape(runs: Runs) -> None:
    columns = list(report.summary_table(runs).columns)
    assert not [c for c in columns if "offered" in c or "overloaded" in c or "capacity" in c]


def _legend_texts(figure: Figure) -> list[str]:
    legends = [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def test_throughput_chart_reads_completions_and_marks_overload(saturation_runs: Runs) -> None:
    figure = plots.throughput_over_time(saturation_runs)
    assert figure is not None
    axis = figure.axes[0]
    assert "completion" in axis.get_xlabel()
    assert "durable, rate=3000 (2 trials) (OVERLOADED)" in _legend_texts(figure)
    drawn_seconds = {x for line in axis.get_lines() for x in line.get_xdata()}
    assert max(saturation_runs.series["second"]) in drawn_seconds  # the drain is drawn
    assert any("drain" in t.get_text() for t in axis.texts)


def test_saturation_chart_is_against_the_offered_rate(saturation_runs: Runs, runs: Runs) -> None:
    figure = plots.saturation(saturation_runs)
    assert figure is not None
    completed, latency = figure.axes[:2]
    assert completed.get_xlabel() == latency.get_xlabel() == "offered requests/s"
    identity = [line for line in completed.get_lines() if line.get_label() == "completed = offered"]
    assert len(identity) == 1 and list(identity[0].get_xdata()) == list(identity[0].get_ydata())
    # The knees (750 and 1,500/s) are vertical lines on both panels.
    verticals = {line.get_xdata()[0] for line in completed.get_lines() if len(set(line.get_xdata())) == 1}
    assert {750.0, 1500.0} <= verticals
    assert any(line.get_label().startswith("SLO p99 <= 50") for line in latency.get_lines())
    assert plots.saturation(runs) is None  # closed loop: no offered rate
    assert plots.latency_vs_throughput(saturation_runs) is None  # open loop: not against achieved


def test_search_path(search_runs: Runs) -> None:
    path = aggregate.search_path(search_runs)
    search = json.loads((SEARCH_PLAN / "search.json").read_text())
    durable = path[path["configuration"] == "durable"]
    # The runner names configurations by cell slug; the report by its own labels.
    assert list(durable["value"]) == [s["value"] for s in search["configs"]["mode=durable"]["steps"]]
    assert list(durable["holds"]) == [True, False, False, False, True, False]
    assert takeaways.search(search_runs) == (
        "durable: 500 holds, 3,000 fails, 1,750 fails, 1,125 fails, 812 holds, 969 fails; capacity "
        "between 812-969/s; fire-and-forget: 500 holds, 3,000 fails, 1,750 holds, 2,375 fails, "
        "2,062 holds, 2,219 fails; capacity between 2,062-2,219/s"
    )
    assert takeaways.capacity(search_runs) == (
        "durable holds p99 <= 50 ms up to 812 events/s, fire-and-forget up to 2,062 (capacity "
        "search to a resolution of 250/s: 6 steps per configuration, 24 runs in all)"
    )
    table = report.search_table(search_runs)
    assert table.iloc[1].to_dict() == {
        "configuration": "durable",
        "step": "2",
        "offered requests/s": "3,000",
        "p99 ms (median, min-max)": "n/a (n/a)",
        "overloaded trials": "2 of 2",
        "verdict": "fails",
    }
    capacity = report.summary_table(search_runs)["capacity at p99 <= 50 ms (events/s)"]
    assert list(dict.fromkeys(capacity)) == ["812", "2,062"]
    # A search visits rates out of order; configurations still read low to high.
    assert search_runs.configs[:3] == ("durable, rate=500", "durable, rate=812.5", "durable, rate=968.75")
    figure = plots.search_path(search_runs)
    assert figure is not None and figure.axes[0].get_ylabel() == "offered requests/s"
    assert plots.search_path(load_runs(SATURATION_PLAN)) is None


def test_header_names_engine_and_external_target(search_runs: Runs, runs: Runs) -> None:
    facts = report.header_facts(search_runs)
    assert facts["Load engine"] == "raw"
    assert facts["Target"] == (
        "NOT launched by the suite in every run: http://127.0.0.1:18090 (rust); its CPU is known "
        "only for local processes the suite found by port"
    )
    assert set(report.cpu_table(search_runs)["flag"]) == {"external target: its CPU only where found by port"}
    facts = report.header_facts(runs)
    assert facts["Load engine"] == "aiohttp"
    assert facts["Target"] == "a service the suite launched for every run"


def test_cpu_of_everything_else_is_shown_and_flagged(saturation_runs: Runs) -> None:
    table = report.cpu_table(saturation_runs).set_index("run")
    busy = "014-mode=fire-and-forget_rate=750-t2"
    other = read_summary(SATURATION_PLAN, busy)["results"]["cpu_other_percent"]
    assert other > 0.10 * 2 * 100  # 10% of a 2-core machine
    assert table.loc[busy, "everything else (cores)"] == f"{other / 100:.1f}"
    assert table.loc[busy, "flag"] == "other load > 10% of the machine"
    assert (table["flag"] != "").sum() == 1
    assert table.loc[OVERLOADED_RUN + " (OVERLOADED)", "flag"] == ""
    assert takeaways.cpu(saturation_runs).endswith(
        "; other processes on the box used more than 10% of it in 1 of 16 runs "
        "(014-mode=fire-and-forget_rate=750-t2: 0.3 of 2 cores): those runs shared the machine "
        "with work the suite did not start"
    )


def test_a_trial_where_nothing_held_counts_as_zero(tmp_path: Path) -> None:
    """Leaving the failed trial out would report the lucky trials only."""
    for name in DURABLE_RUNS[500] + DURABLE_RUNS[750]:
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
    (tmp_path / "plan.json").write_text((SATURATION_PLAN / "plan.json").read_text())
    slow = read_summary(tmp_path, DURABLE_RUNS[500][1])
    slow["results"]["latency_ms"]["p99"] = 80.0
    (tmp_path / DURABLE_RUNS[500][1] / "summary.json").write_text(json.dumps(slow))
    row = aggregate.capacity(load_runs(tmp_path)).iloc[0]
    assert math.isnan(row["per_trial"][2])
    assert (row["median"], row["min"], row["max"]) == (375.0, 0.0, 750.0)
    assert (
        report.capacity_table(load_runs(tmp_path)).iloc[0]["per trial / bracket"] == "t1: 750, t2: none held"
    )


def test_setting_effect_crosses_out_overloaded_runs(tmp_path: Path) -> None:
    for linger, name in enumerate((DURABLE_RUNS[1500][0], DURABLE_RUNS[750][0])):
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
        summary = read_summary(tmp_path, name)
        summary["params"].update(rate=1500.0, producer_config={"linger.ms": 5 * linger})
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    figure = plots.setting_effect(load_runs(tmp_path))
    assert figure is not None
    assert figure.get_suptitle().endswith("; X: overloaded run)")
    crosses = [c for c in figure.axes[0].collections if c.get_label() == "overloaded run"]
    assert len(crosses) == 1 and len(crosses[0].get_offsets()) == 1
