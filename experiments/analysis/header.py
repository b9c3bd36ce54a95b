"""The report's header: what was run, where, with which versions, and which cells left no
result. Every fact comes from the runs' summaries (their provenance) and the plan's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from experiments.analysis._format import escape_markdown, fmt_num, plural
from experiments.analysis.blocks import Block, Table, Takeaway, Text
from experiments.analysis.configs import format_value, is_config_param, is_missing, setting_name
from experiments.analysis.runs import Runs


def render(runs: Runs, title: str = "") -> list[Block]:
    return [Text(header_markdown(runs, title)), Takeaway(failed(runs)), Table(failed_table(runs))]


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
    trials = s.groupby("configuration").size() if len(s) else pd.Series(dtype=int)
    facts = {
        "Plan": f"{runs.plan} ({runs.plan_dir})",
        **({"About": runs.description} if runs.description else {}),
        "Runs": (
            f"{len(s)} runs in {len(runs.configs)} configurations "
            f"({_trials_text(trials)}); {plural(len(runs.failed), 'cell')} without a result"
        ),
    }
    if len(s):
        start, end = s["started_at"].min(), s["ended_at"].max()
        facts["Time"] = f"{_when(start)} to {_when(end)} (UTC)"
    facts["Varied"] = ", ".join(setting_name(c) for c in runs.varying) or "nothing but the trial"
    facts["Fixed"] = _fixed_params(runs) or "none"
    facts["Load engine"] = _engines(runs)
    facts["Target"] = _targets(runs)
    facts["Machine"] = _one(_distinct(runs, "provenance", "machine"), _machine)
    facts["Python"] = _one(_distinct(runs, "provenance", "python"))
    facts["Kafka"] = _kafka_version(runs)
    facts["Packages"] = _one(_distinct(runs, "provenance", "packages"), _packages)
    facts["Tool"] = _one(_distinct(runs, "provenance", "tool_version"))
    facts["Git commit"] = _one(_distinct(runs, "provenance", "git"), _git)
    return facts


def _engines(runs: Runs) -> str:
    """The load generator engine(s): results of two engines are not one measurement."""
    engines = runs.summaries["engine"].dropna() if len(runs.summaries) else pd.Series(dtype=object)
    if engines.empty:
        return "unknown (not recorded)"
    counts = engines.value_counts(sort=False)
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{engine} ({plural(int(n), 'run')})" for engine, n in counts.items()) + (
        " (differs between runs)"
    )


def _targets(runs: Runs) -> str:
    """Whether the suite launched the service it measured; external targets are marked."""
    s = runs.summaries
    if s.empty:
        return "unknown"
    external = s[~s["launched_by_suite"].astype(bool)]
    if external.empty:
        return "a service the suite launched for every run"
    where = "; ".join(
        f"{url or 'unknown URL'}" + (f" ({impl})" if not is_missing(impl) else "")
        for url, impl in dict.fromkeys(zip(external["target_url"], external["target_impl"], strict=True))
    )
    scope = "every run" if len(external) == len(s) else f"{len(external)} of {len(s)} runs"
    return (
        f"NOT launched by the suite in {scope}: {where}; its CPU is known only for local processes "
        "the suite found by port"
    )


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
    lines += [f"- **{label}:** {escape_markdown(text)}" for label, text in header_facts(runs).items()]
    return "\n".join(lines) + "\n"


def failed(runs: Runs) -> str:
    """Which cells produced no result, so a missing configuration is never silent."""
    total = len(runs.summaries) + len(runs.failed)
    if runs.failed.empty:
        return "the one run produced results" if total == 1 else f"all {total} runs produced results"
    cells = "; ".join(f"{r['run']} ({r['error']})" for _, r in runs.failed.iterrows())
    verb = "is" if len(runs.failed) == 1 else "are"
    return f"{len(runs.failed)} of {total} cells produced no result and {verb} left out: {cells}"


def failed_table(runs: Runs) -> pd.DataFrame:
    """Cells that produced no summary, with the error they left behind."""
    return runs.failed.rename(columns={"run": "cell"})
