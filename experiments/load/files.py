"""The run directory's load files, in the formats RESULTS.md fixes."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.histograms import decode_histogram, encode_histogram
from experiments.load.merge import Merged
from experiments.rundir import (
    ACKS,
    ACKS_COLUMNS,
    ERRORS,
    ERRORS_COLUMNS,
    HISTOGRAMS_DIR,
    INTERVALS_DIR,
    LATENCY,
    SERIES,
    SERIES_COLUMNS,
    RunDir,
    write_rows,
)


def write_series(run_dir: RunDir, merged: Merged, fault_windows: Sequence[Sequence[float]] = ()) -> None:
    """series.csv (with the share of each second under a fault) and errors.csv."""
    rows = [{**row, "fault": fault_share(row["second"], fault_windows)} for row in merged.series]
    write_rows(run_dir / SERIES, SERIES_COLUMNS, rows)
    write_rows(run_dir / ERRORS, ERRORS_COLUMNS, merged.errors)


def fault_share(second: int, windows: Sequence[Sequence[float]]) -> float:
    """How much of [second, second + 1) lies inside the fault windows (0..1)."""
    covered = sum(max(0.0, min(second + 1, end) - max(second, start)) for start, end in windows)
    return round(min(covered, 1.0), 3)


def write_histograms(run_dir: RunDir, merged: Merged, results: list[dict[str, Any]],
                     origin_unix: float, warmup_s: float) -> None:
    """latency.hdr (merged window) and, per worker, its window histogram and interval log.

    `histograms/` holds only one-line encoded histograms (readers glob it); the interval
    logs go to `intervals/worker-<i>.hlog` (HdrHistogram log format 1.2): one histogram
    per second, warm-up included, so any window can be recomputed exactly later.
    """
    (run_dir / LATENCY).write_text(encode_histogram(merged.window) + "\n")
    (run_dir / HISTOGRAMS_DIR).mkdir(exist_ok=True)
    (run_dir / INTERVALS_DIR).mkdir(exist_ok=True)
    for result in results:
        run_dir.worker_histogram(result["worker"]).write_text(result["window_hist"] + "\n")
        first = result["first_second"]
        base = origin_unix + first
        with run_dir.worker_intervals(result["worker"]).open("w") as log:
            log.write("#[Histogram log format version 1.2]\n")
            log.write(f"#[StartTime: {base:.3f} (seconds since epoch)]\n")
            log.write(f"#[BaseTime: {base:.3f} (seconds since epoch)]\n")
            log.write(f"# values in microseconds; interval start {-first:g} s = measured "
                      f"window start (warm-up {warmup_s:g} s before it)\n")
            log.write('"StartTimestamp","Interval_Length","Interval_Max",'
                      '"Interval_Compressed_Histogram"\n')
            for second, blob in sorted(result["slot_hists"].items()):
                max_ms = decode_histogram(blob).get_max_value() / 1000.0
                log.write(f"{second - first:.3f},1.000,{max_ms:.3f},{blob}\n")


def collect_acks(run_dir: RunDir, results: list[dict[str, Any]]) -> int:
    """Concatenate the workers' ack parts into acks.csv (header once) and remove the parts."""
    total = 0
    with (run_dir / ACKS).open("w", newline="") as out:
        out.write(",".join(ACKS_COLUMNS) + "\n")
        for result in results:
            part = result.get("acks_file")
            if not part:
                continue
            with Path(part).open() as src:
                shutil.copyfileobj(src, out)
            Path(part).unlink()
            total += result["acks"]
    return total
