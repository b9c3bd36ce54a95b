"""The fidelity check's classification: kept, rewritten (same value), altered, refused."""

from __future__ import annotations

import pytest

from experiments.fidelity import KEPT, REFUSED, Outcome, same_value, table


@pytest.mark.parametrize(("a", "b", "same"), [
    (b'{"a": 1E5}', b'{"a":100000.0}', True),      # another spelling of one number
    (b'{"t": "caf\\u00e9"}', '{"t":"café"}'.encode(), True),  # another escape of one text
    (b'{"x": -0}', b'{"x":-0.0}', True),
    (b'{"z": 1, "a": 2}', b'{"z":1,"a":2}', True),
    (b'{"x": 1e-400}', b'{"x":0.0}', False),       # a double's rounding is another number
    (b'{"id": 123456789012345678901234567890}', b'{"id":1.2345678901234568e+29}', False),
    (b'{"amount": 12.34000000000000000001}', b'{"amount":12.34}', False),
    (b'{"k": 1, "k": 2}', b'{"k":2}', False),      # a dropped duplicate key is lost data
    (b'{"z": 1, "a": 2}', b'{"a":2,"z":1}', False),  # key order is part of what was sent
])
def test_same_value_compares_numbers_exactly_and_keeps_every_key(a: bytes, b: bytes, same: bool) -> None:
    assert same_value(a, b) is same


def test_the_corpus_has_a_row_per_entry_in_the_table() -> None:
    outcomes = [Outcome(name, "kept", 202, "kept") for name in KEPT]
    outcomes += [Outcome(name, "refused", 400, "refused") for name in REFUSED]
    outcomes[0] = Outcome(next(iter(KEPT)), "kept", 200, "altered", '{"id":1.2e+29}')
    lines = table({"svc": outcomes}).splitlines()
    assert len(lines) == 2 + len(KEPT) + len(REFUSED)
    assert "**altered** (200)" in lines[2] and "1.2e+29" in lines[2]
    assert not set(KEPT) & set(REFUSED)
