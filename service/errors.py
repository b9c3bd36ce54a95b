"""One exception hierarchy for the service; each error knows the HTTP answer it maps to.

Handlers in `service.handlers` turn these into JSON responses in one place, so route
code raises domain errors and never builds error responses itself.
"""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """Base class of every error the service raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def headers(self) -> dict[str, str] | None:
        return None

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.fields}


class ConfigError(IngestError):
    """Settings or producer configuration that cannot work; raised at start, never per request."""

    code = "config_error"


class MalformedJson(IngestError):
    status = 400
    code = "malformed_json"


class BadRequest(IngestError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(IngestError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(IngestError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(IngestError):
    """Schema violations; `fields` carries `errors` (with field paths) and `invalid_indexes`."""

    status = 422
    code = "validation_failed"


class Unavailable(IngestError):
    """503: the request may succeed later; `retry_after` (seconds) becomes `Retry-After`."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return None if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Overloaded(Unavailable):
    """Too much in-flight work or a full producer buffer; nothing of the request was produced."""

    code = "overloaded"


class DeliveryFailed(Unavailable):
    """The broker did not acknowledge the event(s); `reason` is the librdkafka error name."""

    code = "delivery_failed"


class PartialDelivery(Unavailable):
    """A batch where some events failed; `results` lists every event's outcome in order."""

    code = "partial_delivery"


class NotReady(Unavailable):
    code = "not_ready"
