"""No producer setting's value leaves the process unless it is on the allow-list: checked
against every property the bundled librdkafka documents."""

from __future__ import annotations

import ctypes
import os
import re
import tempfile
from pathlib import Path

import confluent_kafka
import pytest

from service.producer_config import SET_MARK, SHOWN, masked

SENTINEL = "do-not-show-7f3a"


def librdkafka_properties() -> list[str]:
    """Every configuration property of the librdkafka confluent-kafka ships, from its own
    table (rd_kafka_conf_properties_show, the source of its CONFIGURATION.md)."""
    libdir = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    found = sorted(libdir.glob("librdkafka*"))
    if not found:
        pytest.skip(f"no bundled librdkafka in {libdir} (a system build of confluent-kafka)")
    lib, libc = ctypes.CDLL(str(found[0])), ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "properties.md")
        handle = libc.fopen(path.encode(), b"w")
        lib.rd_kafka_conf_properties_show(handle)
        libc.fclose(handle)
        table = Path(path).read_text()
    return re.findall(r"^([a-z][a-z0-9._]+)\s+\|\s+[PC*]\s+\|", table, re.MULTILINE)


def test_no_property_off_the_allow_list_is_ever_shown() -> None:
    names = librdkafka_properties()
    assert len(names) > 150 and "sasl.oauthbearer.assertion.private.key.passphrase" in names
    shown = masked(dict.fromkeys(names, SENTINEL))
    leaked = sorted(k for k, v in shown.items() if v == SENTINEL and k not in SHOWN)
    assert leaked == []
    assert all(shown[k] == SET_MARK for k in names if k not in SHOWN)
    # And a property librdkafka does not know (a typo, a future one) is not shown either.
    assert masked({"sasl.future.secret.thing": SENTINEL}) == {"sasl.future.secret.thing": SET_MARK}


def test_the_allow_list_names_no_credential_or_identity() -> None:
    names = set(librdkafka_properties())
    assert names >= SHOWN, sorted(SHOWN - names)  # every entry is a real property
    risky = re.compile(r"pass|secret|key|token|cred|user|principal|keytab|jaas|pem|location|url|"
                       r"oauth|cert(?!ificate\.verification)|_cb|plugin|interceptor|opaque")
    assert sorted(n for n in SHOWN if risky.search(n)) == []


@pytest.mark.kafka
def test_no_secret_in_readyz_or_the_start_up_log(bootstrap: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from tests.service.harness import make_settings, run_service

    secrets = {"sasl.oauthbearer.assertion.private.key.passphrase": SENTINEL + "-1",
               "sasl.username": SENTINEL + "-2", "ssl.key.password": SENTINEL + "-3"}
    settings = make_settings(bootstrap, producer_config={**secrets, "linger.ms": 7})
    with caplog.at_level("INFO"), run_service(settings) as running, running.client() as c:
        ready = c.get("/readyz")
    assert ready.json()["producer_config"]["linger.ms"] == 7
    assert SENTINEL not in ready.text
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "producer_config" in logged and SENTINEL not in logged
