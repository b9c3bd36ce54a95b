"""What is accepted reaches Kafka exactly as sent: `data` byte for byte, or a clear 4xx.

The corpus (experiments/fidelity.py) holds legal-but-awkward `data` and illegal text a
lax parser would let through. Each kind is sent, as the client's own bytes, on every
ingest route, in both modes and on both delivery bridges, and read back from the real
topic; the pure tests check the fast path against the authorities (orjson and the
pydantic model) on a seeded mutation corpus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from experiments.fidelity import KEPT, REFUSED, body_of, check, stored
from experiments.kafka import read_topic
from service.errors import IngestError, MalformedJson, ValidationFailed
from service.events import (
    MAX_REPORTED_ERRORS,
    Event,
    parse_event,
    parse_json_batch,
    parse_ndjson_batch,
    record_value,
    to_records,
)
from tests.service.harness import make_settings, run_service, topic_size, wait_ready

SCHEMA = orjson.loads((Path(__file__).resolve().parents[2] / "service" / "record.schema.json").read_bytes())

# -- pure: the parser and the record ------------------------------------------------------
@pytest.mark.parametrize("name", KEPT)
def test_the_record_carries_data_byte_for_byte(name: str) -> None:
    event = parse_event(body_of(KEPT[name]))
    record = stored(record_value("id-1", event, "2026-01-01T00:00:00.000000+00:00"))
    assert bytes(record.data) == KEPT[name]
    assert (record.event_id, record.client_id, record.name) == ("id-1", "fidelity", "awkward")
    batch = parse_json_batch(b"[" + body_of(KEPT[name]) + b"," + body_of(b"{}") + b"]", 10)
    assert [bytes(stored(r.value).data) for r in to_records(batch, "t")] == [KEPT[name], b"{}"]
    lines = parse_ndjson_batch(body_of(KEPT[name]) + b"\r\n\n" + body_of(b"{}"), 10)
    assert [bytes(stored(r.value).data) for r in to_records(lines, "t")] == [KEPT[name], b"{}"]


def test_json_routes_keep_line_feeds() -> None:
    data = b'{\n  "a": 1,\n  "b": [\n    2\n  ]\n}'
    assert bytes(stored(record_value("i", parse_event(body_of(data)), "t")).data) == data
    (record,) = to_records(parse_json_batch(b"[\n" + body_of(data) + b"\n]", 10), "t")
    assert bytes(stored(record.value).data) == data


def test_the_record_is_json_whose_names_are_the_senders() -> None:
    event = parse_event(body_of(b'{"k": "v"}', client_id=b'"caf\\u00e9 \\"q\\""'))
    value = orjson.loads(record_value("id-1", event, "t"))
    assert value == {"event_id": "id-1", "client_id": 'café "q"', "name": "awkward",
                     "data": {"k": "v"}, "received_at": "t"}
    assert list(value) == ["event_id", "client_id", "name", "data", "received_at"]


@pytest.mark.parametrize("name", REFUSED)
def test_text_that_is_not_strict_json_is_400_on_every_parser(name: str) -> None:
    bad = body_of(REFUSED[name])
    for parse, body in ((parse_event, bad),
                        (lambda b: parse_json_batch(b, 10), b"[" + bad + b"]"),
                        (lambda b: parse_ndjson_batch(b, 10), body_of(b"{}") + b"\n" + bad)):
        with pytest.raises(MalformedJson):
            parse(body)


def _mutations(seed: int, count: int) -> Iterator[bytes]:
    """Bodies one to three byte edits away from legal events: most are illegal JSON, some
    legal with another schema, some still valid events."""
    seeds = [body_of(KEPT["escaped text"][:-1] + b', "n": [1, -2.5e10, true, null, {}]}'),
             body_of(KEPT["raw non-ASCII text"], client_id=b'"\\u00e9"'),
             body_of(b'{"id": 123456789012345678901234567890, "x": 1e-400}')]
    alphabet = b'{}[]",:0123456789.eE+-\\u tfnrl\x00\x7f\xc3\xa9\xff\xed\xa0\x80/ \t\r\n'
    rnd = random.Random(seed)
    for _ in range(count):
        body = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(body))
            edit = rnd.random()
            if edit < 0.4:
                del body[pos]
            elif edit < 0.8:
                body[pos:pos] = bytes([rnd.choice(alphabet)])
            else:
                body[pos] = rnd.choice(alphabet)
        yield bytes(body)


def _authorities(body: bytes) -> tuple[str, Any]:
    """What orjson and the model say of `body`: ok (with the decoded event), 'beyond
    double' (legal JSON holding a number a double cannot hold), or the status class."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return ("beyond double" if "infinity" in str(exc) else "400"), None
    try:
        Event.model_validate(obj)
    except Exception:
        return "422", obj
    return "ok", obj


def test_the_fast_path_accepts_only_what_the_authorities_accept() -> None:
    """On 30,000 near-miss bodies: every event the fast path accepts is legal and valid,
    and its record's data is the body's data, equal in value; every refusal has the
    authorities' status; only numbers beyond a double's range are newly carried."""
    seen: dict[tuple[str, str], int] = {}
    for body in _mutations(seed=17, count=30_000):
        verdict, obj = _authorities(body)
        try:
            event = parse_event(body)
            outcome = "ok"
        except IngestError as exc:
            outcome = str(exc.status)
        seen[verdict, outcome] = seen.get((verdict, outcome), 0) + 1
        if outcome == "ok":
            assert verdict in ("ok", "beyond double"), body
            data = bytes(stored(record_value("i", event, "t")).data)
            assert data in body
            if verdict == "ok":
                assert orjson.loads(data) == obj["data"], body
        elif verdict == "422":
            assert outcome == "422", body
        elif verdict == "400":
            assert outcome == "400", body
        else:
            assert outcome in ("400", "422"), body  # a schema error beside a huge number
    # The corpus exercises every branch (a mutation generator that broke would pass above).
    assert {("ok", "ok"), ("400", "400"), ("422", "422"), ("beyond double", "ok")} <= set(seen)


# -- bounded refusals -------------------------------------------------------------------
def test_a_hopeless_batch_gets_a_short_refusal() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_json_batch(b"[" + b",".join([b"{}"] * 10_000) + b"]", 10_000)
    fields = info.value.fields
    assert len(fields["errors"]) == MAX_REPORTED_ERRORS
    assert fields["errors_truncated"] is True
    assert fields["invalid_indexes"] == list(range(34))  # three errors each, up to the 100th
    assert len(orjson.dumps(info.value.body())) < 20_000


def test_an_event_with_many_unknown_keys_gets_a_short_refusal_with_the_total() -> None:
    extra = {f"key-{i}": 1 for i in range(95_000)}
    with pytest.raises(ValidationFailed) as info:
        parse_event(orjson.dumps({"client_id": "c", "name": "n", "data": {}, **extra}))
    fields = info.value.fields
    assert len(fields["errors"]) == MAX_REPORTED_ERRORS
    assert fields["error_count"] == 95_000
    assert {e["type"] for e in fields["errors"]} == {"extra_forbidden"}
    assert len(orjson.dumps(info.value.body())) < 20_000


def test_a_long_field_name_is_cut_in_the_refusal() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(orjson.dumps({"client_id": "c", "name": "n", "data": {}, "k" * 100_000: 1}))
    (error,) = info.value.fields["errors"]
    assert error["type"] == "extra_forbidden"
    assert len(error["field"]) < 100


# -- real service, real topic -----------------------------------------------------------
ROUTES = ("/", "/v1/events", "/v1/events/batch", "/v1/events/batch ndjson")


@pytest.fixture(scope="module", params=[("durable", "loop"), ("fire-and-forget", "loop"),
                                        ("durable", "thread"), ("fire-and-forget", "thread")],
                ids=lambda p: "-".join(p))
def service(request: pytest.FixtureRequest, bootstrap: str) -> Iterator[Any]:
    mode, bridge = request.param
    settings = make_settings(bootstrap, mode=mode, delivery_bridge=bridge)
    with run_service(settings) as running:
        with running.client() as c:
            wait_ready(c)
        yield running


def _post(client: Any, route: str, bodies: list[bytes]) -> tuple[int, list[str]]:
    """Send `bodies` on `route` as the client's own bytes; the status and the event ids."""
    if route in ("/", "/v1/events"):
        ids, statuses = [], set()
        for body in bodies:
            r = client.post(route, content=body, headers={"content-type": "application/json"})
            statuses.add(r.status_code)
            if r.status_code < 300:
                ids.append(r.text if route == "/" else r.json()["event_id"])
        return max(statuses), ids
    if route.endswith("ndjson"):
        r = client.post("/v1/events/batch", content=b"\n".join(bodies),
                        headers={"content-type": "application/x-ndjson"})
    else:
        r = client.post("/v1/events/batch", content=b"[" + b",".join(bodies) + b"]",
                        headers={"content-type": "application/json"})
    return r.status_code, [e["event_id"] for e in r.json()["results"]] if r.status_code < 300 else []


def _stored_data(bootstrap: str, topic: str, ids: list[str]) -> dict[str, bytes]:
    """`data` of each stored record by key; every record checked against the schema."""
    found: dict[str, bytes] = {}
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for _ in range(100):
        for msg in read_topic(bootstrap, topic, timeout=20, fetch_wait_ms=10):
            record = stored(msg.value())
            # Python's json keeps big integers; its floats stand in for the schema's numbers.
            validator.validate(json.loads(msg.value()))
            assert list(json.loads(msg.value())) == ["event_id", "client_id", "name", "data",
                                                    "received_at"]
            assert msg.key().decode() == record.event_id
            found[record.event_id] = bytes(record.data)
        if set(ids) <= found.keys():
            break
    return found


@pytest.mark.kafka
@pytest.mark.parametrize("route", ROUTES)
def test_every_route_stores_data_as_sent(service: Any, bootstrap: str, route: str) -> None:
    names = list(KEPT)
    with service.client() as c:
        status, ids = _post(c, route, [body_of(KEPT[n]) for n in names])
    assert status in (200, 202)
    assert len(ids) == len(names)
    found = _stored_data(bootstrap, service.settings.topic, ids)
    assert {n: found.get(i) for n, i in zip(names, ids, strict=True)} == KEPT


@pytest.mark.kafka
@pytest.mark.parametrize("route", ROUTES)
def test_every_route_refuses_what_it_cannot_keep(service: Any, bootstrap: str, route: str) -> None:
    before = topic_size(bootstrap, service.settings.topic)
    with service.client() as c:
        for name, data in REFUSED.items():
            # A batch holds a good event beside the bad one: nothing of it is published.
            bodies = [body_of(data)] if route in ("/", "/v1/events") else [body_of(b"{}"), body_of(data)]
            status, ids = _post(c, route, bodies)
            assert (name, status, ids) == (name, 400, [])
    assert topic_size(bootstrap, service.settings.topic) == before


@pytest.mark.kafka
def test_the_corpus_check_reads_this_service_as_exact(service: Any, bootstrap: str) -> None:
    """The check `python -m experiments.native fidelity` runs against both implementations."""
    outcomes = check(service.url, bootstrap, service.settings.topic)
    assert {o.name: o.outcome for o in outcomes} == {
        **dict.fromkeys(KEPT, "kept"), **dict.fromkeys(REFUSED, "refused")}
