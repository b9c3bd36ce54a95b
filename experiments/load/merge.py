"""Exact merge of worker results: counters add, histograms add bucket by bucket."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from experiments.histograms import merge_histograms, summarize_ms
from experiments.load.recorder import COHORT
from experiments.rundir import COMPLETION_CLOCK_COUNTERS, KEY_CLOCK_COUNTERS, SERIES_PERCENTILES


@dataclass
class Merged:
    """The whole generator's view of one run."""

    series: list[dict[str, Any]]  # one row per second, warm-up .. last drain second with an answer
    errors: list[dict[str, Any]]  # non-2xx outcomes per completion second and status
    slot_hists: dict[int, HdrHistogram]  # key second -> 2xx latencies of that second
    window: HdrHistogram
    lag: HdrHistogram
    totals: dict[str, int]  # completion-clock counters inside the window, key-clock ones of its cohort
    status_counts: dict[str, int]  # non-2xx outcomes completed inside the window, by status
    cohort: dict[str, int]
    never_sent: int
    drain_s: float
    all_sent: int  # warm-up included: what the server should have received
    unparsed_answers: int
    transport_error_kinds: dict[str, int]
    workers: list[dict[str, Any]] = field(default_factory=list)


def merge_results(results: list[dict[str, Any]], duration_s: float) -> Merged:
    first = min(r["first_second"] for r in results)
    columns = (*KEY_CLOCK_COUNTERS, *COMPLETION_CLOCK_COUNTERS)
    n_slots = max(r["first_second"] + len(r["counts"][name]) for r in results for name in columns) - first
    sums = {name: [0] * n_slots for name in columns}
    for result in results:
        offset = result["first_second"] - first
        for name in columns:
            column = sums[name]
            for i, value in enumerate(result["counts"][name]):
                column[offset + i] += value
    slot_hists: dict[int, HdrHistogram] = {}
    for second in sorted({s for r in results for s in r["slot_hists"]}):
        slot_hists[second] = merge_histograms(
            r["slot_hists"][second] for r in results if second in r["slot_hists"]
        )
    measured = int(-(-duration_s // 1))  # whole seconds of the window (a partial one counts)
    # Drain seconds are kept up to the last one in which anything completed.
    last = max((i for i in range(n_slots) if any(sums[c][i] for c in columns)), default=0)
    last = max(last, -first + measured - 1)
    series = []
    for i in range(last + 1):
        second = first + i
        phase = "warmup" if second < 0 else "measure" if second < measured else "drain"
        row: dict[str, Any] = {"second": second, "phase": phase, **{c: sums[c][i] for c in columns}}
        hist = slot_hists.get(second)
        row.update(_slot_percentiles(hist) if hist is not None
                   else dict.fromkeys([*SERIES_PERCENTILES, "max_ms"]))
        series.append(row)
    window_rows = [row for row in series if row["phase"] == "measure"]
    statuses: Counter[tuple[int, str]] = Counter()
    for result in results:
        for second, status, count in result["statuses"]:
            statuses[(second, status)] += count
    in_window: Counter[str] = Counter()
    for (second, status), count in statuses.items():
        if 0 <= second < measured:
            in_window[status] += count
    cohort = {key: sum(r["cohort"][key] for r in results) for key in COHORT}
    kinds: Counter[str] = Counter()
    for result in results:
        kinds.update(result["transport_error_kinds"])
    return Merged(
        series=series,
        errors=[{"second": s, "status": st, "count": n} for (s, st), n in sorted(statuses.items())],
        slot_hists=slot_hists,
        window=merge_histograms(r["window_hist"] for r in results),
        lag=merge_histograms(r["lag_hist"] for r in results),
        totals={name: sum(row[name] for row in window_rows) for name in columns},
        status_counts=dict(sorted(in_window.items())),
        cohort=cohort,
        never_sent=sum(r["never_sent"] for r in results),
        drain_s=max(r["drain_s"] for r in results),
        all_sent=sum(sum(r["counts"]["sent"]) for r in results),
        unparsed_answers=sum(r["unparsed_answers"] for r in results),
        transport_error_kinds=dict(kinds),
        workers=[{k: r[k] for k in ("worker", "pid", "acks", "never_sent")} for r in results],
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
