"""The analysis's private copy of the result-file contract (experiments/RESULTS.md, lab.run/2).

Issue 11 item 3 gives histogram decode/merge and the file names ONE owner,
`experiments/results.py`; until that module is on main, the analysis keeps its copies
here and only here, so the switch is one import line.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

SCHEMA = "lab.run/2"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"
SERIES_FILE = "series.csv"
ERRORS_FILE = "errors.csv"
CPU_FILE = "cpu.csv"
LATENCY_FILE = "latency.hdr"
HISTOGRAMS_DIR = "histograms"
PLAN_FILE = "plan.json"
SEARCH_FILE = "search.json"
NOTEBOOK_FILE = "notebook.ipynb"
PAPERMILL_LOG = "papermill.log"


def decode_histogram(text: str) -> HdrHistogram:
    """Decode one base64 HdrHistogram (the `latency.hdr` encoding)."""
    return HdrHistogram.decode(text.strip().encode("ascii"))


def merge_histograms(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    """Exact merge: the counts of every bucket added, inputs left untouched.

    Percentiles of trials cannot be averaged; percentiles of the merged histogram are those
    of all recorded latencies together.
    """
    histograms = list(histograms)
    if not histograms:
        raise ValueError("no histograms to merge")
    merged = HdrHistogram(
        min(h.lowest_trackable_value for h in histograms),
        max(h.highest_trackable_value for h in histograms),
        max(h.significant_figures for h in histograms),
    )
    for histogram in histograms:
        merged.add(histogram)
    return merged
