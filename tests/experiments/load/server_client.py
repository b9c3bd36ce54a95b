"""Talking to load_server.py's control endpoints from the tests."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest


class TestServer:
    __test__ = False  # not a test class, despite the name

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid

    def reset(self, **config: Any) -> None:
        request = urllib.request.Request(
            f"{self.url}/_control/reset", data=json.dumps(config).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_control/stats", timeout=30) as answer:
            return json.loads(answer.read())


# How late a generator may send before a test of rate precision says the box, not the code,
# is what it would measure (tests of what the schedule guarantees never skip).
BUSY_BOX_LATE = 0.05


def skip_if_the_box_was_busy(results: dict) -> None:
    """Skip, saying why, when this box sent more than BUSY_BOX_LATE of the schedule late:
    a busy box delays sends and completions by its own load, which no assertion about the
    generator's precision can tell apart from a defect."""
    late = results.get("late_fraction") or 0.0
    if late > BUSY_BOX_LATE:
        pytest.skip(f"the box was too busy to judge rate precision: {late:.1%} of the schedule "
                    f"was sent late (more than {BUSY_BOX_LATE:.0%})")
