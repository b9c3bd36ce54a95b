"""Both load engines against the counting servers: exact counts and ids at high rates,
answers that are not throughput, connections the server closes, timeouts, cut-offs, and
the raw engine's schedule above the aiohttp engine's ceiling."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import pytest
import uvloop

from experiments.load import LoadSpec, apply_load, measure_ceiling
from experiments.load.rawengine import WakeUp, build_requests

from .server_client import TestServer, skip_if_the_box_was_busy

pytestmark = pytest.mark.slow


def acked_ids(run_dir: Path) -> list[str]:
    with (run_dir / "acks.csv").open() as src:
        return [row["event_id"] for row in csv.DictReader(src)]


@pytest.mark.parametrize("model", ["closed", "open"])
def test_every_request_and_id_is_counted_at_high_load(fast_server: TestServer, tmp_path: Path,
                                                      engine: str, model: str) -> None:
    # A generous drain limit: a starved box may answer late, but nothing is cut off, so
    # every id the server issued reaches acks.csv.
    spec = LoadSpec(url=fast_server.url, engine=engine, model=model, rate=6000.0,
                    connections=64, workers=2, duration_s=1.0, warmup_s=0.5, drain_limit_s=60)
    results = apply_load(spec, tmp_path)["results"]
    stats = fast_server.stats()
    print(f"{engine} {model}: {stats['count']} requests, "
          f"{results['throughput_rps']} req/s in the window")
    assert results["in_flight_at_end"] == 0
    assert results["sent_including_warmup"] == stats["count"] > 100
    assert sorted(acked_ids(tmp_path)) == sorted(stats["issued"])
    assert results["transport_errors"] == results["server_errors"] == 0
    assert results["unfinished"] == 0


@pytest.mark.parametrize("status", [503, 404])
def test_non_2xx_answers_are_reported_and_never_throughput(fast_server: TestServer,
                                                           tmp_path: Path, engine: str,
                                                           status: int) -> None:
    fast_server.reset(status=status)
    spec = LoadSpec(url=fast_server.url, engine=engine, connections=4, duration_s=0.5,
                    warmup_s=0)
    results = apply_load(spec, tmp_path)["results"]
    errors = results["server_errors"] if status >= 500 else results["client_errors"]
    assert errors == fast_server.stats()["count"] > 0
    assert results["status_counts"] == {str(status): errors}
    assert results["ok"] == results["throughput_rps"] == results["events_per_s"] == 0
    assert results["latency_count"] == 0 and results["acknowledged_ids"] == 0


def test_unreachable_target_is_reported_by_kind(tmp_path: Path, engine: str) -> None:
    spec = LoadSpec(url="http://127.0.0.1:9", engine=engine, model="open", rate=200,
                    connections=2, duration_s=0.3, warmup_s=0)
    results = apply_load(spec, tmp_path)["results"]
    assert results["transport_errors"] == results["sent"] == 60
    assert results["status_counts"] == {"transport": 60}
    assert results["ok"] == results["throughput_rps"] == 0
    assert results["transport_error_kinds"]  # names what failed (refused, by the client's words)


def test_connections_the_server_closes_are_reopened(fast_server: TestServer, tmp_path: Path,
                                                    engine: str) -> None:
    fast_server.reset(close_every=3)
    spec = LoadSpec(url=fast_server.url, engine=engine, connections=4, duration_s=0.5,
                    warmup_s=0)
    results = apply_load(spec, tmp_path)["results"]
    stats = fast_server.stats()
    assert results["sent_including_warmup"] == stats["count"] > 30
    assert results["transport_errors"] == 0
    assert sorted(acked_ids(tmp_path)) == sorted(stats["issued"])


def test_answers_slower_than_the_timeout_are_transport_errors(server: TestServer,
                                                              tmp_path: Path,
                                                              engine: str) -> None:
    server.reset(stall_after_s=0, stall_ms=2500)
    spec = LoadSpec(url=server.url, engine=engine, connections=3, duration_s=0.6, warmup_s=0,
                    timeout_s=0.25, drain_limit_s=1.0)
    results = apply_load(spec, tmp_path)["results"]
    assert results["ok"] == 0
    assert results["transport_errors"] >= 3  # every connection timed out at least once
    assert all("Timeout" in kind for kind in results["transport_error_kinds"])


def test_closed_loop_cuts_off_what_the_drain_limit_leaves(server: TestServer, tmp_path: Path,
                                                          engine: str) -> None:
    server.reset(stall_after_s=0, stall_ms=3000)
    spec = LoadSpec(url=server.url, engine=engine, connections=5, duration_s=0.5, warmup_s=0,
                    timeout_s=10, drain_limit_s=0.5)
    results = apply_load(spec, tmp_path)["results"]
    assert results["sent"] == results["in_flight_at_end"] == results["unfinished"] == 5
    assert results["ok"] == results["transport_errors"] == 0


def test_raw_open_loop_holds_a_rate_above_the_aiohttp_engines_ceiling(
        fast_server: TestServer, tmp_path: Path) -> None:
    # Above the aiohttp engine's ceiling measured just before, in one process each, so the
    # claim holds on a busy box as on a quiet one (8,470 req/s on a quiet one, issue 10).
    aiohttp_ceiling = measure_ceiling(duration_s=1.5, warmup_s=0.5, engine="aiohttp")
    rate, duration = max(round(1.25 * aiohttp_ceiling, -2), 2000.0), 3.0
    spec = LoadSpec(url=fast_server.url, engine="raw", model="open", rate=rate,
                    connections=100, duration_s=duration, warmup_s=0.5)
    results = apply_load(spec, tmp_path)["results"]
    arrivals = sorted(fast_server.stats()["arrivals"])
    window = arrivals[-int(rate * duration):]
    server_rate = (len(window) - 1) / ((window[-1] - window[0]) / 1e9)
    print(f"aiohttp ceiling {aiohttp_ceiling:.0f}/s; raw asked {rate:.0f}/s; server saw "
          f"{server_rate:.1f}/s; late {results['late']}; lag {results['schedule_lag_ms']}")
    assert rate > aiohttp_ceiling
    assert results["sent"] == results["offered"] == int(rate * duration)
    skip_if_the_box_was_busy(results)
    slack = 0.02 + results["late_fraction"]
    assert results["unfinished"] == 0
    assert abs(server_rate - rate) / rate < slack
    assert abs(results["throughput_rps"] - rate) / rate < slack


def test_requests_are_prebuilt_complete_http() -> None:
    spec = LoadSpec(url="http://127.0.0.1:8123", endpoint="single")
    [request] = build_requests(spec, [b'{"a": 1}'])
    assert request == (b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:8123\r\n"
                       b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n"
                       b'{"a": 1}')


def test_wake_up_never_fires_before_its_time() -> None:
    async def fire_times() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        fired: list[int] = []
        done = loop.create_future()
        wake = WakeUp(loop, lambda: (fired.append(time.perf_counter_ns()), done.set_result(1)))
        pairs = []
        try:
            for delay_us in (50, 300, 700, 2000):
                done = loop.create_future()
                asked = time.perf_counter_ns() + delay_us * 1000
                wake.at(asked)
                await asyncio.wait_for(done, 5)
                pairs.append((asked, fired[-1]))
            # Re-arming replaces the earlier time: only the later one fires.
            done = loop.create_future()
            first = time.perf_counter_ns() + 1_000_000
            wake.at(first)
            later = time.perf_counter_ns() + 3_000_000
            wake.at(later)
            await asyncio.wait_for(done, 5)
            pairs.append((later, fired[-1]))
        finally:
            wake.close()
        assert len(fired) == 5
        return pairs

    for asked, fired in uvloop.run(fire_times()):
        assert fired >= asked
