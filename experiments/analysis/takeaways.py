"""One-line conclusions computed from the runs: each figure's caption, never typed by hand.

Every function takes the loaded runs and returns one sentence. Plans with one mode, one
configuration or one trial get a sentence that says so instead of a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from experiments.analysis import aggregate
from experiments.analysis._effects import setting_effect
from experiments.analysis._format import (
    fmt_cores,
    fmt_count,
    fmt_ms,
    fmt_pct,
    fmt_range,
    fmt_rate,
    fmt_ratio,
)
from experiments.analysis.load import COMPONENTS, Runs
from experiments.analysis.params import is_missing

__all__ = [
    "audit",
    "cpu",
    "failed",
    "latency",
    "ramp",
    "saturation",
    "setting_effect",
    "spread",
    "throughput",
]

NO_RESULTS = "no run of this plan produced results"
# A knee: p99 grows by this factor while throughput grows by less than KNEE_GAIN.
KNEE_P99_FACTOR = 1.5
KNEE_GAIN = 0.10


def _trials_phrase(counts: Sequence[int]) -> str:
    low, high = min(counts), max(counts)
    if high == 1:
        return "one trial each" if len(counts) > 1 else "one trial"
    return f"median of {high} trials" if low == high else f"median of {low}-{high} trials"


def _best_per_mode(table: pd.DataFrame) -> pd.DataFrame:
    """Each mode's configuration with the highest median throughput, best mode first."""
    best = table.loc[table.groupby("mode", sort=False)["events_per_s_median"].idxmax()]
    return best.sort_values("events_per_s_median", ascending=False)


def throughput(runs: Runs) -> str:
    """Which mode sustained more events per second, and by how much."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    table = table.dropna(subset=["events_per_s_median"])
    if table.empty:
        return "no run reported its throughput"
    best = _best_per_mode(table)
    several = table.groupby("mode").size().max() > 1
    trials = _trials_phrase(list(best["trials"]))
    if len(best) == 1:
        row = best.iloc[0]
        spread = fmt_range(row["events_per_s_min"], row["events_per_s_max"], fmt_rate)
        where = f" ({row['config']})" if several else ""
        up_to = "up to " if several else ""
        text = f"{row['mode']} sustained {up_to}{fmt_rate(row['events_per_s_median'])} events/s{where}"
        return text + (f", {trials}, range {spread}" if row["trials"] > 1 else f", {trials}")
    top, rest = best.iloc[0], best.iloc[1:]
    if len(rest) == 1:
        other = rest.iloc[0]
        ratio = top["events_per_s_median"] / other["events_per_s_median"]
        text = (
            f"{top['mode']} sustained {fmt_ratio(ratio)} the throughput of {other['mode']} "
            f"({fmt_rate(top['events_per_s_median'])} vs "
            f"{fmt_rate(other['events_per_s_median'])} events/s, {trials})"
        )
    else:
        others = ", ".join(f"{fmt_rate(r['events_per_s_median'])} ({r['mode']})" for _, r in rest.iterrows())
        text = (
            f"{top['mode']} sustained the most: {fmt_rate(top['events_per_s_median'])} "
            f"events/s vs {others} ({trials})"
        )
    if several:
        text += "; " + "; ".join(
            f"best {r['mode']} configuration: {_without_mode(r['config'], r['mode'])}"
            for _, r in best.iterrows()
            if (table["mode"] == r["mode"]).sum() > 1
        )
    return text


def _without_mode(config: str, mode: str) -> str:
    """`durable, linger.ms=5` -> `linger.ms=5` (the mode is already in the sentence)."""
    rest = config.removeprefix(f"{mode}, ")
    return "the default settings" if rest == mode else rest


def ramp(runs: Runs) -> str:
    """How fast each configuration reached its steady rate (the seed's 4K -> 45K picture)."""
    table = aggregate.ramp(runs)
    if table.empty:
        return "no per-second series was recorded"
    parts = []
    for _, row in table.iterrows():
        if is_missing(row["seconds_to_steady"]) or row["seconds_to_steady"] <= 1:
            parts.append(
                f"{row['config']} ran at its steady {fmt_rate(row['steady_rate'])} "
                "events/s from the first second"
            )
        else:
            parts.append(
                f"{row['config']} ramped from {fmt_rate(row['first_rate'])} to "
                f"{fmt_rate(row['steady_rate'])} events/s in {int(row['seconds_to_steady'])} s"
            )
    start = "counting from the first warm-up second, " if table["warmup_s"].max() > 0 else ""
    return (
        start + "; ".join(parts) + " (steady: median per-second rate of the measured "
        "window; reached: 90% of it)"
    )


def latency(runs: Runs) -> str:
    """p99 and p99.9 of each configuration, from the merged histograms of its trials."""
    spectrum = aggregate.percentile_spectrum(runs, (99.0, 99.9))
    if spectrum.empty:
        return "no latency histogram was recorded"

    def value(config: str, p: float) -> str:
        row = spectrum[(spectrum["config"] == config) & (spectrum["percentile"] == p)].iloc[0]
        return fmt_ms(row["latency_ms"]) if row["resolved"] else "n/a (too few samples)"

    configs = list(dict.fromkeys(spectrum["config"]))
    if len(configs) == 1:
        config = configs[0]
        samples = fmt_count(spectrum["samples"].iloc[0])
        trials = int((runs.summaries["config"] == config).sum())
        source = "histogram of its one trial" if trials == 1 else f"merged histogram of {trials} trials"
        return (
            f"p99 of {config} is {value(config, 99.0)}; p99.9 {value(config, 99.9)} "
            f"({source}, {samples} requests)"
        )
    parts = [f"{c} {value(c, 99.0)} / {value(c, 99.9)}" for c in configs]
    return "p99 / p99.9 from the merged histograms of all trials: " + "; ".join(parts)


def saturation(runs: Runs) -> str:
    """How p99 moved with achieved throughput within each mode, and where it bent."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts = []
    table = table.dropna(subset=["events_per_s_median", "p99_ms_median"])
    if table.empty:
        return "no run reported both its throughput and its p99"
    for mode, group in table.groupby("mode", sort=False):
        group = group.sort_values("events_per_s_median")
        rates, p99 = list(group["events_per_s_median"]), list(group["p99_ms_median"])
        if len(group) == 1:
            parts.append(f"{mode}: one configuration, p99 {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s")
            continue
        verb = "rose" if p99[-1] > p99[0] else "fell"
        text = (
            f"{mode}: p99 {verb} from {fmt_ms(p99[0])} at {fmt_rate(rates[0])} events/s "
            f"to {fmt_ms(p99[-1])} at {fmt_rate(rates[-1])} events/s"
        )
        for i in range(1, len(rates)):
            gain = rates[i] / rates[i - 1] - 1
            growth = p99[i] / p99[i - 1]
            if growth >= KNEE_P99_FACTOR and gain < KNEE_GAIN:
                text += (
                    f"; knee near {fmt_rate(rates[i - 1])} events/s: the next step "
                    f"added {fmt_pct(gain)} throughput for {fmt_ratio(growth)} the p99"
                )
                break
        parts.append(text)
    return "; ".join(parts) + " (medians of trials)"


def cpu(runs: Runs) -> str:
    """Cores used per component, the busiest one, and whether the generator was the limit."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    parts, busiest = [], []
    for _, row in table.iterrows():
        used = {c: row[f"cpu_{c}_median"] for c in COMPONENTS}
        used = {c: v for c, v in sorted(used.items(), key=lambda kv: -_value(kv[1]))}
        top = next(iter(used))
        busiest.append(top)
        listed = ", ".join(f"{c} {fmt_cores(v)}" for c, v in used.items())
        per_core = row["events_per_s_median"] / (row["cpu_service_median"] / 100)
        parts.append(
            f"{row['config']}: {listed} of {fmt_count(row['cores'])} cores "
            f"({fmt_rate(per_core)} events/s per service core)"
        )
    text = "; ".join(parts)
    if len(set(busiest)) == 1:
        text += f". The busiest component is the {busiest[0]} in every configuration"
    else:
        text += ". The busiest component differs between configurations"
    known = table[table["cpu_machine_median"].notna() & table["cores"].notna()]
    saturated = known[known["cpu_machine_median"] >= 0.9 * known["cores"].astype(float) * 100]
    if len(saturated):
        text += "; the machine was saturated in " + ", ".join(saturated["config"])
    bound = runs.summaries[runs.summaries["generator_bound"].fillna(False).astype(bool)]
    if len(bound):
        configs = ", ".join(dict.fromkeys(bound["config"]))
        text += (
            f"; the generator was flagged generator-bound in {len(bound)} of "
            f"{len(runs.summaries)} runs ({configs}): there the client, not the service, "
            "set the limit"
        )
    return text


def _value(x: object) -> float:
    return -math.inf if is_missing(x) else float(x)  # type: ignore[arg-type]


def audit(runs: Runs) -> str:
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
        text += f"; {fmt_count(duplicated['duplicates'].sum())} duplicates in {len(duplicated)} runs"
    elif len(audited):
        text += "; no duplicates"
    if missing:
        text += f"; {missing} runs have no audit"
    return text


def spread(runs: Runs) -> str:
    """How much trials of one configuration disagreed: the noise floor of every comparison."""
    table = aggregate.config_table(runs)
    if table.empty:
        return NO_RESULTS
    repeated = table[table["trials"] >= 2]
    if repeated.empty:
        return (
            "one trial per configuration: the spread across trials is unknown, so small "
            "differences may be noise"
        )
    parts = []
    for metric, label in (("events_per_s", "throughput varied"), ("p99_ms", "p99")):
        relative = (repeated[f"{metric}_max"] - repeated[f"{metric}_min"]) / repeated[f"{metric}_median"]
        relative = relative.dropna()
        if relative.empty:
            continue
        worst = relative.idxmax()
        parts.append(f"{label} by at most {fmt_pct(relative[worst])} ({repeated.at[worst, 'config']})")
    if not parts:
        return "the runs recorded neither throughput nor p99, so there is no spread to show"
    return "across trials (max - min, relative to the median), " + " and ".join(parts)


def failed(runs: Runs) -> str:
    """Which cells produced no result, so a missing configuration is never silent."""
    total = len(runs.summaries) + len(runs.failed)
    if runs.failed.empty:
        return "the one run produced results" if total == 1 else f"all {total} runs produced results"
    cells = "; ".join(f"{r['run']} ({r['error']})" for _, r in runs.failed.iterrows())
    verb = "is" if len(runs.failed) == 1 else "are"
    return f"{len(runs.failed)} of {total} cells produced no result and {verb} left out: {cells}"
