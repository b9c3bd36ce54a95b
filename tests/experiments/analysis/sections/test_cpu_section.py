"""The CPU per component section: cores per component, the busy box and external targets flagged."""

from __future__ import annotations

import shutil

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import cpu

from ..conftest import OVERLOADED_RUN, RUN_NAMES, SATURATION_PLAN, MakePlan, edit_summary, read_summary


def test_fixture_takeaway(runs: Runs) -> None:
    assert cpu.takeaway(runs) == (
        "durable, linger.ms=0: service 1.0, generator 0.5, broker 0.2 of 4 cores (1,724 events/s "
        "per service core); durable, linger.ms=5: service 1.3, generator 0.6, broker 0.2 of 4 "
        "cores (1,902 events/s per service core); fire-and-forget: service 1.8, generator 1.0, "
        "broker 0.3 of 4 cores (2,171 events/s per service core). The busiest component is the "
        "service in every configuration; the generator was flagged generator-bound in 1 of 6 "
        "runs (fire-and-forget): there the client, not the service, set the limit"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert cpu.takeaway(runs) == (
        "durable: service 1.0, generator 0.5, broker 0.2 of 4 cores (1,709 events/s per service "
        "core). The busiest component is the service in every configuration"
    )


def test_an_external_target_is_flagged(search_runs: Runs) -> None:
    assert set(cpu.table(search_runs)["flag"]) == {"external target: its CPU only where found by port"}


def test_cpu_of_everything_else_is_shown_and_flagged(saturation_runs: Runs) -> None:
    table = cpu.table(saturation_runs).set_index("run")
    busy = "014-mode=fire-and-forget_rate=750-t2"
    other = read_summary(SATURATION_PLAN, busy)["results"]["cpu_other_percent"]
    assert other > 0.10 * 2 * 100  # 10% of a 2-core machine
    assert table.loc[busy, "everything else (cores)"] == f"{other / 100:.1f}"
    assert table.loc[busy, "flag"] == "other load > 10% of the machine"
    assert (table["flag"] != "").sum() == 1
    assert table.loc[OVERLOADED_RUN + " (OVERLOADED)", "flag"] == ""
    assert cpu.takeaway(saturation_runs).endswith(
        "; the box disturbed 1 of 16 runs (014-mode=fire-and-forget_rate=750-t2: other "
        "processes 0.3 of 2 cores): their figures were measured on a machine shared with other "
        "work or slowed by its host"
    )


def test_runs_set_aside_as_disturbed_are_named_and_left_out(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:1])
    aside = plan / "_disturbed" / f"{RUN_NAMES[0]}.1"
    aside.parent.mkdir()
    shutil.copytree(plan / RUN_NAMES[0], aside)
    runs = load_runs(plan)
    assert list(runs.summaries["run"]) == [RUN_NAMES[0]]
    assert runs.set_aside == (f"{RUN_NAMES[0]}.1",)
    assert cpu.takeaway(runs).endswith(
        "; 1 run ran again because other processes used more than 10% of the box during them "
        "or the host ran it slow (the rule reads the box, not the result; the disturbed runs are "
        f"kept in _disturbed/: {RUN_NAMES[0]}.1)"
    )


def test_a_run_the_host_slowed_is_flagged_by_its_probe_not_its_result(make_plan: MakePlan) -> None:
    """CPU-bound, five of fifteen seconds at 1.8x the probe's best: disturbed (more than a
    quarter of the window); three are not, nor are five in a run that waited on the broker
    (the service at half its cores), nor a run whose summary has no probe readings."""
    plan = make_plan(RUN_NAMES[:3])
    fast, slow = 1500.0, 2700.0

    def speed(slow_seconds: int) -> dict[str, object]:
        probes = [slow] * slow_seconds + [fast] * (15 - slow_seconds)
        return {"probe_best_us": fast, "probe_median_us": fast, "slow_seconds": slow_seconds,
                "window_probes_us": probes, "slow_factor": 1.4}

    # The fixture runs have 2 service workers on 4 cores: CPU-bound from 180%.
    for run, slow_seconds, service in ((0, 5, 190.0), (1, 3, 190.0), (2, 5, 100.0)):
        edit_summary(plan / RUN_NAMES[run], results__host_speed=speed(slow_seconds),
                     results__cpu_percent__service=service, results__cpu_percent__machine=150.0)
    runs = load_runs(plan)
    table = cpu.table(runs).set_index("run")
    assert table.loc[RUN_NAMES[0], "flag"] == "slow host in 5 s of the window"
    assert table.loc[RUN_NAMES[1], "flag"] == table.loc[RUN_NAMES[2], "flag"] == ""
    assert cpu.takeaway(runs).endswith(
        f"; the box disturbed 1 of 3 runs ({RUN_NAMES[0]}: host slow in 5 s of the window): "
        "their figures were measured on a machine shared with other work or slowed by its host"
    )


def test_the_proxy_is_a_component_only_where_a_run_sampled_it(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:2])
    assert "proxy (cores)" not in cpu.table(load_runs(plan))
    assert "proxy" not in cpu.takeaway(load_runs(plan))
    edit_summary(plan / RUN_NAMES[0], results__cpu_percent__proxy=12.0)  # behind the latency proxy
    runs = load_runs(plan)
    table = cpu.table(runs).set_index("run")
    assert table.loc[RUN_NAMES[0], "proxy (cores)"] == "0.1"
    assert "proxy 0.1" in cpu.takeaway(runs)
    assert cpu.figure(runs) is not None
