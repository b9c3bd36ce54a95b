"""The HTTP-to-Kafka ingestion service every experiment measures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.modes import MODE_DEFAULTS, ProducerMode
from service.settings import Settings

if TYPE_CHECKING:
    from service.app import create_app

__all__ = ["MODE_DEFAULTS", "ProducerMode", "Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # The app (FastAPI, ~0.3 s to import) is loaded on first use: the lab imports this
    # package for its settings and modes in every run's kernel, which never builds an app.
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
