"""The run directory's files: one owner for their names, schema, histogram encoding and
summary writing, shared by the writer (the load generator and the run) and the readers
(the audit, the runner and the analysis). The contract in words is experiments/RESULTS.md.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from experiments.errors import LabError

SCHEMA = "lab.run/2"

SUMMARY = "summary.json"
SERIES = "series.csv"
ERRORS = "errors.csv"
CPU = "cpu.csv"
LATENCY = "latency.hdr"
HISTOGRAMS_DIR = "histograms"
INTERVALS_DIR = "intervals"
ACKS = "acks.csv"
AUDIT = "audit.json"
METRICS = "metrics.prom"
SERVICE_LOG = "service.log"
ERROR = "error.txt"

# Latency in microseconds, 1 us .. 60 s, 3 significant digits: every histogram of a run
# has this layout, so histograms of workers, trials and runs add bucket by bucket.
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}

# series.csv: `sent`, `late` and the percentiles by key time (intended send time in the
# open loop, send time in the closed loop); the outcomes by completion time.
KEY_CLOCK_COUNTERS = ("sent", "late")
COMPLETION_CLOCK_COUNTERS = ("ok", "events_accepted", "client_errors", "server_errors", "transport_errors")
SERIES_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
SERIES_COLUMNS = (
    "second", "phase", *KEY_CLOCK_COUNTERS, *COMPLETION_CLOCK_COUNTERS,
    *SERIES_PERCENTILES, "max_ms", "fault",
)
ERRORS_COLUMNS = ("second", "status", "count")
ACKS_COLUMNS = ("event_id", "t_ack_s", "status")
TRANSPORT = "transport"  # the status of an outcome without an HTTP answer


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def encode_histogram(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode_histogram(text: str) -> HdrHistogram:
    """One base64 HdrHistogram line (the `latency.hdr` encoding)."""
    return HdrHistogram.decode(text.strip().encode("ascii"))


def merge_histograms(histograms: Iterable[HdrHistogram | str]) -> HdrHistogram:
    """Exact merge: the counts of every bucket added; encoded histograms are decoded first.

    Percentiles of trials or workers cannot be averaged; the percentiles of the merge are
    those of all recorded latencies together. Inputs are left untouched.
    """
    total = new_histogram()
    for hist in histograms:
        total.add(decode_histogram(hist) if isinstance(hist, str) else hist)
    return total


def summarize_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """The contract's spectrum in milliseconds; None everywhere for an empty histogram."""
    keys = [*PERCENTILES, "max", "mean"]
    if hist.get_total_count() == 0:
        return dict.fromkeys(keys)
    values = hist.get_percentile_to_value_dict(list(PERCENTILES.values()))
    out: dict[str, float | None] = {key: values[p] / 1000.0 for key, p in PERCENTILES.items()}
    out["max"] = hist.get_max_value() / 1000.0
    out["mean"] = round(hist.get_mean_value() / 1000.0, 3)
    return out


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(_finite(summary), indent=2, default=str) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary; `ResultsError` when it is missing, unreadable or another schema."""
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no summary") from None
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: unreadable summary: {exc}") from None
    if not isinstance(summary, dict) or summary.get("schema") != SCHEMA:
        found = summary.get("schema") if isinstance(summary, dict) else None
        raise ResultsError(
            f"{path}: schema {found!r}, expected {SCHEMA!r} (written by another version of the "
            "suite: re-run the plan, or open it with the commit named in its provenance)"
        )
    return summary


def write_rows(path: Path, columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON; they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class ResultsError(LabError):
    """A run directory that does not hold what the contract promises."""
