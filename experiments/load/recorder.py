"""Per-worker recording: cheap appends during the run, HdrHistograms built once at the end.

The hot path only bumps list counters and appends integers to arrays; histograms are
filled after the last answer, so recording costs the generator almost nothing while it
is measuring. Latency is in microseconds (experiments/histograms.py fixes the layout) and
only 2xx answers are recorded: error answers and transport failures are counted, never
mixed into the latency of accepted requests.

Two clocks. A request belongs to the second of its *key time* (its intended send time in
the open loop, its send time in the closed loop): `sent`, `late` and latency are counted
there. Its outcome belongs to the second it *completed*: that is what the service did in
that second, and the only honest base for throughput. Past saturation the two differ by
the whole backlog, which is why the open loop once reported rates a server never reached.
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

from experiments.histograms import HIST_HIGHEST_US, encode_histogram, new_histogram
from experiments.rundir import COMPLETION_CLOCK_COUNTERS, KEY_CLOCK_COUNTERS, TRANSPORT

NS_PER_S = 1_000_000_000
LATE_NS = 1_000_000  # an open-loop request is late when sent more than 1 ms after its slot

# The window's cohort: requests whose key time falls in the measured window.
COHORT = ("completed_in_window", "completed_after_window", "in_flight_at_end")


class Recorder:
    """Counts per second, 2xx latencies, schedule lag and acknowledged ids of one worker.

    Seconds are relative to `origin_ns` (the start of the measured window): key seconds
    run from `first_second` (negative: warm-up) to the end of the window, completion
    seconds on through the drain (at most `drain_limit_s` after the window).
    """

    def __init__(self, origin_ns: int, warmup_s: float, duration_s: float,
                 drain_limit_s: float = 0.0, record_acks: bool = True) -> None:
        self.origin_ns = origin_ns
        self.end_ns = origin_ns + round(duration_s * NS_PER_S)
        self.first_second = -math.ceil(warmup_s)
        self.n_slots = math.ceil(warmup_s) + math.ceil(duration_s)
        # One more second than the limit: answers land until the limit passes, not before.
        self.n_done_slots = math.ceil(warmup_s) + math.ceil(duration_s + drain_limit_s) + 1
        self.window_first_slot = -self.first_second
        self.counts: dict[str, list[int]] = {name: [0] * self.n_slots for name in KEY_CLOCK_COUNTERS}
        self.counts.update({name: [0] * self.n_done_slots for name in COMPLETION_CLOCK_COUNTERS})
        self.statuses: Counter[tuple[int, str]] = Counter()  # (completion slot, status) of non-2xx
        self.cohort = dict.fromkeys(COHORT, 0)
        self.never_sent = 0
        self.latency_us: list[array] = [array("q") for _ in range(self.n_slots)]
        self.lag_us = array("q")
        self.record_acks = record_acks
        self.ack_ids: list[str] = []
        self.ack_ns = array("q")
        self.ack_sent_ns = array("q")  # key time of the acknowledging request
        self.ack_status = array("H")
        self.transport_kinds: Counter[str] = Counter()
        self.unparsed = 0
        self.last_done_ns = 0
        self._base_ns = origin_ns + self.first_second * NS_PER_S
        # Bound references: the hot path runs these once per request.
        self._sent = self.counts["sent"]
        self._late = self.counts["late"]
        self._ok = self.counts["ok"]
        self._events = self.counts["events_accepted"]

    def slot(self, t_ns: int) -> int:
        """The key-time slot of a request sent (or due) at `t_ns`."""
        index = (t_ns - self._base_ns) // NS_PER_S
        return 0 if index < 0 else min(index, self.n_slots - 1)

    def _done_slot(self, t_ns: int) -> int:
        index = (t_ns - self._base_ns) // NS_PER_S
        return 0 if index < 0 else min(index, self.n_done_slots - 1)

    def _completed(self, slot: int, t_done_ns: int) -> int:
        """Book a completion in the cohort; returns its completion slot."""
        if slot >= self.window_first_slot:
            key = "completed_in_window" if t_done_ns < self.end_ns else "completed_after_window"
            self.cohort[key] += 1
        if t_done_ns > self.last_done_ns:
            self.last_done_ns = t_done_ns
        return self._done_slot(t_done_ns)

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
                 t_done_ns: int, status: int = 200) -> None:
        """A 2xx answer carrying `events` accepted events whose ids are `ids`."""
        done = self._completed(slot, t_done_ns)
        self._ok[done] += 1
        self._events[done] += events
        self.latency_us[slot].append(latency_ns // 1000)
        if self.record_acks and ids:
            if len(ids) == 1:
                self.ack_ids.append(ids[0])
                self.ack_ns.append(t_done_ns)
                self.ack_sent_ns.append(t_done_ns - latency_ns)
                self.ack_status.append(status)
            else:
                self.ack_ids.extend(ids)
                self.ack_ns.extend([t_done_ns] * len(ids))
                self.ack_sent_ns.extend([t_done_ns - latency_ns] * len(ids))
                self.ack_status.extend([status] * len(ids))

    def rejected(self, slot: int, status: int, t_done_ns: int) -> None:
        # Redirects are not followed, so a 3xx lands with the 4xx: not accepted as sent.
        done = self._completed(slot, t_done_ns)
        key = "client_errors" if status < 500 else "server_errors"
        self.counts[key][done] += 1
        self.statuses[(done, str(status))] += 1

    def transport_error(self, slot: int, exc: BaseException, t_done_ns: int) -> None:
        done = self._completed(slot, t_done_ns)
        self.counts["transport_errors"][done] += 1
        self.statuses[(done, TRANSPORT)] += 1
        self.transport_kinds[type(exc).__name__] += 1

    def cut_off(self, slot: int) -> None:
        """A request still in flight when the drain limit ended the run: no outcome."""
        if slot >= self.window_first_slot:
            self.cohort["in_flight_at_end"] += 1

    def finish(self, worker: int, pid: int, acks_file: Path | None) -> dict[str, Any]:
        """Everything the parent needs to merge exactly, as picklable plain data."""
        slot_hists: dict[int, str] = {}
        window = new_histogram()
        for index, values in enumerate(self.latency_us):
            if not values:
                continue
            hist = _histogram_of(values)
            slot_hists[index + self.first_second] = encode_histogram(hist)
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
            "statuses": [(slot + self.first_second, status, n)
                         for (slot, status), n in sorted(self.statuses.items())],
            "cohort": self.cohort,
            "never_sent": self.never_sent,
            "drain_s": max(self.last_done_ns - self.end_ns, 0) / NS_PER_S,
            "slot_hists": slot_hists,
            "window_hist": encode_histogram(window),
            "lag_hist": encode_histogram(lag),
            "acks_file": str(acks_file) if acks_file is not None and self.record_acks else None,
            "acks": acks,
            "unparsed_answers": self.unparsed,
            "transport_error_kinds": dict(self.transport_kinds),
        }

    def _write_acks(self, path: Path) -> int:
        origin = self.origin_ns
        # csv quotes whatever a misbehaving service might put in an id (commas, newlines).
        with path.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(
                (event_id, f"{(t - origin) / NS_PER_S:.6f}", status, f"{(sent - origin) / NS_PER_S:.6f}")
                for event_id, t, status, sent in zip(self.ack_ids, self.ack_ns, self.ack_status,
                                                     self.ack_sent_ns, strict=True)
            )
        return len(self.ack_ids)


def _histogram_of(values: Iterable[int]) -> HdrHistogram:
    hist = new_histogram()
    record = hist.record_value
    for value in values:
        record(min(value, HIST_HIGHEST_US))
    return hist
