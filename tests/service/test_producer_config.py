"""No producer secret leaves the process: every property librdkafka documents is walked.

The list comes from librdkafka itself, the copy confluent-kafka loaded into this process
(`rd_kafka_conf_properties_show`, the function that writes librdkafka's CONFIGURATION.md),
so a property a later version adds is walked as soon as it is installed, and withheld
until someone puts it on the allow-list.
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import confluent_kafka
import httpx
import pytest
import yaml

from experiments.kafka import unique_topic
from experiments.service_proc import ServiceProcess
from service.errors import ConfigError
from service.producer_config import (
    SHOWN_PROPERTIES,
    WITHHELD,
    admin_config,
    effective_config,
    masked,
)
from service.settings import Settings

_PROPERTY_ROW = re.compile(r"^([A-Za-z][A-Za-z0-9._-]*)\s*\|")


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent-kafka uses (bundled in its wheel, or the system's)."""
    assert confluent_kafka.libversion()  # loaded, so it is in this process's map
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if "librdkafka" in Path(path).name:
            return ctypes.CDLL(path)
    raise AssertionError("librdkafka is not mapped into this process")


@cache
def librdkafka_properties() -> frozenset[str]:
    """Every global and topic property name librdkafka documents, from its own table."""
    lib = _librdkafka()
    libc = ctypes.CDLL(None)
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryFile() as out:
        stream = libc.fdopen(os.dup(out.fileno()), b"w")
        lib.rd_kafka_conf_properties_show(stream)
        libc.fclose(stream)
        out.seek(0)
        table = out.read().decode()
    names = {m.group(1) for line in table.splitlines() if (m := _PROPERTY_ROW.match(line))}
    names.discard("Property")  # the table's header row
    return frozenset(names)


def test_the_walk_sees_librdkafkas_whole_table() -> None:
    names = librdkafka_properties()
    # 2.x documents about 200; a parse that found a handful would make the walk vacuous.
    assert len(names) > 150
    assert {"sasl.password", "ssl.key.pem", "linger.ms", "compression.codec",
            "sasl.oauthbearer.assertion.private.key.passphrase"} <= names


def test_no_property_off_the_allow_list_is_ever_shown_with_its_value() -> None:
    shown = []
    for name in sorted(librdkafka_properties()):
        value = f"value-of-{name}"
        if masked({name: value}) != {name: WITHHELD} and name not in SHOWN_PROPERTIES:
            shown.append(name)
    assert shown == []
    everything = {name: f"value-of-{name}" for name in librdkafka_properties()}
    revealed = {k for k, v in masked(everything).items() if v != WITHHELD}
    assert revealed == SHOWN_PROPERTIES & librdkafka_properties()


def test_the_allow_list_names_only_properties_librdkafka_has() -> None:
    assert SHOWN_PROPERTIES - librdkafka_properties() == set()


# What a credential, or the way to one, is called in librdkafka's names. The allow-list
# is reviewed by hand; this catches the slip of adding one of these to it.
_CREDENTIAL_WORDS = ("password", "secret", "pem", ".key.", "location", "username", "url",
                     "token", "jaas", "keytab", "principal", "passphrase", "assertion",
                     "kinit", "extensions", "oauthbearer.config", "oauthbearer.client",
                     "oauthbearer.scope", "plugin", "keystore", "engine", "interceptor")


def test_the_allow_list_holds_nothing_named_like_a_credential() -> None:
    suspicious = sorted(n for n in SHOWN_PROPERTIES if any(w in n for w in _CREDENTIAL_WORDS))
    assert suspicious == []


def test_the_admin_client_gets_every_tls_sasl_and_https_property() -> None:
    """The topic is created by an AdminClient: without these it could not reach a cluster
    the producer reaches (OIDC's token endpoint needs `https.*`)."""
    prefixes = ("security.", "ssl.", "sasl.", "https.", "enable.ssl.", "enable.sasl.")
    wanted = {n for n in librdkafka_properties() if n.startswith(prefixes)}
    assert {"https.ca.location", "https.ca.pem", "sasl.oauthbearer.token.endpoint.url"} <= wanted
    config = {name: "v" for name in wanted} | {"bootstrap.servers": "b:1", "linger.ms": 5}
    admin = admin_config(config)
    assert wanted - admin.keys() == set()
    assert admin["bootstrap.servers"] == "b:1" and "linger.ms" not in admin


def test_a_malformed_config_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    """YAML's own message quotes the line it stopped at, here a password."""
    path = tmp_path / "producer.yaml"
    path.write_text("security.protocol: SASL_SSL\nsasl.password: hunter2-\"unclosed\n  : [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line") as raised:
        effective_config(Settings(producer_config_file=path))
    assert "hunter2" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# Values librdkafka accepts on a PLAINTEXT cluster (it ignores what the protocol does not
# use), so the service starts, serves /readyz and logs its config with all of them set.
SECRETS = {
    "sasl.username": "user-s3cr3t-1",
    "sasl.password": "pass-s3cr3t-2",
    "sasl.oauthbearer.assertion.private.key.passphrase": "phrase-s3cr3t-3",
    "sasl.oauthbearer.token.endpoint.url": "https://idp.example/s3cr3t-4",
    "sasl.oauthbearer.client.secret": "client-s3cr3t-5",
    "ssl.key.password": "key-s3cr3t-6",
}


@pytest.fixture(scope="module")
def with_secrets(bootstrap: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("secrets")
    config_file = tmp / "producer.yaml"
    config_file.write_text(yaml.safe_dump({**SECRETS, "linger.ms": 7}))
    with ServiceProcess(mode="durable", bootstrap=bootstrap, topic=unique_topic("secrets"),
                        log_file=tmp / "service.log",
                        env={"INGEST_PRODUCER_CONFIG_FILE": str(config_file),
                             "INGEST_LOG_LEVEL": "DEBUG"}) as svc:
        yield svc


@pytest.mark.kafka
def test_no_secret_in_readyz_or_any_log_line(with_secrets: ServiceProcess) -> None:
    response = httpx.get(with_secrets.url + "/readyz", timeout=30)
    assert response.status_code == 200
    shown = response.json()["producer_config"]
    assert shown["linger.ms"] == 7  # allowed values are still shown
    assert {name: shown[name] for name in SECRETS} == dict.fromkeys(SECRETS, WITHHELD)
    with_secrets.stop()  # the shutdown's lines too
    everything = response.text + with_secrets.log_file.read_text()
    assert '"producer_config"' in with_secrets.log_file.read_text()  # the start-up line
    leaked = [name for name, value in SECRETS.items() if value in everything]
    assert leaked == []
