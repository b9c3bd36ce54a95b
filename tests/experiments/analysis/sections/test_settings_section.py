"""The Effect of producer settings section: bundles of settings compared like for like."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import settings

from ..conftest import RUN_NAMES, SATURATION_PLAN, MakePlan, edit_summary, read_summary

DURABLE_RUNS = {rate: (f"{i:03d}-mode=durable_rate={rate}-t1", f"{i + 8:03d}-mode=durable_rate={rate}-t2")
                for i, rate in zip((1, 2, 3, 4), (500, 750, 1500, 3000), strict=True)}  # fmt: skip


def test_fixture_takeaway(runs: Runs) -> None:
    """Two trials each: events/s +36% is told apart from noise, p99 -34% is not."""
    assert settings.takeaway(runs) == (
        "linger.ms=5 against linger.ms=0 (durable, 2,426 vs 1,784 events/s median): events/s +36% "
        "(95% CI +4% to +78%), better; p99 -34% (95% CI -57% to +2%), no difference detectable "
        "with these trials (~16 would detect 5%)"
    )


def test_one_mode_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:1]))
    assert settings.takeaway(runs) == (
        "no producer setting varies in this plan, so there is no setting effect to show"
    )


def test_producer_settings(runs: Runs) -> None:
    assert settings.producer_settings(runs) == ["producer.linger.ms"]
    assert list(runs.varying) == ["mode", "producer.linger.ms"]


def test_setting_effect_with_one_trial(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[2]]))
    assert settings.takeaway(runs) == (
        "linger.ms=5 against linger.ms=0 (durable, 2,372 vs 1,779 events/s median): events/s +33% "
        "(too few trials for an interval); p99 -32% (too few trials for an interval)"
    )


def test_setting_compared_with_the_default(make_plan: MakePlan) -> None:
    plan = make_plan(RUN_NAMES[:4])
    for name in RUN_NAMES[:2]:
        edit_summary(plan / name, params__producer_config={})
    runs = load_runs(plan)
    assert settings.takeaway(runs) == (
        "linger.ms=5 against the default (durable, 2,426 vs 1,784 events/s median): events/s +36% "
        "(95% CI +4% to +78%), better; p99 -34% (95% CI -57% to +2%), no difference detectable "
        "with these trials (~16 would detect 5%)"
    )


def test_bundles_of_settings_against_the_default(make_plan: MakePlan) -> None:
    """Plans vary settings in bundles ({acks: 1, enable.idempotence: false}): one variant each."""
    plan = make_plan(RUN_NAMES[:3])
    edit_summary(plan / RUN_NAMES[0], params__producer_config={})
    edit_summary(plan / RUN_NAMES[1], params__producer_config={"acks": "1", "enable.idempotence": False})
    edit_summary(plan / RUN_NAMES[1], params__trial=1, run__trial=1)
    runs = load_runs(plan)
    assert runs.configs == ("durable", "durable, linger.ms=5", "durable, acks=1, enable.idempotence=false")
    assert settings.takeaway(runs) == (
        "durable against the default (1,779 events/s, p99 69.4 ms): linger.ms=5 events/s +33% (too "
        "few trials for an interval); p99 -32% (too few trials for an interval); acks=1 + "
        "enable.idempotence=false events/s +0.5% (too few trials for an interval); p99 -2% (too "
        "few trials for an interval)"
    )


def test_setting_effect_is_skipped_without_a_varying_setting(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan([RUN_NAMES[0], RUN_NAMES[4]]))
    assert settings.figure(runs) is None


def test_setting_effect_crosses_out_overloaded_runs(tmp_path: Path) -> None:
    for linger, name in enumerate((DURABLE_RUNS[1500][0], DURABLE_RUNS[750][0])):
        shutil.copytree(SATURATION_PLAN / name, tmp_path / name)
        summary = read_summary(tmp_path, name)
        summary["params"].update(rate=1500.0, producer_config={"linger.ms": 5 * linger})
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    figure = settings.figure(load_runs(tmp_path))
    assert figure is not None
    assert figure.get_suptitle().endswith("; X: overloaded run)")
    crosses = [c for c in figure.axes[0].collections if c.get_label() == "overloaded run"]
    assert len(crosses) == 1 and len(crosses[0].get_offsets()) == 1
