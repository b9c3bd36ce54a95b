"""Settings from the environment and the effective producer config (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.errors import ConfigError
from service.modes import MODE_DEFAULTS, ProducerMode
from service.producer_config import admin_config, effective_config, masked, weaker_than_mode
from service.settings import Settings, environment


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("INGEST_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = Settings()
    assert s.mode is ProducerMode.DURABLE
    assert s.topic == "events.main"
    assert s.max_body_bytes == 1024 * 1024
    assert s.create_topic is True
    assert s.topic_partitions == 1
    assert s.bench_endpoints is False
    assert s.delivery_bridge == "loop"


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MODE", "fire-and-forget")
    monkeypatch.setenv("INGEST_TOPIC", "t.x")
    monkeypatch.setenv("INGEST_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("INGEST_MAX_BATCH_EVENTS", "7")
    monkeypatch.setenv("INGEST_MAX_IN_FLIGHT", "9")
    monkeypatch.setenv("INGEST_SHUTDOWN_FLUSH_S", "1.5")
    monkeypatch.setenv("INGEST_BENCH_ENDPOINTS", "true")
    monkeypatch.setenv("INGEST_DELIVERY_BRIDGE", "loop")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    monkeypatch.setenv("INGEST_PRODUCER_CONFIG", '{"linger.ms": 20, "compression.type": "lz4"}')
    s = Settings()
    assert s.mode is ProducerMode.FIRE_AND_FORGET
    assert (s.topic, s.max_body_bytes, s.max_batch_events, s.max_in_flight) == ("t.x", 2048, 7, 9)
    assert s.shutdown_flush_s == 1.5
    assert s.bench_endpoints is True
    assert s.delivery_bridge == "loop"
    assert s.bootstrap_servers == "127.0.0.1:1234"
    assert s.producer_config == {"linger.ms": 20, "compression.type": "lz4"}


def test_prefixed_bootstrap_variable_is_not_the_project_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_BOOTSTRAP_SERVERS", "127.0.0.9:9")
    assert Settings().bootstrap_servers == "127.0.0.1:9092"


@pytest.mark.parametrize("bad", [
    {"mode": "sometimes"}, {"max_body_bytes": 0}, {"topic": "bad topic"},
    {"max_batch_events": 10, "max_in_flight": 5}, {"port": 70000},
])
def test_unsafe_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_precedence_mode_defaults_then_file_then_json(tmp_path: Path) -> None:
    file = tmp_path / "producer.yaml"
    file.write_text("linger.ms: 50\ncompression.type: zstd\nacks: 1\n")
    s = Settings(bootstrap_servers="b:1", producer_config_file=file,
                 producer_config={"linger.ms": 7})
    config = effective_config(s)
    assert config["linger.ms"] == 7
    assert config["compression.type"] == "zstd"
    assert config["acks"] == 1
    assert config["enable.idempotence"] is True
    assert config["bootstrap.servers"] == "b:1"
    assert config["message.timeout.ms"] == MODE_DEFAULTS[ProducerMode.DURABLE]["message.timeout.ms"]


def test_both_modes_write_with_acks_all_and_idempotence() -> None:
    for mode in ProducerMode:
        assert MODE_DEFAULTS[mode]["acks"] == "all"
        assert MODE_DEFAULTS[mode]["enable.idempotence"] is True
        assert not weaker_than_mode(mode, dict(MODE_DEFAULTS[mode]))


def test_weakening_durable_is_reported() -> None:
    warnings = weaker_than_mode(ProducerMode.DURABLE, {"acks": 1, "enable.idempotence": False})
    assert len(warnings) == 2
    assert weaker_than_mode(ProducerMode.FIRE_AND_FORGET, {"acks": 0}) == []


def test_fire_and_forget_outlives_a_failover_by_default_and_says_when_it_no_longer_does() -> None:
    durable = MODE_DEFAULTS[ProducerMode.DURABLE]["message.timeout.ms"]
    fire_and_forget = MODE_DEFAULTS[ProducerMode.FIRE_AND_FORGET]["message.timeout.ms"]
    # Durable bounds a waiting request; fire-and-forget's events were already acknowledged.
    assert (durable, fire_and_forget) == (10_000, 30_000)
    (warning,) = weaker_than_mode(ProducerMode.FIRE_AND_FORGET, {"message.timeout.ms": 10_000})
    assert "message.timeout.ms=10000" in warning and "lost" in warning
    assert weaker_than_mode(ProducerMode.FIRE_AND_FORGET, {"message.timeout.ms": 60_000}) == []
    assert weaker_than_mode(ProducerMode.DURABLE, {**MODE_DEFAULTS[ProducerMode.DURABLE],
                                                   "message.timeout.ms": 5_000}) == []


@pytest.mark.parametrize("text", ["- a\n- b\n", "a: [1, 2]\n", "a: {b: 1}\n", "{"])
def test_bad_config_files_are_config_errors(tmp_path: Path, text: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError):
        effective_config(Settings(producer_config_file=file))


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        effective_config(Settings(producer_config_file=tmp_path / "nope.yaml"))


def test_secrets_are_masked_and_admin_gets_connection_settings() -> None:
    config = {"sasl.password": "hunter2", "ssl.key.password": "k", "ssl.key.pem": "PEM",
              "sasl.oauthbearer.client.secret": "s", "sasl.username": "me",
              "security.protocol": "SASL_SSL", "linger.ms": 5, "bootstrap.servers": "b:1"}
    shown = masked(config)
    assert "hunter2" not in str(shown) and "PEM" not in str(shown)
    assert shown["sasl.password"] == "***" and shown["sasl.oauthbearer.client.secret"] == "***"
    # A user name is withheld too (on hosted Kafka it is an API key's id): only
    # allow-listed properties show their values (tests/service/test_producer_config.py).
    assert shown["sasl.username"] == "***" and shown["linger.ms"] == 5
    admin = admin_config({**config, "https.ca.location": "/ca.pem",
                          "enable.sasl.oauthbearer.unsecure.jwt": False})
    assert admin["sasl.password"] == "hunter2" and admin["security.protocol"] == "SASL_SSL"
    assert admin["https.ca.location"] == "/ca.pem"  # the token endpoint's TLS, too
    assert "enable.sasl.oauthbearer.unsecure.jwt" in admin
    assert "linger.ms" not in admin


def test_environment_gives_a_service_exactly_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"mode": "fire-and-forget", "bootstrap_servers": "b:9", "topic_partitions": 3,
              "producer_config": {"linger.ms": 20, "compression.type": "lz4"},
              "require_api_key": True, "api_keys": {"gen": "k" * 40}, "hot_path": False,
              "delivery_reports": "errors", "shed_delay_s": 0.25, "producer_config_file": None}
    env = environment(values)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "b:9" and env["INGEST_HOT_PATH"] == "false"
    assert "INGEST_PRODUCER_CONFIG_FILE" not in env  # None: the default
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    built = Settings()
    assert built.model_dump(include=set(values) - {"api_keys"}, mode="json") == {
        k: v for k, v in values.items() if k != "api_keys"}
    assert built.api_keys["gen"].get_secret_value() == "k" * 40
    with pytest.raises(ValueError, match="no_such"):
        environment({"no_such": 1})
