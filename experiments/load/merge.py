"""Exact merge of worker results: counters add, histograms add bucket by bucket."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from experiments.load.recorder import COUNTERS, merge_encoded, summarize_ms

SERIES_COLUMNS = ("second", "phase", *COUNTERS, "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
SERIES_PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}


@dataclass
class Merged:
    """The whole generator's view of one run."""

    series: list[dict[str, Any]]
    window: HdrHistogram
    lag: HdrHistogram
    totals: dict[str, int]  # counters summed over the measured window
    all_sent: int  # warm-up included: what the server should have received
    unsent: int
    unparsed_answers: int
    transport_error_kinds: dict[str, int]
    workers: list[dict[str, Any]] = field(default_factory=list)


def merge_results(results: list[dict[str, Any]]) -> Merged:
    first = min(r["first_second"] for r in results)
    n_slots = max(r["first_second"] + len(r["counts"]["sent"]) for r in results) - first
    sums = {name: [0] * n_slots for name in COUNTERS}
    for result in results:
        offset = result["first_second"] - first
        for name in COUNTERS:
            column = sums[name]
            for i, value in enumerate(result["counts"][name]):
                column[offset + i] += value
    series = []
    for i in range(n_slots):
        second = first + i
        blobs = [r["slot_hists"][second] for r in results if second in r["slot_hists"]]
        row: dict[str, Any] = {
            "second": second,
            "phase": "warmup" if second < 0 else "measure",
            **{name: sums[name][i] for name in COUNTERS},
        }
        row.update(_slot_percentiles(merge_encoded(blobs)) if blobs
                   else dict.fromkeys([*SERIES_PERCENTILES, "max_ms"]))
        series.append(row)
    window_rows = [row for row in series if row["second"] >= 0]
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result["transport_error_kinds"])
    return Merged(
        series=series,
        window=merge_encoded(r["window_hist"] for r in results),
        lag=merge_encoded(r["lag_hist"] for r in results),
        totals={name: sum(row[name] for row in window_rows) for name in COUNTERS},
        all_sent=sum(sum(r["counts"]["sent"]) for r in results),
        unsent=sum(r["unsent"] for r in results),
        unparsed_answers=sum(r["unparsed_answers"] for r in results),
        transport_error_kinds=dict(kinds),
        workers=[{k: r[k] for k in ("worker", "pid", "acks", "unsent")} for r in results],
    )


def _slot_percentiles(hist: HdrHistogram) -> dict[str, float]:
    values = hist.get_percentile_to_value_dict(list(SERIES_PERCENTILES.values()))
    row = {key: values[p] / 1000.0 for key, p in SERIES_PERCENTILES.items()}
    row["max_ms"] = hist.get_max_value() / 1000.0
    return row


def lag_summary_ms(lag: HdrHistogram) -> dict[str, float | None]:
    """How far behind its schedule the open loop sent (0 for the closed loop)."""
    spectrum = summarize_ms(lag)
    return {key: spectrum[key] for key in ("p50", "p99", "p99.9", "max")}
