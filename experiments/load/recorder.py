"""Per-worker recording: cheap appends during the run, HdrHistograms built once at the end.

The hot path only bumps list counters and appends integers to arrays; histograms are
filled after the last answer, so recording costs the generator almost nothing while it
is measuring. Latency is in microseconds (1 us .. 60 s, 3 significant digits, the
contract of RESULTS.md) and only 2xx answers are recorded: error answers and transport
failures are counted, never mixed into the latency of accepted requests.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3
NS_PER_S = 1_000_000_000
LATE_NS = 1_000_000  # an open-loop request is late when sent more than 1 ms after its slot

COUNTERS = ("sent", "ok", "client_errors", "server_errors", "transport_errors",
            "events_accepted", "late")
PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode("ascii")


def decode(blob: str) -> HdrHistogram:
    return HdrHistogram.decode(blob.strip().encode("ascii"))


def merge_encoded(blobs: Iterable[str]) -> HdrHistogram:
    """Exact sum of encoded histograms (same layout, so counts add bucket by bucket)."""
    total = new_histogram()
    for blob in blobs:
        total.add(decode(blob))
    return total


def summarize_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """The contract's spectrum in milliseconds; None everywhere for an empty histogram."""
    keys = [*PERCENTILES, "max", "mean"]
    if hist.get_total_count() == 0:
        return dict.fromkeys(keys)
    values = hist.get_percentile_to_value_dict(list(PERCENTILES.values()))
    out: dict[str, float | None] = {
        key: values[p] / 1000.0 for key, p in PERCENTILES.items()
    }
    out["max"] = hist.get_max_value() / 1000.0
    out["mean"] = round(hist.get_mean_value() / 1000.0, 3)
    return out


class Recorder:
    """Counts per second slot, 2xx latencies, schedule lag and acknowledged ids of one worker.

    Slots are whole seconds relative to `origin_ns` (the start of the measured window),
    `first_second` (negative: warm-up) onwards, `n_slots` of them; a request belongs to
    the slot of its key time (send time, or intended send time in the open loop).
    """

    def __init__(self, origin_ns: int, warmup_s: float, duration_s: float,
                 record_acks: bool = True) -> None:
        self.origin_ns = origin_ns
        self.first_second = -math.ceil(warmup_s)
        self.n_slots = math.ceil(warmup_s) + math.ceil(duration_s)
        self.window_first_slot = -self.first_second
        self.counts: dict[str, list[int]] = {name: [0] * self.n_slots for name in COUNTERS}
        self.latency_us: list[array] = [array("q") for _ in range(self.n_slots)]
        self.lag_us = array("q")
        self.record_acks = record_acks
        self.ack_ids: list[str] = []
        self.ack_ns = array("q")
        self.transport_kinds: Counter[str] = Counter()
        self.unparsed = 0
        self.unsent = 0
        self._base_ns = origin_ns + self.first_second * NS_PER_S
        # Bound references: the hot path runs these once per request.
        self._sent = self.counts["sent"]
        self._late = self.counts["late"]
        self._ok = self.counts["ok"]
        self._events = self.counts["events_accepted"]

    def slot(self, t_ns: int) -> int:
        index = (t_ns - self._base_ns) // NS_PER_S
        return 0 if index < 0 else min(index, self.n_slots - 1)

    def sent(self, slot: int) -> None:
        self._sent[slot] += 1

    def sent_on_schedule(self, slot: int, lag_ns: int) -> None:
        """An open-loop send, `lag_ns` after its intended time."""
        self._sent[slot] += 1
        if lag_ns > LATE_NS:
            self._late[slot] += 1
        if slot >= self.window_first_slot:
            self.lag_us.append(lag_ns // 1000)

    def accepted(self, slot: int, latency_ns: int, ids: list[str], events: int,
                 t_done_ns: int) -> None:
        """A 2xx answer carrying `events` accepted events whose ids are `ids`."""
        self._ok[slot] += 1
        self._events[slot] += events
        self.latency_us[slot].append(latency_ns // 1000)
        if self.record_acks and ids:
            if len(ids) == 1:
                self.ack_ids.append(ids[0])
                self.ack_ns.append(t_done_ns)
            else:
                self.ack_ids.extend(ids)
                self.ack_ns.extend([t_done_ns] * len(ids))

    def rejected(self, slot: int, status: int) -> None:
        # Redirects are not followed, so a 3xx lands with the 4xx: not accepted as sent.
        key = "client_errors" if status < 500 else "server_errors"
        self.counts[key][slot] += 1

    def transport_error(self, slot: int, exc: BaseException) -> None:
        self.counts["transport_errors"][slot] += 1
        self.transport_kinds[type(exc).__name__] += 1

    def finish(self, worker: int, pid: int, acks_file: Path | None) -> dict[str, Any]:
        """Everything the parent needs to merge exactly, as picklable plain data."""
        slot_hists: dict[int, str] = {}
        window = new_histogram()
        for index, values in enumerate(self.latency_us):
            if not values:
                continue
            hist = _histogram_of(values)
            slot_hists[index + self.first_second] = encode(hist)
            if index >= self.window_first_slot:
                window.add(hist)
        lag = _histogram_of(self.lag_us)
        acks = 0
        if acks_file is not None and self.record_acks:
            acks = self._write_acks(acks_file)
        return {
            "worker": worker,
            "pid": pid,
            "first_second": self.first_second,
            "counts": self.counts,
            "slot_hists": slot_hists,
            "window_hist": encode(window),
            "lag_hist": encode(lag),
            "acks_file": str(acks_file) if acks_file is not None and self.record_acks else None,
            "acks": acks,
            "unparsed_answers": self.unparsed,
            "unsent": self.unsent,
            "transport_error_kinds": dict(self.transport_kinds),
        }

    def _write_acks(self, path: Path) -> int:
        origin = self.origin_ns
        # csv quotes whatever a misbehaving service might put in an id (commas, newlines).
        with path.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(
                (event_id, f"{(t - origin) / NS_PER_S:.6f}")
                for event_id, t in zip(self.ack_ids, self.ack_ns, strict=True)
            )
        return len(self.ack_ids)


def _histogram_of(values: Iterable[int]) -> HdrHistogram:
    hist = new_histogram()
    record = hist.record_value
    for value in values:
        record(min(value, HIST_HIGHEST_US))
    return hist
