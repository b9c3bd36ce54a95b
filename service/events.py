"""The event schema, its validation, and the record that goes to Kafka.

`data` is carried as the exact JSON text the client sent: validated, never decoded into
Python values and encoded again, so numbers of any size or precision, escapes, key order
and whitespace inside it reach Kafka byte for byte (an ingestion layer may refuse an
event; it never changes one). Valid input takes a fast path: msgspec reads the envelope
into `Envelope`, keeping `data` as its raw span (`msgspec.Raw`), and checks types and
lengths as the model does. Anything that path refuses goes to the authorities instead:
orjson (RFC 8259 strict) for whether the body is JSON at all, and the pydantic model
`Event`, which produces the field paths of a 422. The fast path accepts a strict subset
of what the authorities accept (tests/service/test_stored_as_sent.py checks the two agree).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import MalformedJson, PayloadTooLarge, ValidationFailed

MAX_TEXT = 256
# A refusal lists at most this many errors (with the total it found): a hopeless batch
# (10,000 empty events) or an event with 95,000 unknown keys would otherwise get a reply
# of megabytes built in seconds of CPU. Validation stops once this many are found.
MAX_REPORTED_ERRORS = 100
# A field name longer than this is cut in an error entry: the reply never echoes a
# megabyte of the client's own text back.
MAX_ECHOED_NAME = 64


class Event(BaseModel):
    """The seed's event: who sent it, what it is called, and free-form JSON data."""

    # The schema's authority: the OpenAPI document and every 422 come from this model (its
    # docstring is the document's description).

    model_config = ConfigDict(extra="forbid", strict=True)

    client_id: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    name: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    data: dict[str, Any]


_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """A valid event as received: `data` is the client's JSON text of the object, as sent.

    The same constraints as `Event` (strict types, no unknown fields, the text limits);
    that `data` is an object is checked by `_is_object`.
    """

    client_id: _Text
    name: _Text
    data: msgspec.Raw


class Record(NamedTuple):
    """One event ready to produce: key = event id, value = enriched JSON bytes."""

    event_id: str
    value: bytes


_read_event = msgspec.json.Decoder(Envelope).decode
# msgspec reads nesting within Python's recursion limit (about 950 levels inside a
# server; orjson, the authority, reads 1,023): deeper events are refused, not altered.
_UNREAD = (msgspec.DecodeError, RecursionError)
_read_events = msgspec.json.Decoder(list[Envelope]).decode


def _is_object(raw: msgspec.Raw) -> bool:
    # A Raw span starts at its value's first byte: an object's is "{".
    return memoryview(raw)[:1] == b"{"


def _is_utf8(body: bytes) -> bool:
    """The fast path's check of what msgspec does not check inside `data`: its strings'
    bytes are valid UTF-8 (no overlong forms, no encoded surrogates), as orjson requires."""
    if body.isascii():
        return True
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def _cut(part: object) -> object:
    if isinstance(part, str) and len(part) > MAX_ECHOED_NAME:
        return part[:MAX_ECHOED_NAME] + "..."
    return part


def _errors(exc: ValidationError, index: int | None) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [_cut(p) for p in err["loc"]]
        entry: dict[str, Any] = {
            "field": ".".join(str(p) for p in loc) or "(body)",
            "loc": loc, "msg": err["msg"], "type": err["type"],
        }
        if index is not None:
            entry = {"index": index, **entry}
        out.append(entry)
    return out


_FIELDS = frozenset(Event.model_fields)


def _bounded(obj: object) -> tuple[object, int]:
    """`obj` with at most MAX_REPORTED_ERRORS unknown keys, and how many it left out: what
    the model reports of the rest would only repeat `extra_forbidden`, at a cost that
    grows with every key."""
    if type(obj) is not dict or len(obj) <= len(_FIELDS) + MAX_REPORTED_ERRORS:
        return obj, 0
    kept, extra = {}, 0
    for key, value in obj.items():
        if key in _FIELDS or extra < MAX_REPORTED_ERRORS:
            extra += key not in _FIELDS
            kept[key] = value
    return kept, len(obj) - len(kept)


def _model_errors(obj: object, index: int | None) -> tuple[list[dict[str, Any]], int]:
    """Field-path errors for `obj` from the model ([] when it is a valid event), and the
    total count, which includes the unknown keys `_bounded` left out."""
    bounded, left_out = _bounded(obj)
    try:
        Event.model_validate(bounded)
    except ValidationError as exc:
        errors = _errors(exc, index)
        return errors, len(errors) + left_out
    return [], 0


def _check(obj: object, index: int | None) -> list[dict[str, Any]]:
    """Field-path errors for `obj` from the model, or [] when it is a valid event."""
    return _model_errors(obj, index)[0]


def _loads(raw: bytes | memoryview) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None


def _unreadable(exc: Exception) -> MalformedJson:
    """What the fast path refused and the authorities accept (nesting deeper than msgspec
    reads): refused, since it could not be carried exactly."""
    reason = ("it nests deeper than the service reads (about 950 levels)"
              if isinstance(exc, RecursionError) else str(exc))
    return MalformedJson(f"body could not be read exactly: {reason}")


def _refusal(obj: object, reason: Exception | None) -> MalformedJson | ValidationFailed:
    """Why the authorities refuse an event the fast path refused: the model's field paths
    (at most MAX_REPORTED_ERRORS, with the total), or the fast path's `reason` when the
    model accepts it."""
    errors, total = _model_errors(obj, None)
    if not errors:
        return _unreadable(reason or ValueError("data is not a JSON object"))
    return ValidationFailed("the event does not match the schema",
                            errors=errors[:MAX_REPORTED_ERRORS], **_truncation(total))


def _truncation(total: int) -> dict[str, Any]:
    if total <= MAX_REPORTED_ERRORS:
        return {}
    return {"error_count": total, "errors_truncated": True}


def parse_event(body: bytes) -> Envelope:
    """One event from a JSON body; 400 when not JSON, 422 with field paths when invalid."""
    try:
        event = _read_event(body)
    except _UNREAD as exc:
        raise _refusal(_loads(body), exc) from None
    if _is_object(event.data) and _is_utf8(body):
        return event
    raise _refusal(_loads(body), None)


def _check_count(count: int, max_events: int) -> None:
    if count == 0:
        raise ValidationFailed("a batch needs at least one event", errors=[], invalid_indexes=[])
    if count > max_events:
        raise PayloadTooLarge(f"batch has {count} events; the limit is {max_events}",
                              limit=max_events, count=count)


def _refuse_batch(objs: list[Any]) -> ValidationFailed:
    """The model's errors over a batch the fast path refused, stopping once
    MAX_REPORTED_ERRORS are found: a hopeless batch costs no more to refuse than a short one."""
    errors: list[dict[str, Any]] = []
    total = checked = 0
    for i, obj in enumerate(objs):
        found, count = _model_errors(obj, i)
        errors.extend(found)
        total += count
        checked = i + 1
        if total >= MAX_REPORTED_ERRORS:
            break
    bad = sorted({e["index"] for e in errors})
    errors = errors[:MAX_REPORTED_ERRORS]
    if checked < len(objs):
        return ValidationFailed(
            f"at least {len(bad)} event(s) do not match the schema (validation stopped at event "
            f"{checked - 1} of {len(objs)}, after {total} errors); nothing published",
            invalid_indexes=bad, errors=errors, error_count=total, errors_truncated=True)
    return ValidationFailed(f"{len(bad)} event(s) do not match the schema; nothing published",
                            invalid_indexes=bad, errors=errors, **_truncation(total))


def _fast_batch(events: list[Envelope], body: bytes) -> bool:
    return all(_is_object(e.data) for e in events) and _is_utf8(body)


def parse_json_batch(body: bytes, max_events: int) -> list[Envelope]:
    reason: Exception | None = None
    try:
        events = _read_events(body)
    except _UNREAD as exc:
        events, reason = None, exc
    if events is not None and _fast_batch(events, body):
        _check_count(len(events), max_events)
        return events
    objs = _loads(body)
    if type(objs) is not list:
        raise ValidationFailed(
            "a JSON batch must be an array of events",
            errors=[{"field": "(body)", "loc": [], "msg": "Input should be an array",
                     "type": "list_type"}],
            invalid_indexes=[],
        )
    _check_count(len(objs), max_events)
    if reason is not None and not any(_check(obj, i) for i, obj in enumerate(objs)):
        raise _unreadable(reason)
    raise _refuse_batch(objs)


def parse_ndjson_batch(body: bytes, max_events: int) -> list[Envelope]:
    """One event per line; blank lines are skipped and indexes count events, not lines."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    _check_count(len(lines), max_events)
    reason: Exception | None = None
    try:
        events = [_read_event(line) for line in lines]
    except _UNREAD as exc:
        events, reason = None, exc
    if events is not None and _fast_batch(events, body):
        return events
    objs: list[Any] = []
    malformed: list[int] = []
    for i, line in enumerate(lines):
        try:
            objs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            malformed.append(i)
            objs.append(None)
    if malformed:
        raise MalformedJson(f"{len(malformed)} line(s) are not valid JSON; nothing published",
                            invalid_indexes=malformed)
    if reason is not None and not any(_check(obj, i) for i, obj in enumerate(objs)):
        raise _unreadable(reason)
    raise _refuse_batch(objs)


def received_at() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="microseconds")


# Byte maps that set an id's version (4) and RFC 4122 variant bits, and where each of the
# 32 hex digits of an id lands in its 36-character text (dashes after 8, 12, 16, 20).
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_RFC4122 = bytes((b & 0x3F) | 0x80 for b in range(256))
_TEXT_POSITION = [j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(32)]


def new_event_ids(count: int) -> list[str]:
    """`count` random UUIDv4 strings from one urandom call.

    Same randomness and format as `str(uuid.uuid4())`. Every step but the final split
    works on whole columns of all ids at once (bytes.translate, strided slices), so the
    cost per id is a fraction of uuid4's, which matters on the batch path.
    """
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_RFC4122)
    digits = raw.hex().encode()
    text = bytearray(b"-" * (36 * count))
    for digit, position in enumerate(_TEXT_POSITION):
        text[position::36] = digits[digit::32]
    joined = text.decode()
    return [joined[i:i + 36] for i in range(0, 36 * count, 36)]


# The record's JSON: the id, the sender's two names, `data` exactly as sent, the stamp. Ids
# are hex and dashes and the stamp ISO 8601 digits, so neither needs escaping; the two
# names are re-encoded by orjson (the same strings, escapes normalised).
_RECORD = b'{"event_id":"%s","client_id":%s,"name":%s,"data":%s,"received_at":"%s"}'
_new_record = tuple.__new__  # Record(...) without the NamedTuple's Python-level __new__


def record_value(event_id: str, event: Envelope, stamp: str) -> bytes:
    dumps = orjson.dumps
    return _RECORD % (event_id.encode(), dumps(event.client_id), dumps(event.name), event.data,
                      stamp.encode())


def to_records(events: list[Envelope], stamp: str,
               event_ids: list[str] | None = None) -> list[Record]:
    """Key = a new event id; value = the event with its id and the receive time added.

    A batch's events usually share their two names: each pair is encoded once."""
    stamp_raw = stamp.encode()
    dumps = orjson.dumps
    names: dict[tuple[str, str], tuple[bytes, bytes]] = {}
    records = []
    for event_id, event in zip(event_ids or new_event_ids(len(events)), events, strict=True):
        pair = (event.client_id, event.name)
        encoded = names.get(pair)
        if encoded is None:
            encoded = names[pair] = (dumps(event.client_id), dumps(event.name))
        records.append(_new_record(Record, (event_id, _RECORD % (
            event_id.encode(), encoded[0], encoded[1], event.data, stamp_raw))))
    return records


class RecordMaker:
    """`to_records` for a running service, with its two per-request costs taken out.

    Ids come from blocks of `block` pre-generated by `new_event_ids` (about a quarter of
    the cost of generating one id per request), and the receive stamp reuses its
    formatted second, adding only the microseconds (`received_at` costs 4x as much).
    Both are the same values those functions would give. One per app, used on its loop.
    """

    def __init__(self, block: int = 1024) -> None:
        self.block = block
        self._ids: list[str] = []
        self._second = -1
        self._prefix = ""

    def event_ids(self, count: int) -> list[str]:
        ids = self._ids
        if count > len(ids):
            ids.extend(new_event_ids(max(self.block, count)))
        taken = ids[-count:]
        del ids[-count:]
        return taken

    def stamp(self) -> str:
        micros = time.time_ns() // 1000
        second = micros // 1_000_000
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        # Zero-padded by adding 10**6 and dropping the leading 1: 0.6 us per call against
        # 1.15 for divmod and a `:06d` format (in-process).
        fraction = str(micros - second * 1_000_000 + 1_000_000)[1:]
        return f"{self._prefix}.{fraction}+00:00"

    def records(self, events: list[Envelope]) -> list[Record]:
        return to_records(events, self.stamp(), self.event_ids(len(events)))

    def record(self, event: Envelope) -> Record:
        """`records([event])[0]`, without the lists (the single-event routes' path)."""
        ids = self._ids
        if not ids:
            ids.extend(new_event_ids(self.block))
        event_id = ids.pop()
        return Record(event_id, record_value(event_id, event, self.stamp()))


def check_sizes(records: list[Record], max_message_bytes: int) -> None:
    """413 naming the events whose record librdkafka would refuse, before anything is sent."""
    too_big = [i for i, r in enumerate(records)
               if len(r.value) + len(r.event_id) > max_message_bytes]
    if too_big:
        raise PayloadTooLarge(
            f"{len(too_big)} event(s) exceed the producer's message.max.bytes "
            f"({max_message_bytes}); nothing published",
            invalid_indexes=too_big, limit=max_message_bytes,
        )
