"""Event parsing and validation (pure logic, no Kafka)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from service.errors import MalformedJson, PayloadTooLarge, ValidationFailed
from service.events import (
    Envelope,
    Event,
    _check,
    check_sizes,
    new_event_ids,
    parse_event,
    parse_json_batch,
    parse_ndjson_batch,
    to_records,
)

GOOD = {"client_id": "c", "name": "n", "data": {"k": [1, 2, {"x": None}]}}


def as_dict(event: Envelope) -> dict[str, Any]:
    return {"client_id": event.client_id, "name": event.name, "data": orjson.loads(bytes(event.data))}


def envelope(obj: dict[str, Any]) -> Envelope:
    return parse_event(orjson.dumps(obj))


def test_valid_event_round_trips() -> None:
    assert as_dict(parse_event(orjson.dumps(GOOD))) == GOOD


@pytest.mark.parametrize("body", [b"", b"{", b"[1,", b"{'a': 1}", b"nul", b"\xff\xfe"])
def test_malformed_json_is_400(body: bytes) -> None:
    with pytest.raises(MalformedJson) as info:
        parse_event(body)
    assert info.value.status == 400


@pytest.mark.parametrize(("obj", "field", "kind"), [
    ({"name": "n", "data": {}}, "client_id", "missing"),
    ({"client_id": 5, "name": "n", "data": {}}, "client_id", "string_type"),
    ({"client_id": "", "name": "n", "data": {}}, "client_id", "string_too_short"),
    ({"client_id": "c", "name": "n" * 257, "data": {}}, "name", "string_too_long"),
    ({"client_id": "c", "name": "n", "data": [1]}, "data", "dict_type"),
    ({"client_id": "c", "name": "n", "data": {}, "extra": 1}, "extra", "extra_forbidden"),
])
def test_schema_violation_is_422_with_field_path(obj: dict[str, Any], field: str, kind: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(orjson.dumps(obj))
    assert info.value.status == 422
    errors = info.value.fields["errors"]
    assert {(e["field"], e["type"]) for e in errors} >= {(field, kind)}


def test_non_object_body_is_422_at_the_root() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_event(b"[1, 2]")
    assert info.value.fields["errors"][0]["field"] == "(body)"


@pytest.mark.parametrize("obj", [
    GOOD, {"client_id": "c", "name": "n", "data": {}}, {"client_id": "c", "name": "n"},
    {"client_id": 1, "name": "n", "data": {}}, {"client_id": "c", "name": "n", "data": {}, "x": 1},
    {"client_id": True, "name": "n", "data": {}}, {"client_id": "c" * 256, "name": "n", "data": {}},
    {"client_id": "c" * 257, "name": "n", "data": {}}, [], "s", None, 3,
])
def test_fast_path_agrees_with_the_model(obj: object) -> None:
    try:
        Event.model_validate(obj)
        model_ok = True
    except ValidationError:
        model_ok = False
    assert (_check(obj, None) == []) is model_ok


def test_json_batch_names_every_bad_index() -> None:
    batch = [GOOD, {"client_id": 1, "name": "n", "data": {}}, GOOD, {"name": "n", "data": {}}]
    with pytest.raises(ValidationFailed) as info:
        parse_json_batch(orjson.dumps(batch), 100)
    assert info.value.fields["invalid_indexes"] == [1, 3]
    assert {e["index"] for e in info.value.fields["errors"]} == {1, 3}


def test_json_batch_must_be_a_non_empty_array_within_the_count_limit() -> None:
    with pytest.raises(ValidationFailed):
        parse_json_batch(orjson.dumps(GOOD), 100)
    with pytest.raises(ValidationFailed):
        parse_json_batch(b"[]", 100)
    with pytest.raises(PayloadTooLarge) as info:
        parse_json_batch(orjson.dumps([GOOD] * 4), 3)
    assert info.value.status == 413
    assert [as_dict(e) for e in parse_json_batch(orjson.dumps([GOOD] * 3), 3)] == [GOOD] * 3


def test_ndjson_skips_blank_lines_and_indexes_events() -> None:
    body = b"\n".join([orjson.dumps(GOOD), b"", b"  ", orjson.dumps(GOOD), b""])
    assert [as_dict(e) for e in parse_ndjson_batch(body, 10)] == [GOOD, GOOD]
    bad = b"\n".join([orjson.dumps(GOOD), b"", b"{nope", orjson.dumps(GOOD), b"[1,"])
    with pytest.raises(MalformedJson) as info:
        parse_ndjson_batch(bad, 10)
    assert info.value.fields["invalid_indexes"] == [1, 3]
    with pytest.raises(PayloadTooLarge):
        parse_ndjson_batch(b"\n".join([orjson.dumps(GOOD)] * 3), 2)


def test_event_ids_are_unique_uuid4_strings() -> None:
    ids = new_event_ids(2000)
    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_records_carry_id_fields_and_stamp() -> None:
    records = to_records([envelope(GOOD)] * 2, "2024-01-01T00:00:00.000000+00:00")
    assert records[0].event_id != records[1].event_id
    value = orjson.loads(records[0].value)
    assert value == {**GOOD, "event_id": records[0].event_id,
                     "received_at": "2024-01-01T00:00:00.000000+00:00"}


def test_oversized_records_are_named_before_anything_is_sent() -> None:
    small, big = to_records([envelope(GOOD), envelope({**GOOD, "data": {"x": "y" * 500}})], "t")
    check_sizes([small], 400)
    with pytest.raises(PayloadTooLarge) as info:
        check_sizes([small, big, small], 400)
    assert info.value.fields["invalid_indexes"] == [1]
