"""Read every run directory of a plan into tables (the contract is experiments/RESULTS.md,
schema lab.run/2).

Nothing here computes a statistic: it only reshapes what the result files say, so the
report's numbers can be traced back to a file. The one exception is the overload mark of
a summary written without one, which is derived by the contract's own rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from experiments.analysis.configs import (
    config_labels,
    flatten_params,
    mode_rank,
    sort_key,
    varying_params,
)
from experiments.params import renamed
from experiments.rundir import (
    CPU,
    CPU_KEYS,
    ERRORS,
    SERIES,
    PlanDir,
    RunDir,
    Summary,
    other_load,
    overload,
    slowed_by_host,
)

# summary.json `results.latency_ms` keys -> column names that survive attribute access.
LATENCY_KEYS = {
    "p50": "p50_ms",
    "p75": "p75_ms",
    "p90": "p90_ms",
    "p99": "p99_ms",
    "p99.9": "p999_ms",
    "p99.99": "p9999_ms",
    "max": "max_ms",
    "mean": "mean_ms",
}
RESULT_KEYS = (
    "sent",
    "ok",
    "client_errors",
    "server_errors",
    "transport_errors",
    "events_accepted",
    "throughput_rps",
    "events_per_s",
    "error_rate",
    "offered",
    "offered_rps",
    "sent_rps",
    "completed_in_window",
    "completed_after_window",
    "never_sent",
    "in_flight_at_end",
    "unfinished",
    "unfinished_fraction",
    "overloaded",
    "drain_s",
    "drain_limit_s",
    "late",
    "late_fraction",
    "generator_bound",
    "generator_ceiling_rps",
)
AUDIT_KEYS = ("acknowledged", "present", "lost", "unacknowledged", "duplicates")
# Audit counts per answer class (200 durable, 202 fire-and-forget): `lost_202` etc.
AUDIT_CLASS_KEYS = ("acknowledged_by_class", "lost_by_class")
# Facts of the run's fault and of the service's availability around it (summary `faults`,
# `availability`); absent (missing) for runs without a fault.
FAULT_COLUMNS = (
    "fault_kind",
    "fault_injected",
    "fault_at_s",
    "fault_windows",
    "recovered_after_s",
    "unavailable_s",
    "first_ok_after_fault_s",
    "ok_during_fault",
    "errors_during_fault",
    "p99_during_fault_ms",
    "p99_outside_fault_ms",
)
# Who generated the load and what it was aimed at (NEW in lab.run/2).
TARGET_COLUMNS = ("engine", "target_url", "target_impl", "launched_by_suite")
# Parameters every run has, taken from `load`/`service` when the plan did not set them.
CORE_PARAMS = ("mode", "endpoint", "load_model", "connections", "rate")
ID_COLUMNS = ("run", "plan", "trial", "configuration", "started_at", "ended_at", "cores")
CPU_COLUMNS = tuple(f"cpu_{c}" for c in (*CPU_KEYS, "other"))
RESULT_COLUMNS = frozenset(
    {
        *ID_COLUMNS,
        "measured_s",
        *RESULT_KEYS,
        *LATENCY_KEYS.values(),
        *CPU_COLUMNS,
        *AUDIT_KEYS,
        *FAULT_COLUMNS,
        *TARGET_COLUMNS,
    }
)


@dataclass(frozen=True)
class Options:
    """What the reader asks of the report (the analysis notebook's parameters).

    `baseline_dir`: another results directory of the same plan, compared configuration by
    configuration (the Comparisons section); `loss_budget` and `p99_target_ms`: the
    question the Decision section answers (0 target: the plan's `slo_p99_ms`, else 50 ms).
    """

    baseline_dir: Path | None = None
    loss_budget: int = 0
    p99_target_ms: float = 0.0


@dataclass(frozen=True, eq=False)
class Runs:
    """Every run of one plan. `summaries` has one row per run, ordered by configuration.

    `series` is series.csv of every run (two clocks: see RESULTS.md), `errors` errors.csv
    (non-2xx outcomes per completion second and status), `plan_info` the runner's plan.json
    and `search` its search.json (None unless the plan searched for a capacity).
    """

    plan: str
    plan_dir: Path
    description: str
    summaries: pd.DataFrame
    series: pd.DataFrame
    cpu: pd.DataFrame
    histograms: Mapping[str, HdrHistogram]
    failed: pd.DataFrame
    raw: Mapping[str, dict[str, Any]] = field(repr=False)
    param_columns: tuple[str, ...]
    varying: tuple[str, ...]
    configs: tuple[str, ...]
    errors: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    plan_info: Mapping[str, Any] = field(default_factory=dict, repr=False)
    search: Mapping[str, Any] | None = field(default=None, repr=False)
    options: Options = field(default_factory=Options, repr=False)
    set_aside: tuple[str, ...] = ()  # runs the runner set aside as disturbed and ran again

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(sorted(self.summaries["mode"].dropna().unique(), key=mode_rank))

    @property
    def slo_p99_ms(self) -> float | None:
        """The plan's latency budget for capacity at an SLO (plan.json, else search.json)."""
        for source in (self.plan_info, self.search or {}):
            value = source.get("slo_p99_ms")
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value)
        return None

    @property
    def p99_target_ms(self) -> float:
        """The p99 target the Decision section answers for."""
        return self.options.p99_target_ms or self.slo_p99_ms or 50.0

    @property
    def has_faults(self) -> bool:
        """Whether some run injected (or tried to inject) a fault."""
        kinds = self.summaries["fault_kind"].dropna() if "fault_kind" in self.summaries else []
        return any(kind != "none" for kind in kinds)


def load_runs(plan_dir: Path | str, options: Options | None = None) -> Runs:
    """Load every run directory under `plan_dir`; cells without a summary go to `failed`."""
    plan_dir = Path(plan_dir)
    if not plan_dir.is_dir():
        raise FileNotFoundError(f"no plan results directory at {plan_dir}")
    raw: dict[str, Summary] = {}
    failed: list[dict[str, str]] = []
    run_dirs = PlanDir(plan_dir).runs()
    for run_dir in run_dirs:
        summary, error = run_dir.outcome()
        if summary is None:
            failed.append({"run": run_dir.name, "error": error})
        else:
            raw[run_dir.name] = summary
    plan_info = PlanDir(plan_dir).read_plan()
    present = {r.name for r in run_dirs}
    failed += [
        {"run": cell, "error": "not run: no run directory"}
        for cell in plan_info.get("cells", [])
        if cell not in present
    ]

    rows = [_summary_row(name, summary) for name, summary in raw.items()]
    params_seen: dict[str, None] = dict.fromkeys(CORE_PARAMS)
    for row in rows:
        params_seen.update(dict.fromkeys(row.pop("_params")))
    param_columns = tuple(params_seen)
    summaries = pd.DataFrame(rows, columns=_column_order(rows, param_columns))
    varying = tuple(varying_params(summaries, param_columns))
    summaries["configuration"] = config_labels(summaries, varying)
    search = PlanDir(plan_dir).read_search()
    summaries = _sorted(summaries, str(search.get("param")) if search and search.get("param") else None)
    configs = tuple(dict.fromkeys(summaries["configuration"]))

    ids = summaries[["run", "configuration", "mode", "trial"]]
    plan = next((str(s["run"]["plan"]) for s in raw.values() if s.get("run", {}).get("plan")), None)
    return Runs(
        plan=plan or str(plan_info.get("name") or plan_dir.name),
        plan_dir=plan_dir,
        description=str(plan_info.get("description") or "").strip(),
        summaries=summaries,
        series=_read_tables(plan_dir, ids, SERIES),
        cpu=_read_tables(plan_dir, ids, CPU),
        histograms=_read_histograms(plan_dir, list(raw)),
        failed=pd.DataFrame(failed, columns=["run", "error"]),
        raw=raw,
        param_columns=param_columns,
        varying=varying,
        configs=configs,
        errors=_read_tables(plan_dir, ids, ERRORS, dtype={"status": "string"}),
        plan_info=plan_info,
        options=options or Options(),
        search=search,
        set_aside=tuple(r.name for r in PlanDir(plan_dir).set_aside_runs()),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _summary_row(name: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    run = _mapping(summary.get("run"))
    load = _mapping(summary.get("load"))
    service = _mapping(summary.get("service"))
    results = _mapping(summary.get("results"))
    # Runs written before a parameter was renamed read under its new name.
    params = renamed(dict(_mapping(summary.get("params"))))
    # The trial number is an id column of its own, never a parameter of the configuration.
    param_trial = params.pop("trial", None)
    # The plan may leave core settings to notebook defaults; the envelope still has them.
    fallbacks = {
        "mode": service.get("mode"),
        "endpoint": load.get("endpoint"),
        "load_model": load.get("model"),
        "connections": load.get("connections"),
        "rate": load.get("rate"),
    }
    for key, value in fallbacks.items():
        params.setdefault(key, value)
    if "producer_config" not in params and service.get("producer_config"):
        params["producer_config"] = service["producer_config"]
    flat = {
        (f"param.{key}" if key in RESULT_COLUMNS else key): value
        for key, value in flatten_params(params).items()
    }

    trial = run.get("trial", param_trial)
    row: dict[str, Any] = {
        "run": name,
        "plan": run.get("plan"),
        "trial": trial,
        "started_at": pd.to_datetime(run.get("started_at"), utc=True),
        "ended_at": pd.to_datetime(run.get("ended_at"), utc=True),
        "cores": _mapping(_mapping(summary.get("provenance")).get("machine")).get("cpu_count"),
        **flat,
        "measured_s": results.get("duration_s"),
    }
    row.update({key: results.get(key) for key in RESULT_KEYS})
    if row["overloaded"] is None:
        row["overloaded"] = _overload_mark(params.get("load_model"), results)
    latency = _mapping(results.get("latency_ms"))
    row.update({column: latency.get(key) for key, column in LATENCY_KEYS.items()})
    cpu = _mapping(results.get("cpu_percent"))
    row.update({f"cpu_{c}": cpu.get(c) for c in CPU_KEYS})
    row["cpu_other"] = results.get("cpu_other_percent")
    # The two halves of rundir.DISTURBED_RULE, each as the runner applied it.
    row["other_load"] = other_load(summary)
    row["host_slow"] = slowed_by_host(summary)
    row["host_slow_seconds"] = _mapping(results.get("host_speed")).get("slow_seconds")
    audit = _mapping(summary.get("audit"))
    row.update({key: audit.get(key) for key in AUDIT_KEYS})
    for key in AUDIT_CLASS_KEYS:
        prefix = key.removesuffix("_by_class")
        row.update({f"{prefix}_{status}": count for status, count in _mapping(audit.get(key)).items()})
    row.update(_target_facts(summary, params))
    row.update(_fault_facts(summary))
    row["_params"] = list(flat)
    return row


def _overload_mark(load_model: Any, results: Mapping[str, Any]) -> bool | None:
    """The contract's rule (rundir.overload) for a summary that carries no mark: open loop only."""
    offered, duration = results.get("offered"), results.get("duration_s")
    if load_model != "open" or not offered or not duration:
        return None
    return overload(offered, results.get("ok") or 0, results.get("unfinished_fraction") or 0.0, duration)[0]


def _target_facts(summary: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    load, target = _mapping(summary.get("load")), _mapping(summary.get("target"))
    launched = target.get("launched_by_suite")
    return {
        "engine": load.get("engine") or params.get("load_engine"),
        "target_url": target.get("url") or params.get("target_url") or None,
        "target_impl": target.get("impl") or params.get("service_impl"),
        # Absent means the suite launched it: that was the only way before lab.run/2.
        "launched_by_suite": True if launched is None else bool(launched),
    }


def _fault_facts(summary: Mapping[str, Any]) -> dict[str, Any]:
    faults, availability = _mapping(summary.get("faults")), _mapping(summary.get("availability"))
    kind = faults.get("kind") or _mapping(summary.get("params")).get("fault")
    during = _mapping(availability.get("errors_during_fault"))
    return {
        "fault_kind": kind,
        "fault_injected": faults.get("injected"),
        "fault_at_s": faults.get("at_s"),
        "fault_windows": json.dumps(faults["windows"]) if faults.get("windows") else None,
        "recovered_after_s": _recovered_after_s(faults),
        "unavailable_s": availability.get("unavailable_s"),
        "first_ok_after_fault_s": availability.get("first_ok_after_fault_s"),
        "ok_during_fault": availability.get("ok_during_fault"),
        "errors_during_fault": sum(during.values()) if availability else None,
        "p99_during_fault_ms": _mapping(availability.get("latency_ms_during_fault")).get("p99"),
        "p99_outside_fault_ms": _mapping(availability.get("latency_ms_outside_fault")).get("p99"),
    }


def _recovered_after_s(faults: Mapping[str, Any]) -> float | None:
    """From the fault to its recovery: another node leads the partition (broker-kill), the
    broker continued (pause), the node or the service is back; None if it never recovered."""
    events, recovered = faults.get("events") or [], faults.get("recovered_at_s")
    if recovered is None or not events:
        return None
    return round(float(recovered) - float(events[0]["t_s"]), 3)


def _column_order(rows: list[dict[str, Any]], param_columns: tuple[str, ...]) -> list[str]:
    ids = ["run", "plan", "trial", "configuration"]
    params = [c for c in param_columns if c not in ids]
    # Every result column exists even in a plan without a single result, so the report's
    # tables and takeaways can say "nothing" instead of failing on a missing column.
    fixed = [
        "started_at",
        "ended_at",
        "cores",
        "measured_s",
        *RESULT_KEYS,
        *LATENCY_KEYS.values(),
        *CPU_COLUMNS,
        *AUDIT_KEYS,
        *TARGET_COLUMNS,
        *FAULT_COLUMNS,
    ]
    rest = [c for row in rows for c in row if c not in ids and c not in param_columns]
    return list(dict.fromkeys([*ids, *params, *fixed, *rest]))


def _sorted(summaries: pd.DataFrame, searched: str | None = None) -> pd.DataFrame:
    """Modes in the article's order, then configurations in plan order, then trials.

    Plan order is the order of each configuration's first cell: the runner numbers cells
    in matrix order (trials outermost), so a rate sweep reads low to high as written. A
    search visits its values out of order, so there the searched parameter's value sorts
    first within the configuration's other parameters.
    """
    if summaries.empty:
        return summaries
    first_cell = summaries.sort_values("run").drop_duplicates("configuration").reset_index(drop=True)
    plan_order = {config: i for i, config in enumerate(first_cell["configuration"])}
    by_value = searched is not None and searched in summaries

    def key(row: pd.Series) -> tuple[Any, ...]:
        value = sort_key(row[searched]) if by_value else (0, 0.0, "")
        config = plan_order[row["configuration"]]
        return (mode_rank(row["mode"]), value, config, sort_key(row["trial"]), row["run"])

    order = sorted(summaries.index, key=lambda i: key(summaries.loc[i]))
    return summaries.loc[order].reset_index(drop=True)


def _read_tables(
    plan_dir: Path, ids: pd.DataFrame, filename: str, dtype: Mapping[str, str] | None = None
) -> pd.DataFrame:
    frames = []
    for record in ids.to_dict("records"):
        path = plan_dir / record["run"] / filename
        if path.exists():
            table = pd.read_csv(path, dtype=dtype)  # type: ignore[arg-type]
            if len(table):
                frames.append(table.assign(**record))
    if not frames:
        return pd.DataFrame(columns=[*ids.columns])
    return pd.concat(frames, ignore_index=True)


def _read_histograms(plan_dir: Path, names: list[str]) -> dict[str, HdrHistogram]:
    histograms = {}
    for name in names:
        histogram = RunDir(plan_dir / name).read_histogram()
        if histogram is not None:
            histograms[name] = histogram
    return histograms
