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
from experiments.analysis._format import (
    fmt_cores,
    fmt_count,
    fmt_num,
    fmt_pct,
    fmt_range,
    fmt_rate,
    fmt_seconds,
)
from experiments.analysis.configs import format_value, is_config_param, is_missing, setting_name
from experiments.analysis.runs import AUDIT_KEYS, Runs
from experiments.rundir import COMPONENTS

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
    trials = s.groupby("configuration").size() if len(s) else pd.Series(dtype=int)
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
    return ", ".join(f"{engine} ({_plural(int(n), 'run')})" for engine, n in counts.items()) + (
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
    """Per configuration: trials, median and spread of throughput and latency, errors, audit.

    Throughput is what completed inside the measured window. Open-loop plans add the offered
    rate, the unfinished share and the overloaded trials (an overloaded configuration's name
    carries the mark too), and the capacity at the plan's SLO of its sweep line.
    """
    table = aggregate.config_table(runs)
    dispersion = bool(len(table)) and table["trials"].max() >= aggregate.MIN_TRIALS_FOR_DISPERSION
    open_loop = bool(len(table)) and bool(table["open_loop"].any())
    capacities = _capacity_by_config(runs)
    marks = aggregate.overload_marks(runs)
    rows = []
    for _, r in table.iterrows():
        row = {"configuration": marks[r["configuration"]], "trials": str(r["trials"])}
        if open_loop:
            row["offered requests/s"] = fmt_rate(r["offered_rps_median"])
        row["events/s (median)"] = fmt_rate(r["events_per_s_median"])
        row["events/s (min-max)"] = fmt_range(r["events_per_s_min"], r["events_per_s_max"], fmt_rate)
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
            row[capacity_heading(runs)] = capacities.get(r["configuration"], "n/a")
        rows.append(row)
    return pd.DataFrame(rows)


def _run_mark(overloaded: Any) -> str:
    return " (OVERLOADED)" if not is_missing(overloaded) and bool(overloaded) else ""


def capacity_heading(runs: Runs) -> str:
    return f"capacity at p99 <= {format_value(runs.slo_p99_ms)} ms (events/s)"


def _capacity_by_config(runs: Runs) -> dict[str, str]:
    """Each configuration's sweep-line capacity as text, keyed by configuration."""
    table = aggregate.capacity(runs)
    if table.empty:
        return {}
    text = {row["configuration"]: capacity_text(row) for _, row in table.iterrows()}
    lines = aggregate.sweep_label(runs)
    return {c: text.get(w, "n/a") for c, w in zip(runs.summaries["configuration"], lines, strict=True)}


def capacity_text(row: pd.Series) -> str:
    """`625 (500-750)`, `>= 3,000` when every rate held, `none held`."""
    if is_missing(row["median"]):
        return "none held"
    prefix = ">= " if row["all_held"] else ""
    spread = fmt_range(row["min"], row["max"], fmt_rate)
    if row["source"] == "search" or row["min"] == row["max"]:
        return prefix + fmt_rate(row["median"])
    return f"{prefix}{fmt_rate(row['median'])} ({spread})"


def capacity_table(runs: Runs) -> pd.DataFrame:
    """Capacity at the plan's SLO per configuration (without its rate), with every trial's."""
    table = aggregate.capacity(runs)
    path = aggregate.search_path(runs)
    rows = []
    for _, r in table.iterrows():
        row = {
            "configuration": r["configuration"],
            capacity_heading(runs): capacity_text(r),
            "trials": str(r["trials"]),
        }
        if r["source"] == "search":
            steps = path[path["configuration"] == r["configuration"]]
            low, high = (steps[c].iloc[0] if len(steps) else None for c in ("bracket_low", "bracket_high"))
            row["per trial / bracket"] = f"search bracket {fmt_range(low, high, fmt_rate)}"
        else:
            row["per trial / bracket"] = ", ".join(
                f"t{format_value(t)}: {'none held' if is_missing(v) else fmt_rate(v)}"
                for t, v in r["per_trial"].items()
            )
        row["highest rate measured"] = fmt_rate(r["highest_rate"])
        rows.append(row)
    return pd.DataFrame(rows)


def saturation_table(runs: Runs) -> pd.DataFrame:
    """Per offered rate: completed rate, unfinished share, latency, overloaded trials."""
    table = aggregate.saturation_table(runs)
    rows = []
    for _, r in table.iterrows():
        rows.append(
            {
                "configuration": r["configuration"],
                "offered requests/s": fmt_rate(r["offered_rps"]),
                "completed events/s (median, min-max)": (
                    f"{fmt_rate(r['events_per_s_median'])} "
                    f"({fmt_range(r['events_per_s_min'], r['events_per_s_max'], fmt_rate)})"
                ),
                "unfinished (median)": fmt_pct(r["unfinished_fraction_median"]),
                "p99 ms (median, min-max)": (
                    f"{fmt_num(r['p99_ms_median'])} ({fmt_range(r['p99_ms_min'], r['p99_ms_max'])})"
                ),
                "overloaded": f"{r['overloaded_trials']} of {r['trials']}"
                + (" (OVERLOADED)" if r["overloaded_trials"] else ""),
            }
        )
    return pd.DataFrame(rows)


def search_table(runs: Runs) -> pd.DataFrame:
    """The capacity search's path: each step's value, its trials' p99 and the verdict."""
    path = aggregate.search_path(runs)
    rows = []
    for _, r in path.iterrows():
        rows.append(
            {
                "configuration": r["configuration"],
                "step": str(r["step"]),
                "offered requests/s": fmt_rate(r["value"]),
                "p99 ms (median, min-max)": (
                    f"{fmt_num(r['p99_ms_median'])} ({fmt_range(r['p99_ms_min'], r['p99_ms_max'])})"
                ),
                "overloaded trials": f"{r['overloaded_trials']} of {r['trials']}",
                "verdict": "holds" if r["holds"] else "fails",
            }
        )
    return pd.DataFrame(rows)


def cpu_table(runs: Runs) -> pd.DataFrame:
    """Mean CPU per run and component, with everything else on the box, flagged above 10%."""
    s = runs.summaries
    busy = aggregate.busy_box(s) if len(s) else pd.Series(dtype=bool)
    rows = []
    for i, r in s.iterrows():
        row = {"run": r["run"] + _run_mark(r["overloaded"]), "configuration": r["configuration"]}
        row.update({f"{c} (cores)": fmt_cores(r[f"cpu_{c}"]) for c in COMPONENTS})
        row["everything else (cores)"] = fmt_cores(r["cpu_other"])
        row["machine (cores)"] = fmt_cores(r["cpu_machine"])
        flags = (
            [f"other load > {fmt_pct(aggregate.CPU_OTHER_SHARE)} of the machine"] if bool(busy.loc[i]) else []
        )
        if not r["launched_by_suite"]:
            flags.append("external target: its CPU only where found by port")
        row["flag"] = "; ".join(flags)
        rows.append(row)
    return pd.DataFrame(rows)


FAULTS_INTRO = """## Faults

What each producer mode loses when something fails during the load: one timeline per fault
kind with the fault window shaded (completed events per second, error answers by status, p99
per second of send time), then per configuration the audit (acknowledged, lost, duplicates),
the time from the fault to its recovery (for a killed leader: until another node leads the
partition, which Kafka decides only when the dead broker's session times out; for a pause: the
SIGCONT; for the service: ready again), how long the service gave no successful answer after
the fault started, and the requests that
failed during the fault: error answers, and transport failures such as refused connections while
the service was down (median and min-max over trials). A loss in any trial is named, even when
the median is zero."""


def fault_table(runs: Runs) -> pd.DataFrame:
    """Mode x fault: acknowledged, lost, duplicates, unavailability and errors (median, min-max)."""
    table = aggregate.fault_table(runs)
    rows = []
    for _, r in table.iterrows():
        row = {"configuration": r["configuration"], "fault": r["fault"], "trials": str(r["trials"])}
        for metric, label, fmt in (
            ("acknowledged", "acknowledged", fmt_count),
            ("lost", "acknowledged and lost", fmt_count),
            ("duplicates", "duplicates", fmt_count),
            ("recovered_after_s", "fault to recovery", fmt_seconds),
            ("unavailable_s", "unavailable after the fault start", fmt_seconds),
            ("errors_during_fault", "failed requests during the fault (error answers and "
                                    "transport failures)", fmt_count),
        ):
            median, low, high = (r[f"{metric}_{k}"] for k in ("median", "min", "max"))
            row[f"{label} (median, min-max)"] = f"{fmt(median)} ({fmt_range(low, high, fmt)})"
        if r["not_injected"]:
            row["configuration"] += f" (fault NOT injected in {r['not_injected']} of {r['trials']})"
        rows.append(row)
    return pd.DataFrame(rows)


def spectrum_table(runs: Runs) -> pd.DataFrame:
    """Merged-histogram latency (ms) per configuration at every spectrum percentile."""
    spectrum = aggregate.percentile_spectrum(runs)
    marks = aggregate.overload_marks(runs)
    rows = []
    for config, group in spectrum.groupby("configuration", sort=False):
        row = {"configuration": marks.get(config, config), "requests": fmt_count(group["samples"].iloc[0])}
        for _, point in group.iterrows():
            value = fmt_num(point["latency_ms"]) if point["resolved"] else "-"
            row[SPECTRUM_COLUMNS.get(point["percentile"], str(point["percentile"]))] = value
        rows.append(row)
    return pd.DataFrame(rows)


def audit_table(runs: Runs) -> pd.DataFrame:
    """The delivery audit of every run, as counted by the load generator's audit."""
    s = runs.summaries
    table = pd.DataFrame(
        {
            "run": s["run"] + s["overloaded"].map(_run_mark),
            "configuration": s["configuration"],
            "trial": s["trial"].map(format_value),
        }
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
    """Display a takeaway under a figure in a notebook; nothing for an empty one (a
    takeaway is empty when its question does not apply to the plan)."""
    from IPython.display import Markdown, display

    if text:
        display(Markdown(caption(text)))


def heading(markdown: str) -> None:
    """Display a section that only some plans have (Faults), as the notebook's own would be."""
    from IPython.display import Markdown, display

    display(Markdown(markdown))
