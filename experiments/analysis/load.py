"""Read every run directory of a plan into tables (the contract is experiments/RESULTS.md).

Nothing here computes a statistic: it only reshapes what the result files say, so the
report's numbers can be traced back to a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from experiments.analysis.params import (
    config_label,
    flatten_params,
    mode_rank,
    sort_key,
    varying_params,
)

SCHEMA = "lab.run/1"
RUN_FILES = ("summary.json", "error.txt", "series.csv", "notebook.ipynb", "papermill.log", "latency.hdr")
COMPONENTS = ("generator", "service", "broker")

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
    "requests",
    "ok",
    "client_errors",
    "server_errors",
    "transport_errors",
    "events_accepted",
    "throughput_rps",
    "events_per_s",
    "error_rate",
    "late",
    "generator_bound",
    "generator_ceiling_rps",
)
AUDIT_KEYS = ("acknowledged", "present", "lost", "unacknowledged", "duplicates")
# Parameters every run has, taken from `load`/`service` when the plan did not set them.
CORE_PARAMS = ("mode", "endpoint", "load_model", "connections", "rate")
ID_COLUMNS = ("run", "plan", "trial", "config", "started_at", "ended_at", "cores")
RESULT_COLUMNS = frozenset(
    {
        *ID_COLUMNS,
        "measured_s",
        *RESULT_KEYS,
        *LATENCY_KEYS.values(),
        *(f"cpu_{c}" for c in (*COMPONENTS, "machine")),
        *AUDIT_KEYS,
    }
)


@dataclass(frozen=True, eq=False)
class Runs:
    """Every run of one plan. `summaries` has one row per run, ordered by configuration."""

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

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(sorted(self.summaries["mode"].dropna().unique(), key=mode_rank))


def load_runs(plan_dir: Path | str) -> Runs:
    """Load every run directory under `plan_dir`; cells without a summary go to `failed`."""
    plan_dir = Path(plan_dir)
    if not plan_dir.is_dir():
        raise FileNotFoundError(f"no plan results directory at {plan_dir}")
    raw: dict[str, dict[str, Any]] = {}
    failed: list[dict[str, str]] = []
    run_dirs = sorted(p for p in plan_dir.iterdir() if _is_run_dir(p))
    for run_dir in run_dirs:
        summary, error = _read_summary(run_dir)
        if summary is None:
            failed.append({"run": run_dir.name, "error": error})
        else:
            raw[run_dir.name] = summary
    plan_info = _read_plan_info(plan_dir)
    present = {p.name for p in run_dirs}
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
    summaries["config"] = [config_label(r, varying) for r in summaries.to_dict("records")]
    summaries = _sorted(summaries)
    configs = tuple(dict.fromkeys(summaries["config"]))

    ids = summaries[["run", "config", "mode", "trial"]]
    plan = next((str(s["run"]["plan"]) for s in raw.values() if s["run"].get("plan")), None)
    return Runs(
        plan=plan or str(plan_info.get("name") or plan_dir.name),
        plan_dir=plan_dir,
        description=str(plan_info.get("description") or "").strip(),
        summaries=summaries,
        series=_read_tables(plan_dir, ids, "series.csv"),
        cpu=_read_tables(plan_dir, ids, "cpu.csv"),
        histograms=_read_histograms(plan_dir, list(raw)),
        failed=pd.DataFrame(failed, columns=["run", "error"]),
        raw=raw,
        param_columns=param_columns,
        varying=varying,
        configs=configs,
    )


def _is_run_dir(path: Path) -> bool:
    if not path.is_dir() or path.name.startswith((".", "_")):
        return False
    return path.name[:1].isdigit() or any((path / name).exists() for name in RUN_FILES)


def _read_plan_info(plan_dir: Path) -> dict[str, Any]:
    """The runner's plan.json (name, description, cells), when there is one."""
    try:
        info = json.loads((plan_dir / "plan.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _read_summary(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The parsed summary, or None and the reason this cell has no usable result.

    An error.txt wins over a summary.json: the runner writes it when the cell failed, and
    a summary written before the failure (say, before the audit) is not a finished run.
    """
    path = run_dir / "summary.json"
    if (run_dir / "error.txt").exists() or not path.exists():
        return None, _error_text(run_dir)
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"unreadable summary.json: {exc}"
    if summary.get("schema") != SCHEMA:
        return None, f"summary.json schema {summary.get('schema')!r}, expected {SCHEMA!r}"
    return summary, ""


def _error_text(run_dir: Path) -> str:
    path = run_dir / "error.txt"
    if not path.exists():
        return "no summary.json and no error.txt"
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    # A traceback ends with the exception itself, which is the line worth showing.
    return lines[-1][:300] if lines else "empty error.txt"


def _summary_row(name: str, summary: Mapping[str, Any]) -> dict[str, Any]:
    run = summary.get("run", {})
    load = summary.get("load", {})
    service = summary.get("service", {})
    results = summary.get("results", {})
    params = dict(summary.get("params", {}))
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
        "cores": summary.get("provenance", {}).get("machine", {}).get("cpu_count"),
        **flat,
        "measured_s": results.get("duration_s"),
    }
    row.update({key: results.get(key) for key in RESULT_KEYS})
    latency = results.get("latency_ms") or {}
    row.update({column: latency.get(key) for key, column in LATENCY_KEYS.items()})
    cpu = results.get("cpu_percent") or {}
    row.update({f"cpu_{c}": cpu.get(c) for c in (*COMPONENTS, "machine")})
    audit = summary.get("audit") or {}
    row.update({key: audit.get(key) for key in AUDIT_KEYS})
    row["_params"] = list(flat)
    return row


def _column_order(rows: list[dict[str, Any]], param_columns: tuple[str, ...]) -> list[str]:
    ids = ["run", "plan", "trial", "config"]
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
        *(f"cpu_{c}" for c in (*COMPONENTS, "machine")),
        *AUDIT_KEYS,
    ]
    rest = [c for row in rows for c in row if c not in ids and c not in param_columns]
    return list(dict.fromkeys([*ids, *params, *fixed, *rest]))


def _sorted(summaries: pd.DataFrame) -> pd.DataFrame:
    """Modes in the article's order, then configurations in plan order, then trials.

    Plan order is the order of each configuration's first cell: the runner numbers cells
    in matrix order (trials outermost), so a rate sweep reads low to high as written.
    """
    if summaries.empty:
        return summaries
    first_cell = summaries.sort_values("run").drop_duplicates("config").reset_index(drop=True)
    plan_order = {config: i for i, config in enumerate(first_cell["config"])}

    def key(row: pd.Series) -> tuple[Any, ...]:
        return (mode_rank(row["mode"]), plan_order[row["config"]], sort_key(row["trial"]), row["run"])

    order = sorted(summaries.index, key=lambda i: key(summaries.loc[i]))
    return summaries.loc[order].reset_index(drop=True)


def _read_tables(plan_dir: Path, ids: pd.DataFrame, filename: str) -> pd.DataFrame:
    frames = []
    for record in ids.to_dict("records"):
        path = plan_dir / record["run"] / filename
        if path.exists():
            table = pd.read_csv(path)
            frames.append(table.assign(**record))
    if not frames:
        return pd.DataFrame(columns=[*ids.columns])
    return pd.concat(frames, ignore_index=True)


def _read_histograms(plan_dir: Path, names: list[str]) -> dict[str, HdrHistogram]:
    histograms = {}
    for name in names:
        histogram = read_histogram(plan_dir / name)
        if histogram is not None:
            histograms[name] = histogram
    return histograms


def read_histogram(run_dir: Path) -> HdrHistogram | None:
    """The run's merged latency histogram; rebuilt from the per-worker ones if missing."""
    merged = run_dir / "latency.hdr"
    if merged.exists():
        return decode_histogram(merged.read_text())
    parts = sorted((run_dir / "histograms").glob("*")) if (run_dir / "histograms").is_dir() else []
    histograms = [decode_histogram(p.read_text()) for p in parts if p.is_file()]
    if not histograms:
        return None
    first, *rest = histograms
    for other in rest:
        first.add(other)
    return first


def decode_histogram(text: str) -> HdrHistogram:
    """Decode one base64 HdrHistogram (the `latency.hdr` encoding)."""
    return HdrHistogram.decode(text.strip().encode("ascii"))
