"""Histograms and per-second counts: exact merges, exact arithmetic on tiny inputs."""

from __future__ import annotations

import multiprocessing as mp
import random
from pathlib import Path

import pytest

from experiments.histograms import (
    decode_histogram,
    encode_histogram,
    merge_histograms,
    new_histogram,
    summarize_ms,
)
from experiments.load.driver import availability
from experiments.load.files import collect_acks
from experiments.load.merge import merge_results
from experiments.load.recorder import NS_PER_S, Recorder
from experiments.rundir import RunDir


def encoded_histogram_of(values: list[int]) -> str:
    """Runs in a separate process: the way a worker hands its histogram to the parent."""
    hist = new_histogram()
    for value in values:
        hist.record_value(value)
    return encode_histogram(hist)


def test_histograms_merged_from_two_processes_equal_one_histogram_of_all_values() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.5)) + 1 for _ in range(20_000)]
    values += [1, 59_999_999, 1_000_000]  # both ends of the range and a stall
    halves = [values[0::2], values[1::2]]
    with mp.get_context("spawn").Pool(2) as pool:
        blobs = pool.map(encoded_histogram_of, halves)

    merged = merge_histograms(blobs)
    single = decode_histogram(encoded_histogram_of(values))
    assert merged.get_total_count() == single.get_total_count() == len(values)
    assert merged.get_min_value() == single.get_min_value()
    assert merged.get_max_value() == single.get_max_value()
    assert all(merged.get_count_at_index(i) == single.get_count_at_index(i)
               for i in range(single.counts_len))
    assert encode_histogram(merged) == encode_histogram(single)
    assert summarize_ms(merged) == summarize_ms(single)


def test_summary_spectrum_in_milliseconds() -> None:
    hist = new_histogram()
    for us in range(1, 1001):  # 1 us .. 1 ms, uniform
        hist.record_value(us)
    spectrum = summarize_ms(hist)
    assert list(spectrum) == ["p50", "p75", "p90", "p99", "p99.9", "p99.99", "max", "mean"]
    assert spectrum["p50"] == 0.5
    assert spectrum["p99"] == 0.99
    assert spectrum["max"] == 1.0
    assert summarize_ms(new_histogram())["p99"] is None


def fake_worker(index: int, origin: int, latencies_by_second: dict[float, list[int]]) -> dict:
    rec = Recorder(origin, warmup_s=1.0, duration_s=2.0)
    for at_s, latencies in latencies_by_second.items():
        t = origin + int(at_s * NS_PER_S)
        for latency_us in latencies:
            slot = rec.slot(t)
            rec.sent(slot)
            rec.accepted(slot, latency_us * 1000, [f"id-{index}-{t}-{latency_us}"], 1, t)
        rec.sent(rec.slot(t))
        rec.rejected(rec.slot(t), 503, t)
    return rec.finish(index, 0, None)


def test_worker_results_merge_into_series_and_window() -> None:
    origin = 10 * NS_PER_S
    a = fake_worker(0, origin, {-0.5: [100], 0.2: [1000, 2000], 1.7: [5000]})
    b = fake_worker(1, origin, {0.9: [3000], 1.1: [4000]})
    merged = merge_results([a, b], duration_s=2.0)

    assert [row["second"] for row in merged.series] == [-1, 0, 1]
    assert [row["phase"] for row in merged.series] == ["warmup", "measure", "measure"]
    assert [row["ok"] for row in merged.series] == [1, 3, 2]
    assert [row["server_errors"] for row in merged.series] == [1, 2, 2]
    assert [row["sent"] for row in merged.series] == [2, 5, 4]
    # HdrHistogram reports the top of a value's bucket: within 0.1% at 3 digits.
    assert merged.series[1]["max_ms"] == pytest.approx(3.0, rel=1e-3)
    assert merged.series[2]["p50_ms"] == pytest.approx(4.0, rel=1e-3)
    # The window excludes warm-up: 5 answers, 1 ms .. 5 ms.
    assert merged.totals["ok"] == 5 and merged.totals["sent"] == 9
    assert merged.window.get_total_count() == 5
    assert merged.window.get_max_value() == 5000 + 3  # highest value equivalent to 5000 us
    assert merged.all_sent == 11


def test_late_counts_only_beyond_one_millisecond() -> None:
    rec = Recorder(0, warmup_s=0, duration_s=1)
    for lag_us in (0, 999, 1000, 1001, 5000):
        rec.sent_on_schedule(0, lag_us * 1000)
    assert rec.counts["late"][0] == 2


def test_outcomes_count_in_the_second_they_complete_and_the_cohort_adds_up() -> None:
    """A request keyed in second 0 whose answer arrives in second 2 is throughput of second 2;
    the window's requests are each completed in it, after it, or cut off."""
    origin = 5 * NS_PER_S
    rec = Recorder(origin, warmup_s=1.0, duration_s=2.0, drain_limit_s=1.0)
    at = {s: origin + int(s * NS_PER_S) for s in (-0.5, 0.1, 0.5, 1.2, 2.4, 2.9)}
    rec.sent(rec.slot(at[-0.5]))
    rec.accepted(rec.slot(at[-0.5]), 600_000_000, ["w"], 1, at[0.1], 200)  # warm-up cohort
    rec.sent(rec.slot(at[0.1]))
    rec.accepted(rec.slot(at[0.1]), 2_300_000_000, ["late"], 1, at[2.4], 202)  # after the window
    rec.sent(rec.slot(at[0.5]))
    rec.rejected(rec.slot(at[0.5]), 503, at[1.2])
    rec.sent(rec.slot(at[1.2]))
    rec.transport_error(rec.slot(at[1.2]), TimeoutError(), at[2.9])
    rec.sent(rec.slot(at[1.2]))
    rec.cut_off(rec.slot(at[1.2]))
    merged = merge_results([rec.finish(0, 0, None)], duration_s=2.0)

    by_second = {row["second"]: row for row in merged.series}
    assert [row["phase"] for row in merged.series] == ["warmup", "measure", "measure", "drain"]
    assert by_second[0]["ok"] == 1 and by_second[-1]["ok"] == 0  # completed in second 0
    assert by_second[2]["ok"] == 1 and by_second[2]["transport_errors"] == 1
    assert by_second[1]["server_errors"] == 1
    assert by_second[0]["sent"] == 2 and by_second[1]["sent"] == 2 and by_second[2]["sent"] == 0
    assert merged.totals["ok"] == 1  # only the warm-up request's answer landed in the window
    assert merged.totals["sent"] == 4
    assert merged.status_counts == {"503": 1}
    assert merged.cohort == {"completed_in_window": 1, "completed_after_window": 2,
                             "in_flight_at_end": 1}
    assert sum(merged.cohort.values()) == merged.totals["sent"]
    assert {(e["second"], e["status"]) for e in merged.errors} == {(1, "503"), (2, "transport")}
    # Latency stays with the key second, answers after the window included.
    assert merged.window.get_total_count() == 1
    assert merged.slot_hists[0].get_max_value() >= 2_300_000
    assert merged.drain_s == pytest.approx(0.9)


def test_availability_gap_ends_with_the_first_answer_to_a_request_sent_after_the_fault(
        tmp_path: Path) -> None:
    """An answer still in flight when the fault struck says nothing about availability."""
    origin = 0
    rec = Recorder(origin, warmup_s=0.0, duration_s=10.0, drain_limit_s=1.0)

    def at(s: float) -> int:
        return int(s * NS_PER_S)

    for sent, done, status in ((4.9, 5.2, 200), (5.5, 8.0, 200), (9.0, 9.1, 200)):
        rec.sent(rec.slot(at(sent)))
        rec.accepted(rec.slot(at(sent)), at(done) - at(sent), [f"id-{sent}"], 1, at(done), status)
    rec.sent(rec.slot(at(5.1)))
    rec.rejected(rec.slot(at(5.1)), 503, at(5.3))
    (tmp_path / "acks.part").touch()
    result = rec.finish(0, 0, tmp_path / "acks.part")
    merged = merge_results([result], duration_s=10.0)
    collect_acks(RunDir(tmp_path), [result])

    section = availability(merged, [[5.0, 7.0]], tmp_path / "acks.csv", duration_s=10.0)
    assert section["first_ok_after_fault_s"] == 8.0
    assert section["unavailable_s"] == 3.0
    assert section["errors_during_fault"] == {"503": 1}
    assert section["ok_during_fault"] == 1  # the in-flight answer completed at 5.2
