"""Comparisons with confidence: mode against mode, Python against the Rust build, each
producer-settings bundle against the mode's defaults, and (with a baseline directory) every
configuration against its run there; each a ratio with its 95% interval and a verdict that
needs the interval and a 5% effect."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from experiments import compare as plans
from experiments.analysis import confidence
from experiments.analysis.blocks import Block, Table, Takeaway, Text
from experiments.analysis.configs import is_producer_param, variant_label
from experiments.analysis.runs import Runs
from experiments.stats import Comparison

TITLE = "Comparisons with confidence"
INTRO = """
Every comparison the plan makes possible, between configurations that differ in one thing:
the producer mode (against durable), the service's implementation (Python against the Rust
build of the article's design), or a bundle of producer settings against the mode's defaults. A change is
the ratio of the two configurations' geometric means over their trials, with its 95%
interval (Welch's t-test on log values, scipy.stats); it is called **better** or **worse**
only when the interval excludes no change and the change is at least 5%; a real change
smaller than that reads *changed less than 5%*; an interval within ±5% reads *no difference
of 5% or more*; any other reads *no difference detectable with these trials*, with about
how many trials per configuration would detect 5%. Events per service core (events/s over
the service's mean CPU) is shown beside events/s: this box's own speed moves it less. With
a baseline directory (`experiments report DIR --baseline BASE`) each configuration is also
compared with its run there, that table's intervals widened so that they hold together.
"""
FIGURES = ("events/s", "events per service core", "p99")


def render(runs: Runs) -> list[Block]:
    rows = table(runs)
    blocks: list[Block] = [Table(rows), Takeaway(takeaway(rows))]
    baseline = runs.options.baseline_dir
    if baseline is not None:
        against = plans.compare_plans(baseline, runs.plan_dir)
        baseline_rows = _baseline_table(against)
        blocks += [Text(f"### Against the baseline `{baseline}`\n\nThis table asks whether anything "
                        f"changed: {plans.family_note(against)}."),
                   Table(baseline_rows),
                   Takeaway(takeaway(baseline_rows, f"against {baseline.name}"))]
    return blocks


# Dimensions of one parameter, each with the value the others are compared against: durable,
# the mode that answers only once the broker has the event; the Rust build of the article's
# design, the reference the Python service's speed is stated against (issue 17).
REFERENCES = (("mode", "mode", "durable"), ("implementation", "service_impl", "rust"))


def pairs(runs: Runs) -> Iterator[tuple[str, str, str]]:
    """(what differs, base configuration, other configuration) for every like-for-like pair."""
    s = runs.summaries
    if s.empty:
        return
    settings = [c for c in runs.varying if is_producer_param(c)]
    rows = s.drop_duplicates("configuration")
    dimensions = [(differs, [column], reference) for differs, column, reference in REFERENCES]
    for differs, columns, reference in [*dimensions, ("settings", settings, None)]:
        if not columns or any(c not in rows or c not in runs.varying for c in columns):
            continue
        others = [c for c in runs.varying if c not in columns]
        key = rows[others].astype("string").fillna("\0default").agg("|".join, axis=1) if others \
            else pd.Series("", index=rows.index)
        for _, group in rows.groupby(key, sort=False):
            if len(group) < 2:
                continue
            if reference is not None:
                column = columns[0]
                ordered = group.sort_values(column, key=lambda v: v != reference, kind="stable")
                base = ordered.iloc[0]
                for _, other in ordered.iloc[1:].iterrows():
                    yield differs, base["configuration"], other["configuration"]
            else:
                variants = [variant_label(r, settings) for r in group.to_dict("records")]
                named = group.assign(variant=variants)
                defaults = named[named["variant"] == "default"]
                base = defaults.iloc[0] if len(defaults) else named.iloc[0]
                for i, other in named.iterrows():
                    if i != base.name:
                        yield "settings", base["configuration"], other["configuration"]


def table(runs: Runs) -> pd.DataFrame:
    rows = []
    for differs, base, other in pairs(runs):
        for figure in FIGURES:
            c = confidence.comparison(runs, base, other, figure)
            if c is not None:
                rows.append(_row(f"{other} against {base}", differs, figure, c))
    return pd.DataFrame(rows)


def _row(what: str, differs: str, figure: str, c: Comparison) -> dict[str, str]:
    return {"comparison": what, "differs in": differs, "figure": figure,
            "trials": f"{c.n_a} / {c.n_b}", "change, CI": c.change(),
            "verdict": confidence.verdict_cell(c)}


def _baseline_table(rows: list[plans.Row]) -> pd.DataFrame:
    return pd.DataFrame([_row(r.config, "run", r.figure, r.comparison) for r in rows])


def takeaway(table: pd.DataFrame, subject: str = "") -> str:
    """How many comparisons decided, and which changes they found."""
    if table.empty:
        return ""
    decided = table[table["verdict"].isin(["better", "worse"])]
    found = "; ".join(f"{r['comparison']}: {r['figure']} {r['change, CI']}, {r['verdict']}"
                      for _, r in decided.head(6).iterrows())
    head = (f"{len(decided)} of {len(table)} comparisons{' ' + subject if subject else ''} found a "
            f"change of 5% or more")
    undecided = table[table["verdict"].str.startswith("no difference detectable")]
    tail = (f"; {len(undecided)} detected no difference with these trials" if len(undecided) else "")
    return f"{head}{': ' + found if found else ''}{tail}."
