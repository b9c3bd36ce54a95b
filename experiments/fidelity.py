"""Does a service store what it accepted exactly? The corpus of awkward events, and the check.

`KEPT` holds legal-but-awkward `data` (numbers beyond 64 bits or a double, exponents
beyond a double's range, escapes, raw non-ASCII text, whitespace, key order, duplicate
keys, deep nesting); `REFUSED` holds text that is not strict RFC 8259 JSON in UTF-8, or
nests beyond what the service reads. `check` sends each, as the client's own bytes, to a
running service and reads the topic back: every entry is `kept` (data byte for byte),
`rewritten` (the same JSON value in other text: whitespace, escapes, number spelling),
`altered` (2xx, then stored as another value: the one outcome an ingestion layer must
never have) or `refused` (4xx, nothing stored). The service tests (tests/service/test_stored_as_sent.py)
and `python -m experiments.native fidelity` (the article's design in Rust beside this
service) use this one corpus.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from experiments.kafka import read_topic

# name -> the `data` object's JSON text as a client sends it.
KEPT: dict[str, bytes] = {
    "integer beyond 64 bits": b'{"id": 123456789012345678901234567890}',
    "2**64": b'{"x": 18446744073709551616}',
    "negative integer beyond 64 bits": b'{"x": -99999999999999999999999999999999999999}',
    "decimal beyond a double": b'{"amount": 12.34000000000000000001}',
    "tiny exponent": b'{"x": 1e-400}',
    "huge exponent": b'{"x": 1e400, "y": -2.5E+99999}',
    "negative zeros": b'{"x": -0.0, "y": -0}',
    "exponent spellings": b'{"a": 1E5, "b": 1e+5, "c": 2.50e-3, "d": 100}',
    "escaped text": b'{"t": "caf\\u00e9 \\ud83d\\ude00 \\/ \\" \\\\ \\n \\u0000"}',
    "raw non-ASCII text": '{"t": "café 😀 漢字 ÿ"}'.encode(),
    # No line feed: the NDJSON route splits lines on it (the JSON routes keep line feeds
    # inside `data` like any whitespace).
    "whitespace and key order": b'{ "z" : 1 ,\r\t"a" : [ 1 , 2 ] ,"m":{ } }',
    "duplicate keys": b'{"k": 1, "k": 2}',
    "deep nesting": b'{"d": ' + b"[" * 500 + b"]" * 500 + b"}",
    "empty object": b"{}",
    "long text": b'{"s": "' + b"x" * 20_000 + b'"}',
}

# name -> `data` text a strict service refuses with 400, publishing nothing.
REFUSED: dict[str, bytes] = {
    "overlong UTF-8": b'{"t": "\xc0\xaf"}',
    "encoded surrogate": b'{"t": "\xed\xa0\x80"}',
    "invalid UTF-8 byte": b'{"t": "\xff"}',
    "lone surrogate escape": b'{"t": "\\ud800"}',
    "NaN": b'{"x": NaN}',
    "leading zero": b'{"x": 01}',
    "trailing comma": b'{"x": 1,}',
    "comment": b'{"x": 1 /* c */}',
    "nesting beyond reading": b'{"d": ' + b"[" * 2000 + b"]" * 2000 + b"}",
}


def body_of(data: bytes, client_id: bytes = b'"fidelity"') -> bytes:
    """An event as a client writes it, with whitespace around `data`."""
    return b'{"client_id": ' + client_id + b', "name": "awkward", "data": ' + data + b' }'


class StoredRecord(msgspec.Struct):
    """A stored record with `data` kept as the text the topic holds."""

    event_id: str
    client_id: str
    name: str
    data: msgspec.Raw
    received_at: str


def stored(value: bytes) -> StoredRecord:
    return msgspec.json.decode(value, type=StoredRecord)


@dataclass(frozen=True)
class Outcome:
    """What a service did with one corpus entry."""

    name: str
    expected: str  # kept | refused: what a strict, exact service does
    status: int
    outcome: str  # kept | rewritten | altered | refused | lost (2xx, never stored)
    stored: str | None = None  # the stored data unless kept (cut to 200 characters)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(url: str, bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Outcome]:
    """Send every corpus entry to `url` (`POST /`, the seed contract: the body of a 2xx is
    the event id) and classify it from what `topic` holds afterwards."""
    sent: list[tuple[str, str, bytes, int, str | None]] = []
    with httpx.Client(timeout=timeout_s) as client:
        for expected, corpus in (("kept", KEPT), ("refused", REFUSED)):
            for name, data in corpus.items():
                response = client.post(url + "/", content=body_of(data),
                                       headers={"content-type": "application/json"})
                event_id = response.text.strip() if response.status_code < 300 else None
                sent.append((name, expected, data, response.status_code, event_id))
    wanted = {event_id for *_, event_id in sent if event_id}
    found: dict[str, bytes] = {}
    deadline = time.monotonic() + timeout_s
    while not wanted <= found.keys() and time.monotonic() < deadline:
        for msg in read_topic(bootstrap, topic, timeout=timeout_s, fetch_wait_ms=10):
            key, value = msg.key(), msg.value()
            if key is not None and value is not None:
                found[key.decode()] = value
    outcomes = []
    for name, expected, data, status, event_id in sent:
        if event_id is None:
            outcomes.append(Outcome(name, expected, status, "refused"))
            continue
        value = found.get(event_id)
        if value is None:
            outcomes.append(Outcome(name, expected, status, "lost"))
            continue
        kept = bytes(stored(value).data)
        if kept == data:
            outcomes.append(Outcome(name, expected, status, "kept"))
        else:
            text = kept.decode(errors="replace")
            outcomes.append(Outcome(name, expected, status,
                                    "rewritten" if same_value(kept, data) else "altered",
                                    text if len(text) <= 200 else text[:200] + "..."))
    return outcomes


def _exact(text: bytes) -> Any:
    """A JSON text as a value that keeps what a double would lose: every number as an exact
    Decimal, every object as its list of pairs (duplicate keys and order kept)."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=Decimal,
                      object_pairs_hook=list)


def same_value(a: bytes, b: bytes) -> bool:
    """Whether two JSON texts hold the same value, numbers compared exactly (1E5 and
    100000.0 are one number; 1e-400 and 0.0 are not)."""
    return bool(_exact(a) == _exact(b))


def table(results: dict[str, list[Outcome]]) -> str:
    """Markdown: one row per corpus entry, one column per service checked."""
    names = list(results)
    lines = ["| data | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    by_name = {label: {o.name: o for o in outcomes} for label, outcomes in results.items()}
    for entry in [*KEPT, *REFUSED]:
        cells = []
        for label in names:
            o = by_name[label].get(entry)
            if o is None:
                cells.append("-")
            elif o.outcome == "altered":
                cells.append(f"**altered** ({o.status}): `{o.stored[:60] if o.stored else ''}`")
            elif o.outcome == "rewritten":
                cells.append(f"rewritten ({o.status})")
            else:
                cells.append(f"{o.outcome} ({o.status})")
        lines.append(f"| {entry} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
