"""The HTTP-to-Kafka ingestion service every experiment measures."""

from service.app import create_app
from service.modes import MODE_DEFAULTS, ProducerMode
from service.settings import Settings

__all__ = ["MODE_DEFAULTS", "ProducerMode", "Settings", "create_app"]
