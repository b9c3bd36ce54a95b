"""The network section on synthetic summaries: both modes x acks x round trip {loopback, 5,
20 ms} in the closed loop, a leader kill per mode at 5 and 20 ms; nothing on plans without
a proxied run."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import Runs, load_runs
from experiments.analysis.blocks import Chart, Table, Takeaway, Text
from experiments.analysis.sections import network
from experiments.rundir import SCHEMA, SUMMARY

CONNECTIONS = 50
# (mode, acks, asked round trip) -> (events/s, p50 ms, p99 ms); loopback is 0.
RESULTS = {
    ("durable", "all", 0): (4000.0, 11.0, 30.0),
    ("durable", "1", 0): (4100.0, 10.5, 29.0),
    ("durable", "all", 5): (3500.0, 14.0, 35.0),
    ("durable", "1", 5): (3900.0, 12.5, 31.0),
    ("durable", "all", 20): (1100.0, 45.0, 80.0),
    ("durable", "1", 20): (2300.0, 21.5, 50.0),
    ("fire-and-forget", "all", 0): (8000.0, 5.0, 12.0),
    ("fire-and-forget", "1", 0): (8100.0, 5.0, 12.0),
    ("fire-and-forget", "all", 5): (7900.0, 5.2, 13.0),
    ("fire-and-forget", "1", 5): (7950.0, 5.1, 12.5),
    ("fire-and-forget", "all", 20): (7800.0, 5.5, 14.0),
    ("fire-and-forget", "1", 20): (7900.0, 5.3, 13.5),
}
# What the calibration measured per asked round trip: client, replication.
MEASURED = {5: (5.3, 5.2), 20: (20.4, 20.3)}


def network_section(rtt: int, missed: bool = False) -> dict[str, Any]:
    if not rtt:
        return {"profile": "loopback", "proxied": False, "asked": {"client": {"rtt_ms": 0, "jitter_ms": 0},
                "broker": {"rtt_ms": 0, "jitter_ms": 0}}, "measured_rtt_ms": None, "links": [],
                "missed": False}
    client, replication = MEASURED[rtt]
    return {"profile": f"{rtt}ms", "proxied": True,
            "asked": {"client": {"rtt_ms": rtt, "jitter_ms": 0}, "broker": {"rtt_ms": rtt, "jitter_ms": 0}},
            "measured_rtt_ms": {"client": client, "replication": replication, "controller": replication},
            "links": [], "missed": missed, "miss_reasons": ["node 1 client: off"] if missed else []}


def write_run(plan: Path, name: str, mode: str, acks: str, rtt: int, *, fault: str = "none",
              lost: int = 0, acknowledged: int = 100_000, missed: bool = False,
              with_network: bool = True, trial: int = 1, scale: float = 1.0) -> None:
    events, p50, p99 = (scale * v for v in RESULTS[(mode, acks, rtt)])
    producer = {"acks": acks} if acks == "all" else {"acks": acks, "enable.idempotence": False}
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "run": {"plan": "network", "cell": name, "trial": trial},
        "params": {"mode": mode, "endpoint": "seed", "load_model": "closed", "connections": CONNECTIONS,
                   "rate": 250.0, "network": f"{rtt}ms" if rtt else "loopback", "producer_config": producer,
                   "cluster_size": 3, "fault": fault, "trial": trial},
        "service": {"mode": mode, "producer_config": {"acks": acks}},
        "results": {"events_per_s": events, "throughput_rps": events, "ok": int(events * 20),
                    "events_accepted": int(events * 20), "duration_s": 20.0,
                    "latency_ms": {"p50": p50, "p99": p99}},
        "audit": {"acknowledged": acknowledged, "present": acknowledged - lost, "lost": lost},
    }
    if with_network:
        summary["network"] = network_section(rtt, missed)
    if fault != "none":
        summary["faults"] = {"kind": fault, "injected": True}
        summary["availability"] = {"unavailable_s": 12.0 if mode == "durable" else 0.01}
    (plan / name).mkdir(parents=True)
    (plan / name / SUMMARY).write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan = tmp_path_factory.mktemp("network")
    cell = 0
    for (mode, acks, rtt) in RESULTS:
        cell += 1
        write_run(plan, f"{cell:03d}-{mode}-acks{acks}-{rtt}ms-t1", mode, acks, rtt,
                  missed=(mode, acks, rtt) == ("durable", "1", 5))
    for mode, lost in (("durable", 0), ("fire-and-forget", 40)):
        for rtt, scale in ((5, 1), (20, 3)):
            cell += 1
            write_run(plan, f"{cell:03d}-{mode}-kill-{rtt}ms-t1", mode, "all", rtt, fault="broker-kill",
                      lost=lost * scale, acknowledged=50_000)
    return plan


@pytest.fixture(scope="module")
def network_runs(plan: Path) -> Runs:
    return load_runs(plan)


def test_the_model_is_the_loopback_ceiling_or_connections_over_the_round_trips_waited(
        network_runs: Runs) -> None:
    assert network.waits_ms("durable", "all", 20.4, 20.3) == pytest.approx(40.7)
    assert network.waits_ms("durable", "1", 20.4, 20.3) == 20.4
    assert network.waits_ms("fire-and-forget", "all", 20.4, 20.3) == 0.0
    points = network.points(network.network_runs(network_runs)).set_index(["mode", "acks", "network"])
    model = points["model_events_per_s"]
    assert model["durable", "all", "20ms"] == pytest.approx(CONNECTIONS * 1000 / 40.7)
    assert model["durable", "1", "20ms"] == pytest.approx(CONNECTIONS * 1000 / 20.4)
    assert model["durable", "all", "5ms"] == 4000.0  # 50 / 10.5 ms is above loopback: the service limits
    assert model["durable", "all", "loopback"] == 4000.0
    assert model["fire-and-forget", "all", "20ms"] == 8000.0  # waits for no round trip: flat
    assert points.loc[("durable", "all", "20ms"), "client_rtt_ms"] == 20.4
    assert points.loc[("durable", "all", "loopback"), "client_rtt_ms"] == 0.0
    # The fault runs are not points of the curves.
    assert len(points) == len(RESULTS)


def test_the_section_renders_its_figure_tables_and_sentences(network_runs: Runs) -> None:
    blocks = network.render(network_runs)
    kinds = [type(b) for b in blocks]
    assert kinds == [Chart, Table, Takeaway, Takeaway, Text, Table, Takeaway, Text, Table, Takeaway]
    chart = blocks[0]
    assert isinstance(chart, Chart) and chart.figure is not None
    buffer = io.BytesIO()
    chart.figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    assert chart.figure.get_suptitle()
    table = blocks[1]
    assert isinstance(table, Table)
    rows = table.frame.set_index(["mode, acks", "network asked"])
    far = rows.loc[("durable, acks=all", "20 ms")]
    assert far["measured round trip, client / replication"] == "20.4 ms / 20.3 ms"
    assert (far["events/s"], far["model events/s"], far["of the model"]) == ("1,100", "1,229", "90%")
    assert rows.loc[("durable, acks=1", "5 ms"), "mark"] == "calibration missed in 1 of 1"
    loopback = rows.loc[("durable, acks=all", "loopback")]
    assert loopback["measured round trip, client / replication"] == "loopback"


def test_the_takeaways_say_where_the_network_takes_over(network_runs: Runs) -> None:
    frame = network.network_runs(network_runs)
    text = network.model_takeaway(frame)
    assert text.startswith("Closed loop: durable, acks=all: 1,100 events/s at 20.4 ms, events/s -73% (too "
                           "few trials for an interval) against loopback's 4,000; the model's bound meets "
                           "loopback's throughput at 6.25 ms per link")
    assert ("durable, acks=1: 2,300 events/s at 20.4 ms, events/s -44% (too few trials for an interval) "
            "against loopback's 4,100") in text
    assert ("fire-and-forget, acks=all: 7,800 events/s at 20.4 ms, events/s -3% (too few trials for an "
            "interval) against loopback's 8,000 (its answer waits for no round trip)") in text
    calibration = network.calibration_takeaway(frame)
    assert "asked 5 ms client / 5 ms broker: measured 5.30 ms client, 5.20 ms replication" in calibration
    assert calibration.endswith("1 of 12 proxied runs missed it (004-durable-acks1-5ms-t1).")


def test_what_acks_all_costs_per_round_trip(network_runs: Runs) -> None:
    frame = network.network_runs(network_runs)
    acks = network.acks_table(frame).set_index(["mode", "network"])
    far = acks.loc[("durable", "20 ms")]
    assert far["p50 added"] == "+23.5 ms"
    assert far["p50 added, in replication round trips"] == f"{23.5 / 20.3:.1f}"
    assert far["events/s change"] == "-52% (too few trials for an interval)"
    assert far["verdict"] == "cannot tell: one trial"
    assert acks.loc[("durable", "loopback"), "p50 added, in replication round trips"] == "n/a"
    assert network.acks_takeaway(frame).startswith(
        "acks=all against acks=1: durable (closed loop, 50 connections): on loopback: events/s -2% (too few "
        "trials for an interval); p50 +5% (too few trials for an interval) (+0.5 ms), at 5.30 ms: events/s "
        "-10% (too few trials for an interval); p50 +12% (too few trials for an interval) (+1.50 ms), "
        "at 20.4 ms: events/s -52% (too few trials for an interval); p50 +109% (too few trials for an "
        "interval) (+23.5 ms)")


def test_a_round_trip_effect_is_told_from_the_trials_spread(tmp_path: Path) -> None:
    # Three trials per configuration, 2% apart: durable's acks=all really costs 52% of its
    # events/s at 20 ms, fire-and-forget's 1% does not stand out of the spread.
    for trial, scale in ((1, 0.98), (2, 1.0), (3, 1.02)):
        for mode in ("durable", "fire-and-forget"):
            for acks in ("all", "1"):
                for rtt in (0, 20):
                    write_run(tmp_path, f"{mode}-{acks}-{rtt}-t{trial}", mode, acks, rtt, trial=trial,
                              scale=scale if acks == "all" else 2 - scale)
    frame = network.network_runs(load_runs(tmp_path))
    said = network.acks_takeaway(frame)
    durable, fire_and_forget = said.split("; fire-and-forget")
    far = durable.split("at 20.4 ms: ")[1]
    assert far.startswith("events/s -52% (95% CI ") and ", worse;" in far
    far = fire_and_forget.split("at 20.4 ms: ")[1]
    assert far.startswith("events/s -1% (95% CI ") and "no difference" in far.split(";")[0]
    table = network.acks_table(frame).set_index(["mode", "network"])
    assert table.loc[("durable", "20 ms"), "verdict"] == "worse"
    assert table.loc[("fire-and-forget", "20 ms"), "verdict"].startswith("no difference")
    model = network.model_takeaway(frame)
    assert "durable, acks=all: 1,100 events/s at 20.4 ms, events/s -73% (95% CI " in model
    assert "worse against loopback's 4,000" in model


def test_fire_and_forget_loss_under_the_kill_as_the_round_trip_grows(network_runs: Runs) -> None:
    frame = network.network_runs(network_runs)
    faults = network.fault_table(frame)
    assert list(faults["mode, acks"]) == ["durable, acks=all"] * 2 + ["fire-and-forget, acks=all"] * 2
    assert list(faults["measured client round trip"]) == ["5.30 ms", "20.4 ms"] * 2
    assert list(faults["acknowledged and lost (median, max)"])[2:] == ["40, 40", "120, 120"]
    assert network.fault_takeaway(frame) == (
        "durable under broker-kill: 12.0 s without an answer, 0 of 50,000 acknowledged lost at 5.30 ms; "
        "12.0 s without an answer, 0 of 50,000 acknowledged lost at 20.4 ms; fire-and-forget under "
        "broker-kill: 40 of 50,000 acknowledged lost (0.08%) at 5.30 ms; 120 of 50,000 acknowledged "
        "lost (0.24%) at 20.4 ms.")


def test_nothing_without_a_proxied_run(tmp_path: Path, runs: Runs, fault_runs: Runs) -> None:
    assert network.render(runs) == [] and network.render(fault_runs) == []  # summaries before networks
    write_run(tmp_path, "001-loopback-t1", "durable", "all", 0)
    write_run(tmp_path, "002-loopback-t1", "fire-and-forget", "all", 0)
    write_run(tmp_path, "003-external-t1", "durable", "1", 0, with_network=False)
    assert network.render(load_runs(tmp_path)) == []


def test_a_proxied_plan_without_loopback_has_no_ceiling(tmp_path: Path) -> None:
    write_run(tmp_path, "001-t1", "durable", "all", 20)
    write_run(tmp_path, "002-t1", "durable", "all", 5)
    frame = network.network_runs(load_runs(tmp_path))
    model = network.points(frame).set_index("network")["model_events_per_s"]
    assert model["5ms"] == pytest.approx(CONNECTIONS * 1000 / 10.5)
    assert network.model_takeaway(frame) == (
        "Closed loop: durable, acks=all: 1,100 events/s at 20.4 ms (model 1,229).")
    assert network.acks_table(frame).empty and network.fault_table(frame).empty
    assert not math.isnan(model["20ms"])
