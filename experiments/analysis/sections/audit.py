"""Delivery audit: whether every event the service acknowledged is in Kafka (experiments/audit.py
counted it against the topic), and any duplicates."""

from __future__ import annotations

import pandas as pd

from experiments.analysis import aggregate
from experiments.analysis._format import NO_RESULTS, fmt_count
from experiments.analysis.blocks import Block, Table, Takeaway
from experiments.analysis.configs import format_value
from experiments.analysis.runs import AUDIT_KEYS, Runs

TITLE = "Delivery audit"
INTRO = """
The load generator's delivery audit of every run: events the service acknowledged, how many of
them are present in Kafka, acknowledged events that are not (lost), unacknowledged events and
duplicates.
"""


def render(runs: Runs) -> list[Block]:
    return [Table(table(runs)), Takeaway(takeaway(runs))]


def table(runs: Runs) -> pd.DataFrame:
    """The delivery audit of every run, as counted by the load generator's audit."""
    s = runs.summaries
    shown = pd.DataFrame(
        {
            "run": s["run"] + s["overloaded"].map(aggregate.run_mark),
            "configuration": s["configuration"],
            "trial": s["trial"].map(format_value),
        }
    )
    for key in AUDIT_KEYS:
        shown[key] = s[key].map(fmt_count)
    return shown


def takeaway(runs: Runs) -> str:
    """Whether any acknowledged event is missing from Kafka, and any duplicates."""
    s = runs.summaries
    if s.empty:
        return NO_RESULTS
    audited = s[s["lost"].notna()]
    missing = len(s) - len(audited)
    total = fmt_count(audited["acknowledged"].sum())
    lossy = audited[audited["lost"] > 0]
    if len(audited) == 0:
        text = "no run recorded a delivery audit"
    elif lossy.empty:
        text = (
            f"no acknowledged event was lost in any of the {len(audited)} audited runs "
            f"({total} acknowledged events checked)"
        )
    else:
        which = ", ".join(
            f"{r['run']}: {fmt_count(r['lost'])} of {fmt_count(r['acknowledged'])}"
            for _, r in lossy.iterrows()
        )
        runs_word = "run" if len(lossy) == 1 else "runs"
        text = (
            f"{fmt_count(lossy['lost'].sum())} acknowledged events lost in {len(lossy)} "
            f"{runs_word} of {len(audited)} ({which})"
        )
    duplicated = audited[audited["duplicates"].fillna(0) > 0]
    if len(duplicated):
        runs_word = "run" if len(duplicated) == 1 else "runs"
        text += f"; {fmt_count(duplicated['duplicates'].sum())} duplicates in {len(duplicated)} {runs_word}"
    elif len(audited):
        text += "; no duplicates"
    if missing:
        text += f"; {missing} runs have no audit"
    return text
