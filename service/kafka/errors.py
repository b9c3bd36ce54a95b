"""Kafka errors to service errors: the one place that knows librdkafka's error codes."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from service.errors import DeliveryFailed, IngestError, Overloaded, PayloadTooLarge

# Errors librdkafka does not flag retriable but that a client can sensibly retry later:
# the broker was unreachable or slow, or our own buffer was full.
_TRANSIENT = frozenset({
    KafkaError._MSG_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._QUEUE_FULL,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
})

QUEUE_FULL = "_QUEUE_FULL"
WAIT_TIMED_OUT = "_WAIT_TIMED_OUT"


def is_retriable(err: KafkaError) -> bool:
    return bool(err.retriable()) or err.code() in _TRANSIENT


def from_produce_exception(exc: Exception, retry_after: int) -> IngestError:
    """What a synchronous `produce()` failure means for the HTTP caller."""
    if isinstance(exc, BufferError):
        return Overloaded("the producer buffer is full; retry later", retry_after=retry_after,
                          reason=QUEUE_FULL)
    if isinstance(exc, KafkaException) and isinstance(exc.args[0], KafkaError):
        err: KafkaError = exc.args[0]
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return PayloadTooLarge(f"the record is too large for the producer: {err.str()}")
        return DeliveryFailed(f"the producer refused the event: {err.str()}",
                              retry_after=retry_after if is_retriable(err) else None,
                              reason=err.name())
    return DeliveryFailed(f"the producer refused the event: {exc}", reason=type(exc).__name__)
