"""The run directory's load files, in the formats RESULTS.md fixes."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

from experiments.load.merge import SERIES_COLUMNS, Merged
from experiments.load.recorder import decode, encode

ACKS_HEADER = "event_id,t_ack_s\n"


def write_series(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=SERIES_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_histograms(out_dir: Path, merged: Merged, results: list[dict[str, Any]],
                     origin_unix: float, warmup_s: float) -> None:
    """latency.hdr (merged window) and, per worker, its window histogram and interval log.

    `histograms/` holds only one-line encoded histograms (readers glob it); the interval
    logs go to `intervals/worker-<i>.hlog` (HdrHistogram log format 1.2): one histogram
    per second, warm-up included, so any window can be recomputed exactly later.
    """
    (out_dir / "latency.hdr").write_text(encode(merged.window) + "\n")
    hist_dir = out_dir / "histograms"
    hist_dir.mkdir(exist_ok=True)
    log_dir = out_dir / "intervals"
    log_dir.mkdir(exist_ok=True)
    for result in results:
        name = f"worker-{result['worker']}"
        (hist_dir / f"{name}.hdr").write_text(result["window_hist"] + "\n")
        first = result["first_second"]
        base = origin_unix + first
        with (log_dir / f"{name}.hlog").open("w") as log:
            log.write("#[Histogram log format version 1.2]\n")
            log.write(f"#[StartTime: {base:.3f} (seconds since epoch)]\n")
            log.write(f"#[BaseTime: {base:.3f} (seconds since epoch)]\n")
            log.write(f"# values in microseconds; interval start {-first:g} s = measured "
                      f"window start (warm-up {warmup_s:g} s before it)\n")
            log.write('"StartTimestamp","Interval_Length","Interval_Max",'
                      '"Interval_Compressed_Histogram"\n')
            for second, blob in sorted(result["slot_hists"].items()):
                max_ms = decode(blob).get_max_value() / 1000.0
                log.write(f"{second - first:.3f},1.000,{max_ms:.3f},{blob}\n")


def collect_acks(out_dir: Path, results: list[dict[str, Any]]) -> int:
    """Concatenate the workers' ack parts into acks.csv (header once) and remove the parts."""
    total = 0
    with (out_dir / "acks.csv").open("w", newline="") as out:
        out.write(ACKS_HEADER)
        for result in results:
            part = result.get("acks_file")
            if not part:
                continue
            with Path(part).open() as src:
                shutil.copyfileobj(src, out)
            Path(part).unlink()
            total += result["acks"]
    return total


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(_finite(summary), indent=2, default=str) + "\n")


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON; they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
