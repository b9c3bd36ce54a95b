"""The report's text and tables: header (plan, machine, versions), summary, audit, failures.

Tables are DataFrames of formatted strings so the report prints each number exactly as the
takeaways do (same helpers), and `table_html` renders them without the index.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from experiments.analysis import aggregate
from experiments.analysis._format import fmt_count, fmt_num, fmt_pct, fmt_range, fmt_rate
from experiments.analysis.load import AUDIT_KEYS, Runs
from experiments.analysis.params import format_value, is_config_param, setting_name

# Percentiles of the spectrum table, with their column titles.
SPECTRUM_COLUMNS = {
    0.0: "min",
    50.0: "p50",
    75.0: "p75",
    90.0: "p90",
    99.0: "p99",
    99.9: "p99.9",
    99.99: "p99.99",
    99.999: "p99.999",
    100.0: "max",
}


def _distinct(runs: Runs, *path: str) -> list[Any]:
    """Distinct values of one provenance field across runs, in run order."""
    values: dict[str, Any] = {}
    for summary in runs.raw.values():
        value: Any = summary
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        values.setdefault(repr(value), value)
    return [v for v in values.values() if v is not None]


def _one(values: list[Any], fmt: Any = str) -> str:
    """A field's value, or all of them when runs disagree (which a reader must see)."""
    if not values:
        return "unknown"
    if len(values) == 1:
        return fmt(values[0])
    return " / ".join(fmt(v) for v in values) + f" (differs between runs: {len(values)} values)"


def header_facts(runs: Runs) -> dict[str, str]:
    """Plan, runs, time range, parameters, machine, versions and commit, as label -> text."""
    s = runs.summaries
    trials = s.groupby("config").size() if len(s) else pd.Series(dtype=int)
    facts = {
        "Plan": f"{runs.plan} ({runs.plan_dir})",
        **({"About": runs.description} if runs.description else {}),
        "Runs": (
            f"{len(s)} runs in {len(runs.configs)} configurations "
            f"({_trials_text(trials)}); {_plural(len(runs.failed), 'cell')} without a result"
        ),
    }
    if len(s):
        start, end = s["started_at"].min(), s["ended_at"].max()
        facts["Time"] = f"{_when(start)} to {_when(end)} (UTC)"
    facts["Varied"] = ", ".join(setting_name(c) for c in runs.varying) or "nothing but the trial"
    facts["Fixed"] = _fixed_params(runs) or "none"
    facts["Machine"] = _one(_distinct(runs, "provenance", "machine"), _machine)
    facts["Python"] = _one(_distinct(runs, "provenance", "python"))
    facts["Kafka"] = _kafka_version(runs)
    facts["Packages"] = _one(_distinct(runs, "provenance", "packages"), _packages)
    facts["Tool"] = _one(_distinct(runs, "provenance", "tool_version"))
    facts["Git commit"] = _one(_distinct(runs, "provenance", "git"), _git)
    return facts


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _trials_text(trials: pd.Series) -> str:
    if trials.empty:
        return "no trials"
    low, high = int(trials.min()), int(trials.max())
    count = str(low) if low == high else f"{low}-{high}"
    return f"{count} trial{'s' if high > 1 else ''} each"


def _when(value: Any) -> str:
    return "unknown" if pd.isna(value) else value.strftime("%Y-%m-%d %H:%M:%S")


def _fixed_params(runs: Runs) -> str:
    s = runs.summaries
    # A closed loop ignores the rate parameter; printing it would suggest a rate limit.
    closed = bool(len(s)) and (s["load_model"] == "closed").all()
    parts = []
    for column in runs.param_columns:
        if column in runs.varying or not is_config_param(column) or column not in s:
            continue
        if column == "rate" and closed:
            continue
        values = s[column].dropna()
        if len(values) and values.iloc[0] != "":
            parts.append(f"{setting_name(column)}={format_value(values.iloc[0])}")
    return ", ".join(parts)


def _machine(machine: Mapping[str, Any]) -> str:
    return (
        f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('cpu_count', '?')} cores, "
        f"{fmt_num(machine.get('memory_gb'))} GB memory, {machine.get('platform', '?')}, "
        f"host {machine.get('hostname', '?')}"
    )


def _kafka_version(runs: Runs) -> str:
    """The broker's version as the run saw it; else say only what the project pins."""
    seen = _distinct(runs, "provenance", "kafka_version")
    if seen:
        return _one(seen)
    pinned = _distinct(runs, "provenance", "kafka_version_pinned")
    return f"unknown (the project's local broker is pinned to {_one(pinned)})" if pinned else "unknown"


def _packages(packages: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(packages.items()) if version is not None)


def _git(git: Mapping[str, Any]) -> str:
    commit = str(git.get("commit") or "unknown")[:12]
    return commit + (" (uncommitted changes)" if git.get("dirty") else "")


def header_markdown(runs: Runs, title: str = "") -> str:
    """The report's opening: a title and a bullet per header fact."""
    heading = title or f"Kafka ingestion lab: plan {runs.plan}"
    lines = [f"# {heading}", ""]
    lines += [f"- **{label}:** {_escape(text)}" for label, text in header_facts(runs).items()]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """Keep Markdown from reading parameter values (`*`, `_`) as emphasis."""
    for char in ("\\", "*", "_", "`"):
        text = text.replace(char, "\\" + char)
    return text


def summary_table(runs: Runs) -> pd.DataFrame:
    """Per configuration: trials, median and spread of throughput and latency, errors, audit."""
    table = aggregate.config_table(runs)
    dispersion = bool(len(table)) and table["trials"].max() >= aggregate.MIN_TRIALS_FOR_DISPERSION
    rows = []
    for _, r in table.iterrows():
        row = {
            "configuration": r["config"],
            "trials": str(r["trials"]),
            "events/s (median)": fmt_rate(r["events_per_s_median"]),
            "events/s (min-max)": fmt_range(r["events_per_s_min"], r["events_per_s_max"], fmt_rate),
        }
        if dispersion:
            row["events/s IQR / stdev"] = (
                f"{fmt_rate(r['events_per_s_iqr'])} / {fmt_rate(r['events_per_s_std'])}"
            )
        for metric, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            row[f"{label} ms (median, min-max)"] = (
                f"{fmt_num(r[f'{metric}_median'])} ({fmt_range(r[f'{metric}_min'], r[f'{metric}_max'])})"
            )
        row["error rate (median)"] = fmt_pct(r["error_rate_median"])
        row["lost events"] = fmt_count(r["lost"])
        row["generator-bound trials"] = f"{r['generator_bound_trials']} of {r['trials']}"
        rows.append(row)
    return pd.DataFrame(rows)


def spectrum_table(runs: Runs) -> pd.DataFrame:
    """Merged-histogram latency (ms) per configuration at every spectrum percentile."""
    spectrum = aggregate.percentile_spectrum(runs)
    rows = []
    for config, group in spectrum.groupby("config", sort=False):
        row = {"configuration": config, "requests": fmt_count(group["samples"].iloc[0])}
        for _, point in group.iterrows():
            value = fmt_num(point["latency_ms"]) if point["resolved"] else "-"
            row[SPECTRUM_COLUMNS.get(point["percentile"], str(point["percentile"]))] = value
        rows.append(row)
    return pd.DataFrame(rows)


def audit_table(runs: Runs) -> pd.DataFrame:
    """The delivery audit of every run, as counted by the load generator's audit."""
    s = runs.summaries
    table = pd.DataFrame(
        {"run": s["run"], "configuration": s["config"], "trial": s["trial"].map(format_value)}
    )
    for key in AUDIT_KEYS:
        table[key] = s[key].map(fmt_count)
    return table


def failed_table(runs: Runs) -> pd.DataFrame:
    """Cells that produced no summary, with the error they left behind."""
    return runs.failed.rename(columns={"run": "cell"})


def table_html(table: pd.DataFrame) -> str:
    """HTML of a formatted table, without the index."""
    return table.to_html(index=False, border=0, escape=True, classes="lab-table")


def figure_html(figure: Figure, dpi: int = 100) -> str:
    """The figure as an embedded PNG with alt text (its titles), so the report is one file
    that screen readers can describe too."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    titles = [figure.get_suptitle(), *(axis.get_title() for axis in figure.axes)]
    alt = "; ".join(t for t in titles if t) or "figure"
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" '
        'style="max-width: 100%; height: auto;"/>'
    )


def show(item: object) -> None:
    """Display a figure or a table in a notebook; nothing for None or an empty table."""
    from IPython.display import HTML, display

    if item is None:
        return
    if isinstance(item, pd.DataFrame):
        if not item.empty:
            display(HTML(table_html(item)))
    elif isinstance(item, Figure):
        display(HTML(figure_html(item)))
    else:
        display(item)


def caption(text: str) -> str:
    """A takeaway as the Markdown line printed under its figure."""
    return f"**Takeaway:** {_escape(text)}"


def say(text: str) -> None:
    """Display a takeaway under a figure in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(caption(text)))
