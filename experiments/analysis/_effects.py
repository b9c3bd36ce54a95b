"""The setting-effect takeaway: producer-settings bundles compared like for like."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_ms, fmt_pct, fmt_rate
from experiments.analysis.configs import format_value, is_missing, setting_name
from experiments.analysis.runs import Runs

# Below this relative difference a change is reported as "no change".
NEGLIGIBLE = 0.01


def setting_effect(runs: Runs) -> str:
    """What each producer-settings bundle did to throughput and p99, like for like.

    Configurations are compared only with those that differ in producer settings alone
    (same mode, same everything else); the baseline is the default settings when measured.
    """
    settings = aggregate.producer_settings(runs)
    if not settings:
        return "no producer setting varies in this plan, so there is no setting effect to show"
    table = aggregate.config_table(runs)
    table["variant"] = aggregate.producer_variants(runs, table)
    others = ["mode", *(c for c in runs.varying if c != "mode" and c not in settings)]
    keys = [table[c].astype("string").fillna("\0default") for c in others]
    parts = []
    for _, group in table.groupby(keys, sort=False):
        if group["variant"].nunique() < 2:
            continue
        defaults = group[group["variant"] == "default"]
        base = defaults.iloc[0] if len(defaults) else group.iloc[0]
        rows = [r for i, r in group.iterrows() if i != base.name]
        subject = _subject(base, others)
        if len(rows) == 1:
            parts.append(_effect(rows[0], base, subject))
        else:
            rows.sort(key=lambda r: -r["events_per_s_median"])
            items = ", ".join(_effect_item(r, base) for r in rows)
            parts.append(
                f"{subject} against {_baseline(base)} ({fmt_rate(base['events_per_s_median'])} "
                f"events/s, p99 {fmt_ms(base['p99_ms_median'])}): {items}"
            )
    if not parts:
        return "producer settings vary, but never between otherwise identical configurations"
    return "; ".join(parts)


def _baseline(base: pd.Series) -> str:
    return "the default" if base["variant"] == "default" else str(base["variant"])


def _change(row: pd.Series, base: pd.Series) -> float:
    return float(row["events_per_s_median"] / base["events_per_s_median"] - 1)


def _noise(row: pd.Series, base: pd.Series) -> str:
    """Whether the difference could be trial noise: overlapping min-max ranges."""
    if min(row["trials"], base["trials"]) < 2:
        return "one trial: spread unknown"
    overlap = (
        row["events_per_s_min"] <= base["events_per_s_max"]
        and base["events_per_s_min"] <= row["events_per_s_max"]
    )
    return "within the spread across trials" if overlap else ""


def _effect(row: pd.Series, base: pd.Series, subject: str) -> str:
    change = _change(row, base)
    if abs(change) < NEGLIGIBLE:
        verb = f"left {subject} throughput unchanged (within 1%)"
    else:
        direction = "raised" if change > 0 else "lowered"
        verb = f"{direction} {subject} throughput by {fmt_pct(abs(change))}"
    text = (
        f"{row['variant']} {verb} over {_baseline(base)} "
        f"({fmt_rate(row['events_per_s_median'])} vs {fmt_rate(base['events_per_s_median'])}"
        f" events/s; p99 {fmt_ms(row['p99_ms_median'])} vs {fmt_ms(base['p99_ms_median'])})"
    )
    noise = _noise(row, base)
    return f"{text}, {noise}" if noise else text


def _effect_item(row: pd.Series, base: pd.Series) -> str:
    change = _change(row, base)
    sign = "+" if change >= 0 else "-"
    noise = _noise(row, base)
    return (
        f"{row['variant']} {sign}{fmt_pct(abs(change))} (p99 {fmt_ms(row['p99_ms_median'])}"
        f"{'; ' + noise if noise else ''})"
    )


def _subject(row: pd.Series, others: Sequence[str]) -> str:
    """`durable` or `durable (connections=64)`: whose throughput the settings changed."""
    extra = [
        f"{setting_name(c)}={format_value(row[c])}" for c in others if c != "mode" and not is_missing(row[c])
    ]
    return f"{row['mode']} ({', '.join(extra)})" if extra else str(row["mode"])
