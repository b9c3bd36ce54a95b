"""The Comparisons section: like-for-like pairs, each change with its interval and verdict."""

from __future__ import annotations

from experiments.analysis import Options, Runs, load_runs
from experiments.analysis.blocks import Table
from experiments.analysis.sections import comparisons

from ..conftest import FIXTURE_PLAN


def test_pairs_differ_in_one_thing(runs: Runs) -> None:
    assert list(comparisons.pairs(runs)) == [
        ("settings", "durable, linger.ms=0", "durable, linger.ms=5")]


def test_every_change_has_its_interval_and_a_verdict_that_needs_it(runs: Runs) -> None:
    table = comparisons.table(runs).set_index("figure")
    assert table.loc["events/s", "change, CI"] == "+36% (95% CI +4% to +78%)"
    assert table.loc["events/s", "verdict"] == "better"
    # -34% is not told from noise by two trials each: no "faster" on an overlap.
    assert table.loc["p99", "verdict"] == "no difference detectable with these trials (~16 would detect 5%)"
    assert comparisons.takeaway(comparisons.table(runs)).startswith(
        "2 of 3 comparisons found a change of 5% or more: ")


def test_a_plan_against_itself_reads_as_no_difference() -> None:
    runs = load_runs(FIXTURE_PLAN, Options(baseline_dir=FIXTURE_PLAN))
    tables = [b.frame for b in comparisons.render(runs) if isinstance(b, Table)]
    against = tables[-1]
    assert len(against) == 3 * 3  # three configurations, three figures
    # Two trials each: an interval within 5% for some, too wide to say so for others.
    assert all(v.startswith("no difference") for v in against["verdict"])


def test_python_is_compared_with_the_rust_build_and_each_mode_with_durable() -> None:
    """The versus-rust plan's question (issue 17: Python at >= 0.75x Rust, durable) is a
    comparison of its own, with Rust as the base, per mode; the mode pairs stay per build."""
    from types import SimpleNamespace

    import pandas as pd

    configs = [("fire-and-forget", "python"), ("durable", "python"),
               ("fire-and-forget", "rust"), ("durable", "rust")]
    summaries = pd.DataFrame([{"configuration": f"{m}, service_impl={i}", "mode": m, "service_impl": i}
                              for m, i in configs])
    runs = SimpleNamespace(summaries=summaries, varying=("mode", "service_impl"))
    assert sorted(comparisons.pairs(runs)) == sorted([  # type: ignore[arg-type]
        ("mode", "durable, service_impl=python", "fire-and-forget, service_impl=python"),
        ("mode", "durable, service_impl=rust", "fire-and-forget, service_impl=rust"),
        ("implementation", "fire-and-forget, service_impl=rust", "fire-and-forget, service_impl=python"),
        ("implementation", "durable, service_impl=rust", "durable, service_impl=python"),
    ])
