"""Access control: off by default; on, only a valid key publishes, and no key leaks anywhere.

The service runs as `python -m service` with debug logging and the access log on, so
"the key is not in the logs" is checked against everything the process wrote.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from experiments.kafka import read_topic, unique_topic
from experiments.service_proc import ServiceProcess
from service.app import create_app
from service.auth import KEY_ID_HEADER, AuthFailures, KeyRing, read_keys_file
from service.errors import ConfigError
from service.settings import Settings
from tests.service.harness import make_settings, run_service, topic_size

# At least 32 characters of at least 8 different ones (service.auth.check_key_strength).
ENV_KEY = "env-key-0123456789abcdefghijklmnop"
FILE_KEY = "file-key-fedcba9876543210zyxwvuts"
WRONG_KEY = "wrong-key-00000000000000000000000"
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
                        log_file=log_dir / "service.log", require_api_key=True,
                        api_keys={"loadgen": ENV_KEY}, env=env) as svc:
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
    ({"short": "0123456789"}, "shorter than"),
    ({"short": ENV_KEY[:31]}, "shorter than 32"),
    ({"repeated": "a" * 64}, "fewer than 8 different"),
    ({"patterned": "abcdefg" * 8}, "fewer than 8 different"),
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


# -- failures are visible ------------------------------------------------------------------
def _count(metrics: str, reason: str) -> float:
    found = re.search(rf'^ingest_auth_failures_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    return float(found[1]) if found else 0.0


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.auth"
            and r.getMessage() == "authentication failed"]


@pytest.fixture
def keyed(bootstrap: str) -> Iterator[Any]:
    """A service of this test's own: its failure log's rate limit starts full."""
    settings = make_settings(bootstrap, require_api_key=True, api_keys={"loadgen": ENV_KEY})
    with run_service(settings) as svc:
        yield svc


@pytest.mark.kafka
def test_failed_keys_are_counted_by_reason_and_logged_with_the_client_address(
        keyed: Any, seed_event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    sent = {"missing": [JSON], "malformed": [{**JSON, "authorization": f"Basic {ENV_KEY}"},
                                             {**JSON, "authorization": "Bearer"}],
            "unknown_key": [_bearer(WRONG_KEY)]}
    caplog.set_level(logging.WARNING, logger="service.auth")
    with keyed.client() as client:
        before = client.get("/metrics").text
        for headers in (h for hs in sent.values() for h in hs):
            assert client.post("/", content=orjson.dumps(seed_event), headers=headers).status_code == 401
        assert client.post("/", content=orjson.dumps(seed_event), headers=_bearer(ENV_KEY)).status_code == 200
        after = client.get("/metrics").text
    assert {r: _count(after, r) - _count(before, r) for r in sent} == {
        r: len(headers) for r, headers in sent.items()}
    lines = _failure_lines(caplog)
    assert sorted(r.reason for r in lines) == sorted(  # type: ignore[attr-defined]
        r for r, headers in sent.items() for _ in headers)
    for line in lines:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", line.client)  # type: ignore[attr-defined]
        assert line.path == "/"  # type: ignore[attr-defined]
    assert not any(secret in caplog.text for secret in SECRETS)


@pytest.mark.kafka
def test_the_failure_log_is_rate_limited_and_says_what_it_left_out(
        keyed: Any, seed_event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """A flood of bad keys costs a burst of lines and then one a second, not one per request;
    every failure is still counted, and each line says how many went unlogged before it."""
    caplog.set_level(logging.WARNING, logger="service.auth")
    flood = 3 * AuthFailures.BURST
    with keyed.client() as client:
        started = time.monotonic()
        for _ in range(flood):
            client.post("/", content=b"{}", headers=_bearer(WRONG_KEY))
        elapsed = time.monotonic() - started
        time.sleep(1.0 / AuthFailures.PER_SECOND + 0.2)  # a token is back: the next is logged
        client.post("/", content=b"{}", headers=_bearer(WRONG_KEY))
        metrics = client.get("/metrics").text
    lines = _failure_lines(caplog)
    assert _count(metrics, "unknown_key") == flood + 1
    assert len(lines) <= AuthFailures.BURST + elapsed * AuthFailures.PER_SECOND + 2
    # The last request was logged, so the lines account for every failure before it.
    assert sum(1 + r.not_logged_since_last for r in lines) == flood + 1  # type: ignore[attr-defined]
    assert lines[-1].not_logged_since_last > 0  # type: ignore[attr-defined]


# -- the operational routes ------------------------------------------------------------------
OPS_KEY = "ops-key-AbCdEfGhIjKlMnOpQrStUvWxYz0123"
OPS_PATHS = ("/readyz", "/metrics", "/docs", "/openapi.json")


@pytest.fixture(scope="module")
def ops_secured(bootstrap: str) -> Iterator[Any]:
    settings = make_settings(bootstrap, require_api_key=True, api_keys={"loadgen": ENV_KEY},
                             require_ops_key=True, ops_api_keys={"scraper": OPS_KEY})
    with run_service(settings) as svc:
        yield svc


@pytest.mark.kafka
def test_ops_routes_need_an_ops_key_and_an_ops_key_publishes_nothing(
        ops_secured: Any, seed_event: dict[str, Any]) -> None:
    with ops_secured.client() as client:
        for path in OPS_PATHS:
            answers = [client.get(path, headers=h).status_code
                       for h in ({}, _bearer(ENV_KEY), _bearer(WRONG_KEY), _bearer(OPS_KEY))]
            assert answers == [401, 401, 401, 200], path
        assert client.get("/healthz").status_code == 200  # liveness probes need no key
        event = orjson.dumps(seed_event)
        assert client.post("/", content=event, headers=_bearer(OPS_KEY)).status_code == 401
        assert client.post("/", content=event, headers=_bearer(ENV_KEY)).status_code == 200


@pytest.mark.kafka
def test_without_ops_keys_the_ingest_keys_open_the_ops_routes(bootstrap: str,
                                                               seed_event: dict[str, Any]) -> None:
    """Ingest open, operations closed: the configured (ingest) keys open /metrics and the rest."""
    settings = make_settings(bootstrap, api_keys={"loadgen": ENV_KEY}, require_ops_key=True)
    with run_service(settings) as svc, svc.client() as client:
        assert [client.get("/metrics", headers=h).status_code
                for h in ({}, _bearer(ENV_KEY))] == [401, 200]
        assert client.post("/", content=orjson.dumps(seed_event), headers=JSON).status_code == 200


@pytest.mark.parametrize(("settings", "problem"), [
    ({"require_ops_key": True}, "INGEST_REQUIRE_OPS_KEY is on but no key is configured"),
    ({"require_ops_key": True, "ops_api_keys": {"weak": "x" * 40}}, "fewer than 8 different"),
    ({"require_ops_key": True, "require_api_key": True, "api_keys": {"a": ENV_KEY},
      "ops_api_keys": {"b": ENV_KEY}}, r"ops keys \['b'\] are also ingest keys"),
    ({"require_api_key": True, "api_keys": {"short": "0123456789abcdef"}}, "shorter than 32"),
])
def test_ops_key_misconfiguration_stops_the_start(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        create_app(Settings(create_topic=False, **settings))
    assert ENV_KEY not in str(raised.value)


@pytest.mark.kafka
def test_the_docs_can_be_switched_off(bootstrap: str) -> None:
    with run_service(make_settings(bootstrap, docs=False)) as svc, svc.client() as client:
        assert [client.get(p).status_code for p in
                ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")] == [404] * 4
        assert client.get("/healthz").status_code == 200


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
