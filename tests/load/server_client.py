"""Talking to load_server.py's control endpoints from the tests."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


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
