"""Summary: one row per configuration, the median of its trials and the spread between them,
with its capacity at the plan's SLO; how much trials disagreed, the noise floor of every
comparison in the report."""

from __future__ import annotations

import pandas as pd

from experiments.analysis import aggregate, capacity, confidence
from experiments.analysis._format import NO_RESULTS, fmt_count, fmt_num, fmt_pct, fmt_range, fmt_rate
from experiments.analysis.blocks import Block, Table, Takeaway
from experiments.analysis.runs import Runs

TITLE = "Summary"
INTRO = """
One row per configuration: the median of its trials and the spread between them; events/s
also as the geometric mean of the trials with its 95% interval (Student's t on log values),
its coefficient of variation (CV: the standard deviation over the mean of the trials), and
events per service core (events/s over the service's mean CPU in cores).
"""


def render(runs: Runs) -> list[Block]:
    return [Table(table(runs)), Takeaway(capacity.takeaway(runs)), Takeaway(spread_takeaway(runs))]


def table(runs: Runs) -> pd.DataFrame:
    """Per configuration: trials, median and spread of throughput and latency, errors, audit.

    Throughput is what completed inside the measured window. Open-loop plans add the offered
    rate, the unfinished share and the overloaded trials (an overloaded configuration's name
    carries the mark too), and the capacity at the plan's SLO of its sweep line.
    """
    per_config = aggregate.config_table(runs)
    dispersion = bool(len(per_config)) and per_config["trials"].max() >= aggregate.MIN_TRIALS_FOR_DISPERSION
    open_loop = bool(len(per_config)) and bool(per_config["open_loop"].any())
    capacities = capacity.by_run_configuration(runs)
    marks = aggregate.overload_marks(runs)
    rows = []
    for _, r in per_config.iterrows():
        row = {"configuration": marks[r["configuration"]], "trials": str(r["trials"])}
        if open_loop:
            row["offered requests/s"] = fmt_rate(r["offered_rps_median"])
        row["events/s (median)"] = fmt_rate(r["events_per_s_median"])
        row["events/s (min-max)"] = fmt_range(r["events_per_s_min"], r["events_per_s_max"], fmt_rate)
        figure = confidence.interval(runs, r["configuration"], "events/s")
        row["events/s mean (95% CI)"] = confidence.fmt_interval(figure)
        row["events/s CV"] = fmt_pct(figure.cv) if figure is not None and figure.cv is not None else "-"
        per_core = confidence.interval(runs, r["configuration"], "events per service core")
        row["events per service core (median)"] = fmt_rate(per_core.median) if per_core else "-"
        if dispersion:
            row["events/s IQR / stdev"] = (
                f"{fmt_rate(r['events_per_s_iqr'])} / {fmt_rate(r['events_per_s_std'])}"
            )
        if open_loop:
            row["unfinished (median)"] = fmt_pct(r["unfinished_fraction_median"])
            row["overloaded trials"] = f"{r['overloaded_trials']} of {r['trials']}"
        for metric, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            row[f"{label} ms (median, min-max)"] = (
                f"{fmt_num(r[f'{metric}_median'])} ({fmt_range(r[f'{metric}_min'], r[f'{metric}_max'])})"
            )
        row["error rate (median)"] = fmt_pct(r["error_rate_median"])
        row["lost events"] = fmt_count(r["lost"])
        row["generator-bound trials"] = f"{r['generator_bound_trials']} of {r['trials']}"
        if capacities:
            row[capacity.heading(runs)] = capacities.get(r["configuration"], "n/a")
        rows.append(row)
    return pd.DataFrame(rows)


def spread_takeaway(runs: Runs) -> str:
    """How much trials of one configuration disagreed (their CV): the noise every comparison
    of the report is judged against."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    repeated = [c for c in table["configuration"] if len(confidence.trials(runs, c, "events/s")) >= 2]
    if not repeated:
        return (
            "one trial per configuration: the spread across trials is unknown, so no comparison "
            "can be decided"
        )
    parts = []
    for figure, label in (("events/s", "events/s"), ("events per service core", "events per service core"),
                          ("p99", "p99")):
        cvs = {c: e.cv for c in repeated
               if (e := confidence.interval(runs, c, figure)) is not None and e.cv is not None}
        if cvs:
            worst = max(cvs, key=lambda c: cvs[c])
            parts.append(f"{label} at most {fmt_pct(cvs[worst])} ({worst}), median "
                         f"{fmt_pct(sorted(cvs.values())[(len(cvs) - 1) // 2])}")
    if not parts:
        return "the runs recorded neither throughput nor p99, so there is no spread to show"
    return "coefficient of variation across trials: " + "; ".join(parts)
