"""Targets the suite did not start: refused clearly when they cannot be driven."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import Producer

from experiments.experiment import run_experiment
from experiments.kafka import create_topic, read_topic, unique_topic
from experiments.kafka.broker import free_port
from experiments.params import ParamsError, RunParams
from experiments.service_proc import ServiceProcess
from experiments.target import ExternalTarget, TargetError


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ready", "mode": "durable"}' if self.path == "/readyz" else b"nope"
        self.send_response(200 if self.path == "/readyz" else 404)
        self.send_header("Server", "test-ingest/1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_external_target_records_its_identity_and_local_pid(http_server: str) -> None:
    section = ExternalTarget(http_server + "/").start()
    assert section["url"] == http_server and section["launched_by_suite"] is False
    assert section["impl"] == "external"
    assert section["identity"]["server"].startswith("test-ingest/1.0")
    assert section["identity"]["/readyz"] == {"status": 200, "body": {"status": "ready", "mode": "durable"}}
    assert isinstance(section["identity"]["pid"], int)  # this test process listens there


def test_a_target_that_refuses_connections_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TargetError, match="does not answer HTTP"):
        ExternalTarget(url, timeout_s=1.0).start()


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://127.0.0.1:21", "not an http://host"),
    ("127.0.0.1:8000", "not an http://host"),
    ("http://192.0.2.10:8000", "not a loopback address"),
    ("http://127.0.0.1:8000/v1/events", "base URL"),
])
def test_malformed_or_remote_target_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        ExternalTarget(url)


def test_a_remote_target_needs_allow_remote() -> None:
    assert ExternalTarget("http://192.0.2.10:8000", allow_remote=True).url == "http://192.0.2.10:8000"


@pytest.mark.kafka
def test_the_suite_drives_and_audits_a_service_it_did_not_start(kafka_bootstrap: str,
                                                                 tmp_path: Path) -> None:
    """A service someone else runs, on a topic that already held records: the run drives it
    by URL, starts and stops nothing, and audits only its own share of the topic."""
    topic = create_topic(kafka_bootstrap, unique_topic("external"))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(25):  # earlier traffic: neither acknowledged by this run nor lost by it
        producer.produce(topic, key=f"before-{i}", value=b"{}")
    assert producer.flush(10) == 0
    service = ServiceProcess(mode="durable", bootstrap=kafka_bootstrap, topic=topic,
                             log_file=tmp_path / "theirs.log")
    service.start()
    try:
        params = RunParams(target_url=service.url, topic=topic, kafka_bootstrap=kafka_bootstrap,
                           connections=4, duration_s=1.0, warmup_s=0.5,
                           output_dir=str(tmp_path / "run"))
        summary = run_experiment(params)
        assert service.proc is not None and service.proc.poll() is None  # still theirs, still up
    finally:
        service.stop()
    target = summary["target"]
    assert target["launched_by_suite"] is False and target["url"] == service.url
    assert target["identity"]["pid"] == service.pid
    assert target["identity"]["/readyz"]["status"] == 200
    assert summary["results"]["ok"] > 0
    audit = summary["audit"]
    assert audit["acknowledged"] == audit["present"] > 0 and audit["lost"] == 0
    assert audit["unacknowledged"] == 0  # the 25 earlier records are not this run's
    assert audit["start_offsets"] == {"0": 25}
    assert summary["results"]["cpu_percent"]["service"] is not None  # found by its port


@pytest.mark.kafka
def test_a_run_against_a_target_that_refuses_connections_fails_before_any_load(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    params = RunParams(target_url=f"http://127.0.0.1:{free_port()}", topic="lab.nobody",
                       kafka_bootstrap=kafka_bootstrap, output_dir=str(tmp_path / "run"))
    with pytest.raises(TargetError, match="does not answer HTTP"):
        run_experiment(params)
    assert not (tmp_path / "run" / "summary.json").exists()
    assert not (tmp_path / "run" / "series.csv").exists()


@pytest.mark.parametrize(("values", "message"), [
    ({"target_url": "http://127.0.0.1:8000"}, "name that topic"),
    ({"target_url": "http://10.1.2.3:8000", "topic": "t"}, "loopback"),
    ({"target_url": "http://127.0.0.1:8000", "topic": "t", "service_impl": "rust"}, "launches nothing"),
    ({"target_url": "http://127.0.0.1:8000", "topic": "t", "fault": "service-kill"}, "did not start"),
    ({"load_engine": "curl"}, "load_engine"),
])
def test_bad_target_parameters_are_refused_before_anything_starts(values: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        RunParams(**values)


@pytest.mark.kafka
def test_a_run_with_access_control_sends_a_key_the_service_requires_and_records_none(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "per-run-key-0123456789abcdefXYZ-32"  # the service refuses keys under 32 chars
    monkeypatch.setattr("experiments.experiment.secrets.token_urlsafe", lambda _: key)
    params = RunParams(access_control=True, mode="durable", kafka_bootstrap=kafka_bootstrap,
                       connections=4, duration_s=1.0, warmup_s=0.5, output_dir=str(tmp_path / "run"))
    summary = run_experiment(params)
    results = summary["results"]
    assert results["ok"] > 0 and results["client_errors"] == 0  # no 401: the key was sent
    assert summary["audit"]["acknowledged"] == summary["audit"]["present"] > 0
    # Each event names the key's id in a header; the key itself is in no result file.
    records = list(read_topic(kafka_bootstrap, summary["service"]["topic"]))
    assert records and all(dict(r.headers() or [])["ingest-key-id"] == b"loadgen" for r in records)
    assert summary["load"]["api_key"] == "(set, not recorded)"
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        assert key not in path.read_text(errors="replace"), path
