"""A network against a cluster the suite did not start is refused before anything starts,
with the reason. Needs a broker (the session's), not the proxy: nothing gets that far."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from experiments.errors import LabError
from experiments.kafka import BOOTSTRAP_ENV
from experiments.params import RunParams

pytestmark = pytest.mark.kafka


def proxy_processes() -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if any("toxiproxy-server" in part for part in (p.info["cmdline"] or [])[:1])}


@pytest.mark.parametrize("named_by", ["bootstrap", BOOTSTRAP_ENV])
def test_a_network_on_an_existing_cluster_is_refused_before_anything_starts(
        named_by: str, bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.experiment import run_experiment

    home = tmp_path / "home"
    monkeypatch.setenv("LAB_KAFKA_HOME", str(home))
    out = tmp_path / "run"
    before = proxy_processes()
    with pytest.raises(LabError, match=r"existing cluster.*use network: loopback") as refused:
        if named_by == BOOTSTRAP_ENV:
            monkeypatch.setenv(BOOTSTRAP_ENV, bootstrap)
            run_experiment(RunParams(network="cross-zone", output_dir=str(out)))
        else:
            monkeypatch.delenv(BOOTSTRAP_ENV, raising=False)
            run_experiment(RunParams(network="cross-zone", bootstrap=bootstrap,
                                     output_dir=str(out)))
    assert bootstrap in str(refused.value)
    # Nothing started: no run directory, no local cluster, no proxy.
    assert not out.exists()
    assert not (home / "run" / "state.json").exists()
    assert proxy_processes() == before
