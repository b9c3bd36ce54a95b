"""Effect of producer settings: what each bundle of producer settings did to throughput and
p99, compared only between configurations that differ in those settings alone.

Plans vary settings in bundles ({acks: 1, enable.idempotence: false}), so a bundle (a
*variant*), not a single setting, is the unit whose effect is measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from experiments.analysis import aggregate, confidence
from experiments.analysis._format import fmt_ms, fmt_rate
from experiments.analysis._style import legend_outside, mode_palette, new_figure, style, thousands
from experiments.analysis.blocks import Block, Chart, Takeaway
from experiments.analysis.configs import (
    format_value,
    is_missing,
    is_producer_param,
    setting_name,
    variant_label,
)
from experiments.analysis.runs import Runs

TITLE = "Effect of producer settings"
INTRO = """
Throughput and p99 for each value of every producer setting that varies in the plan, compared
between configurations that differ in that setting only.
"""


def render(runs: Runs) -> list[Block]:
    return [Chart(figure(runs)), Takeaway(takeaway(runs))]


def producer_settings(runs: Runs) -> list[str]:
    """Varying producer settings: `producer.<name>` columns and the producer profile."""
    return [c for c in runs.varying if is_producer_param(c)]


def producer_variants(runs: Runs, table: pd.DataFrame) -> pd.Series:
    """Per row of `table` (summaries or config table), its producer settings as one label.

    Plans vary producer settings in bundles ({acks: 1, enable.idempotence: false}), so a
    bundle, not a single column, is the unit whose effect is measured.
    """
    settings = producer_settings(runs)
    return pd.Series(
        [variant_label(row, settings) for row in table.to_dict("records")],
        index=table.index,
        dtype="object",
    )


def figure(runs: Runs) -> Figure | None:
    """Throughput and p99 for each producer-settings bundle, per mode.

    Only modes measured with two or more bundles are drawn: a mode measured with one only
    would mix the effect of the mode with that of the settings.
    """
    if not producer_settings(runs) or runs.summaries.empty:
        return None
    s = runs.summaries.assign(variant=producer_variants(runs, runs.summaries))
    counts = s.groupby("mode")["variant"].nunique()
    modes = [m for m in runs.modes if counts.get(m, 0) > 1]
    if not modes:
        return None
    s = s[s["mode"].isin(modes)]
    # Bundles in plan order, the default first: it is the baseline of every comparison.
    order = sorted(dict.fromkeys(s["variant"]), key=lambda v: v != "default")
    mode_colours = mode_palette(runs)
    with style():
        figure, axes = new_figure(1.2 + 0.45 * len(order) * max(len(modes), 1.5), ncols=2, sharey=True)
        for axis, metric, label in zip(
            axes[0],
            ("events_per_s", "p99_ms"),
            ("events accepted per second", "p99 latency (ms)"),
            strict=True,
        ):
            common = {
                "data": s,
                "x": metric,
                "y": "variant",
                "hue": "mode",
                "order": order,
                "hue_order": modes,
                "palette": mode_colours,
                "ax": axis,
            }
            dodge = 0.4 if len(modes) > 1 else False
            sns.stripplot(**common, dodge=len(modes) > 1, alpha=0.6, size=5, legend=False)
            sns.pointplot(
                **common, dodge=dodge, estimator="median", errorbar=None, markers="D", linestyles="none"
            )
            over = s[s["overloaded"].map(lambda v: not is_missing(v) and bool(v))]
            if len(over):
                # Overloaded runs crossed out: their throughput is not a setting's effect.
                axis.scatter(
                    over[metric],
                    [order.index(v) for v in over["variant"]],
                    marker="X",
                    s=70,
                    color="black",
                    zorder=6,
                    label="overloaded run",
                )
            axis.set_xlim(0, s[metric].max() * 1.1)
            if metric == "events_per_s":
                thousands(axis, "x")
            axis.set_xlabel(label)
            axis.set_ylabel("producer settings")
            axis.set_title("throughput" if metric == "events_per_s" else "p99 latency")
        if axes[0, 0].get_legend() is not None:
            axes[0, 0].get_legend().remove()
        legend_outside(axes[0, 1], "mode")
        title = "Effect of producer settings (dot: one run; diamond: median of trials"
        marked = s["overloaded"].map(lambda v: not is_missing(v) and bool(v)).any()
        figure.suptitle(title + ("; X: overloaded run)" if marked else ")"))
    return figure


def takeaway(runs: Runs) -> str:
    """What each producer-settings bundle did to throughput and p99, like for like.

    Configurations are compared only with those that differ in producer settings alone
    (same mode, same everything else); the baseline is the default settings when measured.
    Each change is a ratio of the trials' geometric means with its 95% interval and a
    verdict (experiments/stats.py): a difference within the trials' noise is never called
    one.
    """
    settings = producer_settings(runs)
    if not settings:
        return "no producer setting varies in this plan, so there is no setting effect to show"
    table = aggregate.config_table(runs)
    table["variant"] = producer_variants(runs, table)
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
            parts.append(_effect(runs, rows[0], base, subject))
        else:
            rows.sort(key=lambda r: -r["events_per_s_median"])
            items = "; ".join(_effect_item(runs, r, base) for r in rows)
            parts.append(
                f"{subject} against {_baseline(base)} ({fmt_rate(base['events_per_s_median'])} "
                f"events/s, p99 {fmt_ms(base['p99_ms_median'])}): {items}"
            )
    if not parts:
        return "producer settings vary, but never between otherwise identical configurations"
    return "; ".join(parts)


def _baseline(base: pd.Series) -> str:
    return "the default" if base["variant"] == "default" else str(base["variant"])


def _figures(runs: Runs, row: pd.Series, base: pd.Series) -> str:
    """events/s and p99 of `row` against `base`, each with its interval and verdict."""
    parts = []
    for figure in ("events/s", "p99"):
        c = confidence.comparison(runs, base["configuration"], row["configuration"], figure)
        if c is not None:
            parts.append(confidence.with_verdict(c))
    return "; ".join(parts)


def _effect(runs: Runs, row: pd.Series, base: pd.Series, subject: str) -> str:
    return (f"{row['variant']} against {_baseline(base)} ({subject}, "
            f"{fmt_rate(row['events_per_s_median'])} vs {fmt_rate(base['events_per_s_median'])} "
            f"events/s median): {_figures(runs, row, base)}")


def _effect_item(runs: Runs, row: pd.Series, base: pd.Series) -> str:
    return f"{row['variant']} {_figures(runs, row, base)}"


def _subject(row: pd.Series, others: Sequence[str]) -> str:
    """`durable` or `durable (connections=64)`: whose throughput the settings changed."""
    extra = [
        f"{setting_name(c)}={format_value(row[c])}" for c in others if c != "mode" and not is_missing(row[c])
    ]
    return f"{row['mode']} ({', '.join(extra)})" if extra else str(row["mode"])
