"""Fixtures of the service tests (the helpers themselves live in harness.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.harness import SEED_EVENT


@pytest.fixture
def seed_event() -> dict[str, Any]:
    return {**SEED_EVENT, "data": dict(SEED_EVENT["data"])}
