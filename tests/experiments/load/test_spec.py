"""Spec validation, payloads, answer parsing, the bound rule and the CLI's argument mapping."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from experiments.load import GENERATOR_BOUND_RULE, LoadSpec, LoadSpecError, cli, generator_bound
from experiments.load.client import parse_batch, parse_single, parse_text
from experiments.load.payloads import body_pool


def test_defaults_are_valid_and_paths_follow_the_contract() -> None:
    paths = {e: LoadSpec(endpoint=e).validate().path for e in ("seed", "single", "batch", "noop")}
    assert paths == {"seed": "/", "single": "/v1/events", "batch": "/v1/events/batch",
                     "noop": "/_bench/noop"}
    assert LoadSpec(url="http://127.0.0.1:8000/").target == "http://127.0.0.1:8000/"


@pytest.mark.parametrize(("change", "field"), [
    ({"endpoint": "bogus"}, "endpoint"),
    ({"model": "poisson"}, "model"),
    ({"connections": 0}, "connections"),
    ({"model": "open", "rate": 0}, "rate"),
    ({"duration_s": 0}, "duration_s"),
    ({"workers": 3, "connections": 2}, "workers"),
    ({"url": "http://10.1.2.3:8000"}, "url"),
    ({"url": "ftp://127.0.0.1"}, "url"),
    ({"body_file": "/nonexistent/body.json"}, "body_file"),
    ({"engine": "curl"}, "engine"),
    ({"url": "http://"}, "url"),
    ({"url": "127.0.0.1:8000"}, "url"),
    ({"url": "http://127.0.0.1:"}, "url"),
    ({"url": "http://127.0.0.1:port"}, "url"),
    ({"url": "http://127.0.0.1:70000"}, "url"),
])
def test_invalid_specs_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(LoadSpecError) as caught:
        LoadSpec(**change).validate()
    assert caught.value.field == field


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://example.org:8000",
                                 "http://[2001:db8::1]:8000", "http://0.0.0.0:8000"])
def test_remote_targets_need_an_explicit_opt_in(url: str) -> None:
    with pytest.raises(LoadSpecError, match="not a loopback address"):
        LoadSpec(url=url).validate()
    LoadSpec(url=url, allow_remote=True).validate()  # the opt-in lets it through


@pytest.mark.parametrize("url", ["http://localhost:8000", "http://127.0.0.1:8000",
                                 "http://127.9.9.9:8000", "http://[::1]:8000"])
def test_loopback_targets_need_no_opt_in(url: str) -> None:
    LoadSpec(url=url).validate()


def test_shares_add_up_to_the_whole_load() -> None:
    spec = LoadSpec(connections=50, workers=3, rate=900.0, model="open")
    shares = [spec.share(i) for i in range(3)]
    assert [s.connections for s in shares] == [17, 17, 16]
    assert sum(s.rate for s in shares) == pytest.approx(900.0)


def test_payloads_are_seeded_and_shaped() -> None:
    spec = LoadSpec(data_fields=3, field_size=40, seed=5)
    pool = body_pool(spec, 0)
    assert pool == body_pool(spec, 0)
    assert pool != body_pool(spec, 1)
    assert pool != body_pool(LoadSpec(data_fields=3, field_size=40, seed=6), 0)
    event = orjson.loads(pool[0])
    assert set(event) == {"client_id", "name", "data"}
    assert len(event["data"]) == 3
    assert all(len(v) == 40 for v in event["data"].values())


def test_batch_payloads_hold_batch_size_events() -> None:
    pool = body_pool(LoadSpec(endpoint="batch", batch_size=25), 0)
    batch = orjson.loads(pool[0])
    assert isinstance(batch, list) and len(batch) == 25


def test_body_file_is_sent_as_is(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"client_id": "x", "name": "n", "data": {"k": "v"}}')
    spec = LoadSpec(body_file=str(body)).validate()
    assert body_pool(spec, 0) == body_pool(spec, 3) == [body.read_bytes()]
    assert spec.events_per_request is None


def test_answers_are_parsed_tolerantly() -> None:
    assert parse_text(b"6f1c0e4e-0000-4000-8000-000000000000\n") == (
        ["6f1c0e4e-0000-4000-8000-000000000000"], 1)
    assert parse_text(b"") == ([], 1)
    assert parse_single(b'{"event_id": "a", "partition": 0}') == (["a"], 1)
    assert parse_single(b"not json") == ([], 1)
    answer = {"results": [{"event_id": "a"}, {"event_id": "b", "error": "queue full"},
                          {"event_id": "c", "status": 503}, {"event_id": "d", "status": 200},
                          "junk", {"no_id": 1}]}
    assert parse_batch(orjson.dumps(answer)) == (["a", "d"], 2)
    assert parse_batch(orjson.dumps([{"event_id": "x"}])) == (["x"], 1)
    assert parse_batch(b"{}") == ([], 0)


def test_generator_bound_rule() -> None:
    bound, reasons = generator_bound(800, 1000, 20.0, 1)
    assert bound is True and len(reasons) == 1 and "ceiling" in reasons[0]
    assert generator_bound(799, 1000, 20.0, 1)[0] is False
    assert generator_bound(700, None, 90.0, 1)[0] is True
    assert generator_bound(700, None, 95.0, 2)[0] is False  # 2 workers may use 200%
    assert len(generator_bound(900, 1000, 190.0, 2)[1]) == 2
    assert generator_bound(700, None, None, 1) == (False, [])
    assert "80%" in GENERATOR_BOUND_RULE and "90%" in GENERATOR_BOUND_RULE


def test_cli_maps_arguments_onto_the_spec(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    calls: list[dict] = []

    def fake_run_load(spec: LoadSpec, out_dir: Path, pids: dict | None = None,
                      ceiling_rps: float | None = None) -> dict:
        calls.append({"spec": spec, "out": out_dir, "pids": pids, "ceiling": ceiling_rps})
        return {"results": dict.fromkeys(["sent", "throughput_rps", "events_per_s",
                                          "error_rate", "late", "latency_ms", "cpu_percent",
                                          "generator_bound", "overloaded", "unfinished"])}

    monkeypatch.setattr(cli, "apply_load", fake_run_load)
    code = cli.main(["--url", "http://127.0.0.1:8123", "--endpoint", "batch", "--model", "open",
                     "--rate", "250", "--connections", "8", "--duration", "3", "--warmup", "1",
                     "--batch-size", "5", "--data-fields", "2", "--field-size", "9",
                     "--workers", "2", "--seed", "11", "--timeout", "4", "--drain-limit", "2",
                     "--engine", "raw",
                     "--service-pid", "123", "--ceiling", "5000", "--out", str(tmp_path / "x")])
    assert code == 0
    [call] = calls
    assert call["spec"] == LoadSpec(url="http://127.0.0.1:8123", endpoint="batch", model="open",
                                    rate=250.0, connections=8, duration_s=3.0, warmup_s=1.0,
                                    batch_size=5, data_fields=2, field_size=9, workers=2,
                                    seed=11, timeout_s=4.0, drain_limit_s=2.0, engine="raw")
    assert call["pids"] == {"service": 123}
    assert call["ceiling"] == 5000.0
    assert call["out"] == tmp_path / "x"


def test_cli_refuses_a_bad_spec_without_running(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    assert cli.main(["--url", "http://192.0.2.1", "--out", str(tmp_path / "y")]) == 2
    assert "loopback" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_the_ceiling_is_measured_with_the_runs_engine() -> None:
    from experiments.load.ceiling import ceiling_spec

    run = LoadSpec(url="http://127.0.0.1:9000", model="open", engine="raw", connections=30,
                   workers=2, endpoint="single")
    ceiling = ceiling_spec(spec=run)
    assert (ceiling.engine, ceiling.connections, ceiling.workers, ceiling.endpoint) == (
        "raw", 30, 2, "single")
    assert ceiling.model == "closed"
    assert ceiling_spec(spec=run, engine="aiohttp").engine == "aiohttp"
