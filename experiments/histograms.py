"""Latency histograms: the one layout every histogram of the suite shares, its text
encoding, the exact merge and the percentile spectrum a summary reports.

The recorder fills them, workers hand them over encoded, the run directory stores them
(`latency.hdr`, `histograms/`, `intervals/`: experiments/rundir.py names the files) and the
analysis merges trials with the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

# Latency in microseconds, 1 us .. 60 s, 3 significant digits: every histogram of a run
# has this layout, so histograms of workers, trials and runs add bucket by bucket.
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}


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
