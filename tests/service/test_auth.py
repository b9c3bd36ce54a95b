"""Access control: off by default; on, only a valid key publishes, and no key leaks anywhere.

The service runs as `python -m service` with debug logging and the access log on, so
"the key is not in the logs" is checked against everything the process wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from experiments.kafka import read_topic, unique_topic
from experiments.service_proc import ServiceProcess
from service.app import create_app
from service.auth import KEY_ID_HEADER, KeyRing, read_keys_file
from service.errors import ConfigError
from service.settings import Settings
from tests.service.harness import make_settings, run_service, topic_size

ENV_KEY = "env-key-0123456789abcdef-ghijklmnopqrstuv"
FILE_KEY = "file-key-fedcba9876543210-vutsrqponmlkjihg"
WRONG_KEY = "wrong-key-0000000000000000-1111111111111111"
SECRETS = (ENV_KEY, FILE_KEY, WRONG_KEY)
JSON = {"content-type": "application/json"}


def _bearer(key: str) -> dict[str, str]:
    return {**JSON, "authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def secured(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    log_dir = tmp_path_factory.mktemp("auth")
    keys_file = log_dir / "keys"
    keys_file.write_text(f"# id:key\nops-client:{FILE_KEY}\n")
    topic = unique_topic("auth")
    env = {"INGEST_API_KEYS_FILE": str(keys_file),
           "INGEST_LOG_LEVEL": "DEBUG", "INGEST_ACCESS_LOG": "true"}
    with ServiceProcess(mode="durable", bootstrap=bootstrap, topic=topic,
                        log_file=log_dir / "service.log", require_api_key=True, api_keys={"loadgen": ENV_KEY},
                        env=env) as svc:
        yield svc, topic


def _headers_by_key(bootstrap: str, topic: str) -> dict[str, dict[str, bytes]]:
    return {msg.key().decode(): dict(msg.headers() or [])
            for msg in read_topic(bootstrap, topic, fetch_wait_ms=10)}


@pytest.mark.kafka
@pytest.mark.parametrize(("headers", "challenge"), [
    (JSON, 'Bearer realm="ingest"'),
    (_bearer(WRONG_KEY), 'Bearer realm="ingest", error="invalid_token"'),
    ({**JSON, "authorization": f"Basic {ENV_KEY}"}, 'Bearer realm="ingest", error="invalid_token"'),
    ({**JSON, "authorization": f"Bearer {ENV_KEY[:-1]}"},
     'Bearer realm="ingest", error="invalid_token"'),
])
@pytest.mark.parametrize("route", ["/", "/v1/events", "/v1/events/batch"])
def test_without_a_valid_key_401_and_nothing_published(secured: tuple[Any, str],
                                                        bootstrap: str, route: str,
                                                        headers: dict[str, str],
                                                        challenge: str,
                                                        seed_event: dict[str, Any]) -> None:
    svc, topic = secured
    body = [seed_event] if route.endswith("batch") else seed_event
    before = topic_size(bootstrap, topic)
    response = httpx.post(svc.url + route, content=orjson.dumps(body), headers=headers,
                          timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.json()["error"] == "unauthorized"
    assert not any(secret in response.text for secret in SECRETS)
    assert topic_size(bootstrap, topic) == before


@pytest.mark.kafka
def test_a_valid_key_publishes_with_its_id_as_a_kafka_header(secured: tuple[Any, str],
                                                             bootstrap: str,
                                                             seed_event: dict[str, Any]) -> None:
    svc, topic = secured
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        single = client.post("/", content=orjson.dumps(seed_event), headers=_bearer(ENV_KEY))
        batch = client.post("/v1/events/batch", content=orjson.dumps([seed_event] * 2),
                            headers=_bearer(FILE_KEY))
        # Operational routes stay open.
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics")
    assert (single.status_code, batch.status_code, metrics.status_code) == (200, 200, 200)
    found = _headers_by_key(bootstrap, topic)
    assert found[single.text] == {KEY_ID_HEADER: b"loadgen"}
    for result in batch.json()["results"]:
        assert found[result["event_id"]] == {KEY_ID_HEADER: b"ops-client"}
    # No key, valid or not, in a metrics label or value.
    assert not any(secret in metrics.text for secret in SECRETS)


@pytest.mark.kafka
def test_keys_never_reach_the_logs(secured: tuple[Any, str], seed_event: dict[str, Any]) -> None:
    svc, _ = secured
    for key in SECRETS:  # a valid, a file and a wrong key, each on an ingest route
        httpx.post(svc.url + "/", content=orjson.dumps(seed_event), headers=_bearer(key),
                   timeout=30)
    log_text = svc.log_file.read_text()
    assert '"uvicorn.access"' in log_text  # the access log was on
    assert not any(secret in log_text for secret in SECRETS)


@pytest.mark.kafka
def test_access_control_is_off_by_default(bootstrap: str, seed_event: dict[str, Any]) -> None:
    settings = make_settings(bootstrap)
    assert settings.require_api_key is False
    with run_service(settings) as svc, svc.client() as client:
        response = client.post("/", content=orjson.dumps(seed_event), headers=JSON)
    assert response.status_code == 200
    assert _headers_by_key(bootstrap, settings.topic)[response.text] == {}


def test_keys_are_masked_where_settings_are_logged() -> None:
    settings = Settings(require_api_key=True, api_keys={"loadgen": ENV_KEY})
    assert ENV_KEY not in orjson.dumps(settings.public()).decode()
    assert ENV_KEY not in repr(settings)


@pytest.mark.parametrize(("keys", "problem"), [
    ({}, "no key is configured"),
    ({"short": "0123456789abcdefghijklmnopqrstu"}, "shorter than 32"),  # 31 characters
    ({"weak": "a" * 40}, "fewer than 8 different characters"),
    ({"weak": "abcabcabcabcabcabcabcabcabcabcabcabc"}, "fewer than 8 different characters"),
    ({"bad id!": ENV_KEY}, "must match"),
])
def test_bad_key_configuration_stops_the_start_without_echoing_keys(
        keys: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        KeyRing(keys)
    assert not any(key in str(raised.value) for key in keys.values())


def test_key_file_format(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# comment\n\n a : {ENV_KEY} \nb:{FILE_KEY}\n")
    assert read_keys_file(path) == {"a": ENV_KEY, "b": FILE_KEY}
    path.write_text("no separator here\n")
    with pytest.raises(ConfigError, match="expected 'id:key'"):
        read_keys_file(path)


def test_each_key_maps_to_its_id_and_nothing_else_does() -> None:
    ring = KeyRing({"a": ENV_KEY, "b": FILE_KEY})
    assert (ring.identify(ENV_KEY.encode()), ring.identify(FILE_KEY.encode())) == ("a", "b")
    for other in (b"", WRONG_KEY.encode(), ENV_KEY.encode() + b"x", ENV_KEY.upper().encode()):
        assert ring.identify(other) is None


def test_a_bad_keys_file_stops_the_service_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        create_app(Settings(require_api_key=True, api_keys_file=tmp_path / "missing"))


def _failures(metrics: str) -> dict[str, float]:
    found = {}
    for line in metrics.splitlines():
        if line.startswith("ingest_auth_failures_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.mark.kafka
def test_refused_keys_are_counted_by_reason_and_logged_with_the_client(
        bootstrap: str, tmp_path: Path, seed_event: dict[str, Any]) -> None:
    """Three reasons, each refused three times within the log interval: three counts each,
    one log line each (with the client's address), and the keys never in either."""
    with ServiceProcess("durable", bootstrap, unique_topic("auth"), tmp_path / "svc.log",
                        require_api_key=True, api_keys={"loadgen": ENV_KEY},
                        auth_failure_log_interval_s=60) as svc, \
            httpx.Client(base_url=svc.url, timeout=30) as client:
        for headers in (JSON, {**JSON, "authorization": f"Basic {ENV_KEY}"}, _bearer(WRONG_KEY)):
            for _ in range(3):
                assert client.post("/", content=orjson.dumps(seed_event), headers=headers).status_code == 401
        metrics = client.get("/metrics").text
    assert _failures(metrics) == {"missing": 3.0, "malformed": 3.0, "unknown": 3.0}
    lines = [entry for entry in svc.logs() if entry.get("msg") == "API key refused"]
    assert sorted(line["reason"] for line in lines) == ["malformed", "missing", "unknown"]
    assert all(line["client"].startswith("127.0.0.1:") for line in lines)
    assert not any(secret in svc.log_file.read_text() for secret in SECRETS)


@pytest.mark.kafka
def test_operational_routes_can_require_a_key_too(bootstrap: str, tmp_path: Path) -> None:
    with ServiceProcess("durable", bootstrap, unique_topic("auth"), tmp_path / "svc.log",
                        require_api_key=True, api_keys={"loadgen": ENV_KEY},
                        protect_ops_routes=True) as svc, \
            httpx.Client(base_url=svc.url, timeout=30) as client:
        closed = {path: client.get(path).status_code
                  for path in ("/readyz", "/metrics", "/docs", "/openapi.json")}
        opened = {path: client.get(path, headers=_bearer(ENV_KEY)).status_code
                  for path in ("/readyz", "/metrics", "/docs", "/openapi.json")}
        assert client.get("/healthz").status_code == 200  # liveness probes need no key
    assert closed == dict.fromkeys(closed, 401)
    assert opened == dict.fromkeys(opened, 200)


@pytest.mark.kafka
@pytest.mark.parametrize("hot_path", [True, False])
def test_keys_guard_the_routes_whichever_path_serves_them(bootstrap: str, hot_path: bool,
                                                          seed_event: dict[str, Any]) -> None:
    settings = make_settings(bootstrap, hot_path=hot_path, require_api_key=True,
                             api_keys={"loadgen": ENV_KEY})
    with run_service(settings) as svc, svc.client() as client:
        before = topic_size(bootstrap, settings.topic)
        refused = client.post("/v1/events", content=orjson.dumps(seed_event), headers=JSON)
        assert topic_size(bootstrap, settings.topic) == before
        allowed = client.post("/v1/events", content=orjson.dumps(seed_event), headers=_bearer(ENV_KEY))
    assert (refused.status_code, allowed.status_code) == (401, 200)
    assert _headers_by_key(bootstrap, settings.topic)[allowed.json()["event_id"]] == {
        KEY_ID_HEADER: b"loadgen"}
