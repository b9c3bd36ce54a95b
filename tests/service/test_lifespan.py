"""The lifespan's hold on the garbage collector: what start-up built is frozen while the
service serves, so a full collection walks only what requests left, and released at shutdown."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from tests.service.harness import make_settings, run_service

pytestmark = pytest.mark.kafka


def test_the_started_heap_is_frozen_while_serving_and_released_at_shutdown(
        bootstrap: str, seed_event: dict[str, Any]) -> None:
    gc.unfreeze()
    with run_service(make_settings(bootstrap, mode="durable")) as service, service.client() as c:
        assert c.post("/", json=seed_event).status_code == 200
        frozen = gc.get_freeze_count()
        # Start-up's objects (the app, its routes and schemas, the producer) are out of the
        # collector's reach; what a full pass walks is a small rest.
        assert frozen > 50_000
        assert len(gc.get_objects(generation=2)) < frozen / 10
    assert gc.get_freeze_count() == 0
