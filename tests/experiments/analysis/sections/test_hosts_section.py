"""The Load hosts section: a row per run and host, the schedule's error and lost hosts said."""

from __future__ import annotations

from typing import Any

from experiments.analysis.runs import Runs
from experiments.analysis.sections import hosts


def host(address: str, workers: list[int], state: str = "done", fault: dict | None = None) -> dict[str, Any]:
    return {"address": address, "workers": workers, "state": state, "fault": fault,
            "clock_offset_ms": 0.05, "clock_uncertainty_ms": 0.2, "start_margin_ms": 990.0,
            "sent": 1000 if state == "done" else None, "throughput_rps": 500.0 if state == "done" else None,
            "latency_ms": {"p50": 1.2, "p99": 8.0} if state == "done" else None,
            "cpu_percent": {"agent": 0.4, "generator": 12.0, "machine": 80.0}}


def summary(hosts_: list[dict[str, Any]], skew: float = 0.01) -> dict[str, Any]:
    lost = [{"address": h["address"], **h["fault"]} for h in hosts_ if h["fault"]]
    return {"load_hosts": {"hosts": hosts_, "schedule_error_bound_ms": 0.2, "clock_skew_ms": skew,
                           "lost": lost}}


def test_one_row_per_run_and_host_with_lost_hosts_named() -> None:
    gone = {"reason": "no answer", "last_seen_s": 3.2}
    raw = {
        "001-two-t1": summary([host("127.0.0.1:7071", [0]), host("127.0.0.1:7072", [1])]),
        "002-two-t2": summary([host("127.0.0.1:7071", [0]),
                               host("127.0.0.1:7072", [1], "lost", gone)],
                              skew=0.3),
        "003-one-t1": {"results": {}},  # a run on this machine alone has no row
    }
    frame = hosts.hosts_frame(raw)
    assert list(frame["run"]) == ["001-two-t1", "001-two-t1", "002-two-t2", "002-two-t2"]
    assert frame.iloc[3]["state"] == "lost (last seen 3.2 s)"
    assert frame.iloc[0]["p99"] == "8.00 ms" and frame.iloc[3]["p99"] == "n/a"
    text = hosts.takeaway(raw)
    assert "2 host(s)" in text and "up to 0.3 ms" in text
    assert "127.0.0.1:7072 in 002-two-t2" in text


def test_no_section_without_load_hosts(runs: Runs) -> None:
    assert hosts.render(runs) == []
