"""The Delivery audit section: every run's audit as counted, and the sentence about losses."""

from __future__ import annotations

from experiments.analysis import Runs, load_runs
from experiments.analysis.sections import audit

from ..conftest import RUN_NAMES, MakePlan


def test_fixture_takeaway(runs: Runs) -> None:
    assert audit.takeaway(runs) == (
        "12 acknowledged events lost in 1 run of 6 (006-mode=fire-and-forget_defaults-t2: "
        "12 of 47,942); no duplicates"
    )


def test_one_mode_two_trials(make_plan: MakePlan) -> None:
    runs = load_runs(make_plan(RUN_NAMES[:2]))
    assert audit.takeaway(runs) == (
        "no acknowledged event was lost in any of the 2 audited runs (39,420 acknowledged "
        "events checked); no duplicates"
    )


def test_audit_table(runs: Runs) -> None:
    table = audit.table(runs)
    assert table.iloc[-1].to_dict() == {
        "run": "006-mode=fire-and-forget_defaults-t2",
        "configuration": "fire-and-forget",
        "trial": "2",
        "acknowledged": "47,942",
        "present": "47,930",
        "lost": "12",
        "unacknowledged": "0",
        "duplicates": "0",
    }
