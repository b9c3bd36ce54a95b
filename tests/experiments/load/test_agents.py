"""Load from several hosts: generator agents as separate processes on this machine.

Each agent is its own process on its own loopback port, as it would be on its own host;
what differs between hosts (their clocks) is measured by the same code either way.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from experiments.histograms import decode_histogram, merge_histograms
from experiments.load import LoadSpec, apply_load
from experiments.load.agentclient import (
    AgentClient,
    AgentError,
    LocalAgent,
    estimate_offset,
    new_token,
    start_local_agents,
)
from experiments.load.remote import LoadHosts, LoadHostsError, host_workers, parse_addresses, spread
from experiments.params import ParamsError, RunParams

from .server_client import TestServer

TOKEN = new_token()


# -- pure logic -------------------------------------------------------------------------------

def test_the_clock_offset_comes_from_the_shortest_round_trip() -> None:
    # (sent, agent clock, received): the agent is 1000 ns ahead; the slow round trip lies.
    samples = [(0, 9_000, 4_000), (10_000, 11_100, 10_200), (20_000, 30_000, 26_000)]
    offset = estimate_offset(samples)
    assert offset.offset_ns == 1_000
    assert offset.uncertainty_ns == 100
    assert offset.rounds == 3


def test_hosts_take_consecutive_workers_of_one_global_load() -> None:
    spec = LoadSpec(model="open", rate=900.0, connections=12, workers=2)
    whole = spread(spec, 3)
    assert whole.workers == 6
    assert [host_workers(h, 2) for h in range(3)] == [[0, 1], [2, 3], [4, 5]]
    # Every host's workers together take a third of the rate and of the connections.
    for host in range(3):
        shares = [whole.share(i) for i in host_workers(host, 2)]
        assert sum(s.rate or 0 for s in shares) == pytest.approx(300.0)
        assert sum(s.connections for s in shares) == 4


@pytest.mark.parametrize("hosts", ["nohost", "a:0", "a:x", "a:1,a:1", ":7070"])
def test_bad_load_hosts_are_refused(hosts: str) -> None:
    with pytest.raises(LoadHostsError):
        parse_addresses(hosts)


def test_load_hosts_need_their_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAB_AGENT_TOKEN_TEST", raising=False)
    assert LoadHosts.from_setting("") is None
    with pytest.raises(LoadHostsError, match="LAB_AGENT_TOKEN_TEST"):
        LoadHosts.from_setting("127.0.0.1:7070", "LAB_AGENT_TOKEN_TEST")
    monkeypatch.setenv("LAB_AGENT_TOKEN_TEST", "s3cret-s3cret-s3cret")
    hosts = LoadHosts.from_setting("127.0.0.1:7070", "LAB_AGENT_TOKEN_TEST")
    assert hosts is not None and "s3cret" not in repr(hosts)


def test_remote_load_hosts_need_a_deployed_target() -> None:
    with pytest.raises(ParamsError, match="target_url"):
        RunParams(load_hosts="10.0.0.5:7070")
    assert RunParams(load_hosts="127.0.0.1:7070,127.0.0.1:7071").load_hosts


# -- agents in their own processes ------------------------------------------------------------

@pytest.fixture(scope="module")
def agents() -> Iterator[list[LocalAgent]]:
    with start_local_agents(2, TOKEN) as started:
        yield started


def hosts_of(agents: list[LocalAgent]) -> LoadHosts:
    return LoadHosts(tuple(a.address for a in agents), TOKEN)


def read_acks(run_dir: Path) -> list[list[str]]:
    with (run_dir / "acks.csv").open() as src:
        return list(csv.reader(src))[1:]


@pytest.mark.slow
def test_two_agents_offer_one_generators_load_and_merge_exactly(
        agents: list[LocalAgent], fast_server: TestServer, tmp_path: Path) -> None:
    # Two hosts of one worker each against one generator of two workers: the same global load.
    spec = LoadSpec(url=fast_server.url, model="open", rate=600.0, connections=8, workers=1,
                    duration_s=1.5, warmup_s=0.5)
    summary = apply_load(spec, tmp_path / "agents", hosts=hosts_of(agents))
    agents_count = fast_server.stats()
    fast_server.reset()
    single = apply_load(replace(spec, workers=2), tmp_path / "single")

    results, section = summary["results"], summary["load_hosts"]
    # The schedule is the same slots either way: offered is exact, not statistical.
    assert results["offered"] == single["results"]["offered"] == 900
    assert results["sent_including_warmup"] == agents_count["count"]
    assert results["unfinished"] == 0
    # The merged histogram is the sum of the hosts' workers', bucket by bucket.
    run_dir = tmp_path / "agents"
    parts = [decode_histogram((run_dir / "histograms" / f"worker-{i}.hdr").read_text()) for i in (0, 1)]
    merged = decode_histogram((run_dir / "latency.hdr").read_text())
    assert merged.encode() == merge_histograms(parts).encode()
    assert merged.get_total_count() == results["latency_count"] == results["sent"]
    # Per host: its workers, its share of the cohort, and the whole is their sum.
    assert [h["workers"] for h in section["hosts"]] == [[0], [1]]
    assert [h["state"] for h in section["hosts"]] == ["done", "done"]
    assert sum(h["offered"] for h in section["hosts"]) == results["offered"]
    assert sum(h["sent"] for h in section["hosts"]) == results["sent"]
    assert all(h["clock_uncertainty_ms"] is not None and h["start_margin_ms"] > 0 for h in section["hosts"])
    assert section["schedule_error_bound_ms"] >= 0 and section["lost"] == []
    # The audit's input holds every host's acknowledged ids, each once.
    ids = [row[0] for row in read_acks(run_dir)]
    assert sorted(ids) == sorted(agents_count["issued"])
    assert results["acknowledged_ids"] == len(ids) == len(set(ids))
    # The token is in no result file.
    assert not [p for p in run_dir.rglob("*") if p.is_file() and TOKEN in p.read_text(errors="ignore")]


@pytest.mark.slow
def test_closed_loop_connections_are_split_across_agents(
        agents: list[LocalAgent], fast_server: TestServer, tmp_path: Path) -> None:
    spec = LoadSpec(url=fast_server.url, model="closed", connections=6, workers=1,
                    duration_s=1.0, warmup_s=0.2)
    summary = apply_load(spec, tmp_path, hosts=hosts_of(agents))
    results = summary["results"]
    assert results["sent_including_warmup"] == fast_server.stats()["count"] > 0
    assert results["sent"] == results["completed_in_window"] + results["completed_after_window"]
    assert all(h["sent"] > 0 for h in summary["load_hosts"]["hosts"])


@pytest.mark.slow
def test_a_wrong_token_is_refused_before_anything_starts(agents: list[LocalAgent], tmp_path: Path) -> None:
    spec = LoadSpec(url="http://127.0.0.1:9", duration_s=1.0, warmup_s=0.0)
    with pytest.raises(AgentError, match="refused the token") as caught:
        apply_load(spec, tmp_path, hosts=LoadHosts(hosts_of(agents).addresses, "not-the-token-at-all"))
    assert caught.value.kind == "token"
    assert AgentClient(agents[0].address, TOKEN).hello()["busy"] is None


@pytest.mark.slow
def test_a_controller_of_another_version_is_refused(agents: list[LocalAgent]) -> None:
    client = AgentClient(agents[0].address, TOKEN, version="0/old/000000000000")
    with pytest.raises(AgentError, match="same checkout") as caught:
        client.hello()
    assert caught.value.kind == "version"
    assert "0/old/000000000000" in str(caught.value)


@pytest.mark.slow
def test_an_agent_holds_one_run_and_refuses_a_remote_target(agents: list[LocalAgent], tmp_path: Path) -> None:
    client = AgentClient(agents[0].address, TOKEN)
    remote = LoadSpec(url="http://192.0.2.10:8000", workers=1).__dict__
    with pytest.raises(AgentError, match="loopback") as refused:
        client.prepare("r-remote", remote, [0], record_acks=False)
    assert refused.value.kind == "refused"
    local = LoadSpec(url="http://127.0.0.1:9", workers=1, duration_s=1.0).__dict__
    client.prepare("r-held", local, [0], record_acks=False)
    try:
        with pytest.raises(AgentError, match="busy") as busy:
            apply_load(LoadSpec(url="http://127.0.0.1:9", duration_s=1.0), tmp_path,
                       hosts=hosts_of(agents))
        assert busy.value.kind == "busy"
    finally:
        client.release("r-held")
    assert client.hello()["busy"] is None


@pytest.mark.slow
def test_an_agent_killed_mid_run_is_a_recorded_fault(fast_server: TestServer, tmp_path: Path) -> None:
    with start_local_agents(2, TOKEN) as fresh:
        victim = fresh[1]
        killed = threading.Event()

        def kill_when_running() -> None:
            client = AgentClient(victim.address, TOKEN)
            while not killed.is_set():
                run_id = client.hello()["busy"]
                if run_id and client.status(run_id)["state"] == "running":
                    os.killpg(victim.pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_running, daemon=True)
        killer.start()
        spec = LoadSpec(url=fast_server.url, model="open", rate=200.0, connections=4, workers=1,
                        duration_s=2.0, warmup_s=0.5)
        summary = apply_load(spec, tmp_path, hosts=hosts_of(fresh))
        killer.join(timeout=5)

    assert killed.is_set()
    section = summary["load_hosts"]
    assert [h["state"] for h in section["hosts"]] == ["done", "lost"]
    (lost,) = section["lost"]
    assert lost["address"] == victim.address
    assert "no answer" in lost["reason"] and isinstance(lost["last_seen_s"], float)
    # The run ended with what it had: the surviving host's workers, merged and audited.
    assert [w["worker"] for w in summary["results"]["workers"]] == [0]
    assert summary["results"]["acknowledged_ids"] == len(read_acks(tmp_path)) > 0
    assert json.loads((tmp_path / "summary.json").read_text())["load_hosts"]["lost"] == section["lost"]
