"""Takeaways: the exact sentence for fixed result files, and plans too small to compare."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import Runs, load_runs, takeaways
from experiments.analysis._format import (
    fmt_cores,
    fmt_count,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_ratio,
)

from .conftest import RUN_NAMES

MakePlan = Callable[[Iterable[str]], Path]


def test_number_formats() -> None:
    assert [fmt_num(x) for x in (4120.4, 1789.6, 12.44, 41.0, 1.234, 0.8123, 0, float("nan"))] == [
        "4,120", "1,790", "12.4", "41.0", "1.23", "0.812", "0", "n/a",
    ]  # fmt: skip
    assert fmt_ms(12.44) == "12.4 ms"
    assert fmt_count(48528.0) == "48,528"
    assert [fmt_pct(x) for x in (0.35, 0.045, 0.000112)] == ["35%", "4.5%", "0.0112%"]
    assert fmt_ratio(2.34) == "2.3x"
    assert fmt_cores(140.0) == "1.4"
    assert fmt_range(1779.0, 1788.3) == "1,779-1,788"
    assert fmt_range(5.0, 5.001) == "5.00"


def test_fixture_takeaways(runs: Runs) -> None:
    assert takeaways.throughput(runs) == (
        "fire-and-forget sustained 1.7x the throughput of durable (4,012 vs 2,426 events/s, "
        "median of 2 trials); best durable configuration: linger.ms=5"
    )
    assert takeaways.ramp(runs) == (
        "counting from the first warm-up second, durable, linger.ms=0 ramped from 724 to 1,804 "
        "events/s in 4 s; durable, linger.ms=5 ramped from 978 to 2,446 events/s in 4 s; "
        "fire-and-forget ran at its steady 4,002 events/s from the first second (steady: median "
        "per-second rate of completions in the measured window; reached: 90% of it)"
    )
    assert takeaways.latency(runs) == (
        "p99 / p99.9 from the merged histograms of all trials: durable, linger.ms=0 68.7 ms / "
        "130 ms; durable, linger.ms=5 45.2 ms / 86.8 ms; fire-and-forget 22.6 ms / 41.6 ms"
    )
    assert takeaways.saturation(runs) == (
        "durable: p99 fell from 68.5 ms at 1,784 events/s to 45.1 ms at 2,426 events/s; "
        "fire-and-forget: one configuration, p99 22.6 ms at 4,012 events/s (medians of trials)"
    )
    assert takeaways.setting_effect(runs) == (
        "linger.ms=5 raised durable throughput by 36% over linger.ms=0 (2,426 vs 1,784 events/s; "
        "p99 45.1 ms vs 68.5 ms)"
    )
    assert takeaways.cpu(runs) == (
        "durable, linger.ms=0: service 1.0, generator 0.5, broker 0.2 of 4 cores (1,724 events/s "
        "per service core); durable, linger.ms=5: service 1.3, generator 0.6, broker 0.2 of 4 "
        "cores (1,902 events/s per service core); fire-and-forget: service 1.8, generator 1.0, "
        "broker 0.3 of 4 cores (2,171 events/s per service core). The busiest component is the "
        "service in every configuration; the generator was flagged generator-bound in 1 of 6 "
        "runs (fire-and-forget): there the client, not the service, set the limit"
    )
    assert takeaways.audit(runs) == (
        "12 acknowledged events lost in 1 run of 6 (006-mode=fire-and-forget_defaults-t2: "
        "12 of 47,942); no duplicates"
    )
    assert takeaways.spread(runs) == (
        "across trials (max - min, relative to the median), throughput varied by at most 4.4% "
        "(durable, linger.ms=5) and p99 by at most 9.0% (durable, linger.ms=5)"
    )
    assert takeaways.failed(runs) == (
        "2 of 8 cells produced no result and are left out: 007-mode=fire-and-forget_linger.ms=5-t1 "
        "(LabError: the service did not answer /healthz within 30 s); "
        "008-mode=fire-and-forget_linger.ms=5-t2 (not run: no run directory)"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert takeaways.throughput(runs) == "durable sustained 1,779 events/s, one trial"
    assert takeaways.latency(runs) == (
        "p99 of durable is 69.4 ms; p99.9 128 ms (histogram of its one trial, 17,792 requests)"
    )
    assert takeaways.saturation(runs) == (
        "durable: one configuration, p99 69.4 ms at 1,779 events/s (medians of trials)"
    )
    assert takeaways.setting_effect(runs) == (
        "no producer setting varies in this plan, so there is no setting effect to show"
    )
    assert takeaways.cpu(runs) == (
        "durable: service 1.0, generator 0.5, broker 0.2 of 4 cores (1,709 events/s per service "
        "core). The busiest component is the service in every configuration"
    )
    assert takeaways.spread(runs) == (
        "one trial per configuration: the spread across trials is unknown, so small differences may be noise"
    )
    assert takeaways.failed(runs) == "the one run produced results"


def test_two_modes_one_trial_each(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[4]]))
    assert takeaways.throughput(runs) == (
        "fire-and-forget sustained 2.3x the throughput of durable (4,031 vs 1,779 events/s, one trial each)"
    )


def test_one_mode_two_trials(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:2]))
    assert takeaways.throughput(runs) == (
        "durable sustained 1,784 events/s, median of 2 trials, range 1,779-1,788"
    )
    assert takeaways.audit(runs) == (
        "no acknowledged event was lost in any of the 2 audited runs (39,420 acknowledged "
        "events checked); no duplicates"
    )


def test_setting_effect_with_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[2]]))
    assert takeaways.setting_effect(runs) == (
        "linger.ms=5 raised durable throughput by 33% over linger.ms=0 (2,372 vs 1,779 events/s; "
        "p99 47.1 ms vs 69.4 ms), one trial: spread unknown"
    )


def _edit(run_dir: Path, **changes: Any) -> None:
    """Rewrite fields of a copied summary.json: `results.events_per_s=...` style keys."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = summary
        for key in parents:
            target = target[key]
        target[leaf] = value
    path.write_text(json.dumps(summary))


def test_saturation_knee_and_default_baseline(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:1] + RUN_NAMES[2:4])
    points = {
        RUN_NAMES[0]: (8, 1000.0, 10.0),
        RUN_NAMES[2]: (16, 1800.0, 12.0),
        RUN_NAMES[3]: (32, 1850.0, 40.0),
    }
    for name, (connections, rate, p99) in points.items():
        _edit(
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
    assert takeaways.saturation(runs) == (
        "durable: p99 rose from 10.0 ms at 1,000 events/s to 40.0 ms at 1,850 events/s; knee near "
        "1,800 events/s: the next step added 2.8% throughput for 3.3x the p99 (medians of trials)"
    )


def test_setting_compared_with_the_default(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:4])
    for name in RUN_NAMES[:2]:
        _edit(plan / name, params__producer_config={})
    runs = load_runs(plan)
    assert takeaways.setting_effect(runs) == (
        "linger.ms=5 raised durable throughput by 36% over the default (2,426 vs 1,784 events/s; "
        "p99 45.1 ms vs 68.5 ms)"
    )


def test_no_results(tmp_path: Path) -> None:
    (tmp_path / "001-x-t1").mkdir()
    runs = load_runs(tmp_path)
    for takeaway in (
        takeaways.throughput,
        takeaways.saturation,
        takeaways.cpu,
        takeaways.audit,
        takeaways.spread,
    ):
        assert takeaway(runs) == "no run of this plan produced results"
    assert takeaways.latency(runs) == "no latency histogram was recorded"
    assert takeaways.ramp(runs) == "no per-second series was recorded"
    assert takeaways.failed(runs) == (
        "1 of 1 cells produced no result and is left out: 001-x-t1 (no summary.json and no error.txt)"
    )


@pytest.mark.parametrize("drop", ["audit", "cpu_percent", "latency_ms"])
def test_missing_sections_do_not_crash(make_plan: MakePlan, drop: str) -> None:
    plan = make_plan(RUN_NAMES)
    for name in RUN_NAMES:
        summary = json.loads((plan / name / "summary.json").read_text())
        summary.pop(drop, None)
        summary["results"].pop(drop, None)
        (plan / name / "summary.json").write_text(json.dumps(summary))
    runs = load_runs(plan)
    for takeaway in (
        takeaways.throughput,
        takeaways.latency,
        takeaways.saturation,
        takeaways.setting_effect,
        takeaways.cpu,
        takeaways.audit,
        takeaways.spread,
    ):
        assert isinstance(takeaway(runs), str)


def test_bundles_of_settings_against_the_default(make_plan: MakePlan) -> None:
    """Plans vary settings in bundles ({acks: 1, enable.idempotence: false}): one variant each."""
    plan = make_plan(RUN_NAMES[:3])
    _edit(plan / RUN_NAMES[0], params__producer_config={})
    _edit(plan / RUN_NAMES[1], params__producer_config={"acks": "1", "enable.idempotence": False})
    _edit(plan / RUN_NAMES[1], params__trial=1, run__trial=1)
    runs = load_runs(plan)
    assert runs.configs == ("durable", "durable, linger.ms=5", "durable, acks=1, enable.idempotence=false")
    assert takeaways.setting_effect(runs) == (
        "durable against the default (1,779 events/s, p99 69.4 ms): linger.ms=5 +33% (p99 47.1 ms; "
        "one trial: spread unknown), acks=1 + enable.idempotence=false +0.523% (p99 67.6 ms; one "
        "trial: spread unknown)"
    )
