"""Decision: for a loss budget and a p99 target, which producer mode and settings, and how
much it carries, from whichever capacity and fault runs the plan holds."""

from __future__ import annotations

import pandas as pd

from experiments import decision
from experiments.analysis.blocks import Block, Table, Takeaway
from experiments.analysis.runs import Runs

TITLE = "Decision"
INTRO = """
The question the suite is for: with at most *this many* acknowledged events lost per fault,
and p99 at most *this*, which producer mode and settings, and how much will it carry? Per
configuration: its capacity at the p99 target from the open-loop rate sweep (a rate holds
when no trial was overloaded and the one-sided 95% upper bound of its trials' p99 is within
the target, every lower rate holding too: the capacity search's rule), and per fault kind the
acknowledged events lost (the worst trial decides: a budget is a promise about every fault)
and the seconds until the first success after the fault. The winner is the highest capacity
among the configurations that kept the budget in every trial of every fault measured; a
configuration without fault runs cannot be shown to keep one. Set the budget and target
with the report's parameters: `experiments report DIR --loss-budget N --p99-target-ms M`
(defaults: 0 lost, the plan's `slo_p99_ms`); `python -m experiments run decision` measures
all of it in one plan.
"""


def render(runs: Runs) -> list[Block]:
    found = choices(runs)
    if not any(c.capacity.rates or c.faults for c in found):
        return []
    budget, target = runs.options.loss_budget, runs.p99_target_ms
    return [Takeaway(decision.answer(found, budget, target)),
            Table(pd.DataFrame(decision.table(found, budget, target)))]


def choices(runs: Runs) -> list[decision.Choice]:
    return decision.choices(((name, dict(s)) for name, s in runs.raw.items()), runs.p99_target_ms)
