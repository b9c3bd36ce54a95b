"""An open-loop rate sweep (issue 13): per offered rate, the knee, drawn against the offered rate."""

from __future__ import annotations

import statistics

from experiments.analysis import Runs, sweep

from .conftest import SATURATION_PLAN, read_summary

DURABLE_RUNS = {rate: (f"{i:03d}-mode=durable_rate={rate}-t1", f"{i + 8:03d}-mode=durable_rate={rate}-t2")
                for i, rate in zip((1, 2, 3, 4), (500, 750, 1500, 3000), strict=True)}  # fmt: skip


def test_saturation_table_is_per_offered_rate(saturation_runs: Runs) -> None:
    table = sweep.saturation_table(saturation_runs)
    durable = table[table["configuration"] == "durable"].set_index("offered_rps")
    assert list(durable.index) == [500.0, 750.0, 1500.0, 3000.0]
    t1, t2 = (read_summary(SATURATION_PLAN, n)["results"] for n in DURABLE_RUNS[750])
    assert durable.loc[750.0, "p99_ms_median"] == statistics.median(
        [t1["latency_ms"]["p99"], t2["latency_ms"]["p99"]]
    )
    assert durable.loc[750.0, "p99_ms_min"] == min(t1["latency_ms"]["p99"], t2["latency_ms"]["p99"])
    assert list(durable["overloaded_trials"]) == [0, 0, 2, 2]
    assert sweep.knees(saturation_runs) == {"durable": 750.0, "fire-and-forget": 1500.0}


def test_saturation_chart_is_against_the_offered_rate(saturation_runs: Runs, runs: Runs) -> None:
    figure = sweep.figure(saturation_runs)
    assert figure is not None
    completed, latency = figure.axes[:2]
    assert completed.get_xlabel() == latency.get_xlabel() == "offered requests/s"
    identity = [line for line in completed.get_lines() if line.get_label() == "completed = offered"]
    assert len(identity) == 1 and list(identity[0].get_xdata()) == list(identity[0].get_ydata())
    # The knees (750 and 1,500/s) are vertical lines on both panels.
    verticals = {line.get_xdata()[0] for line in completed.get_lines() if len(set(line.get_xdata())) == 1}
    assert {750.0, 1500.0} <= verticals
    assert any(line.get_label().startswith("SLO p99 <= 50") for line in latency.get_lines())
    assert sweep.figure(runs) is None  # closed loop: no offered rate
