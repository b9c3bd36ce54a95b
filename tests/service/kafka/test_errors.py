"""The mapping from librdkafka errors to HTTP answers (pure logic)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from service.errors import DeliveryFailed, Overloaded, PayloadTooLarge
from service.kafka.errors import from_produce_exception, is_retriable


def test_full_buffer_is_503_with_retry_after() -> None:
    err = from_produce_exception(BufferError("Local: Queue full"), retry_after=2)
    assert isinstance(err, Overloaded)
    assert err.status == 503
    assert err.headers() == {"Retry-After": "2"}


def test_oversized_record_is_413() -> None:
    exc = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert isinstance(from_produce_exception(exc, 1), PayloadTooLarge)


def test_other_produce_errors_are_503_naming_the_reason() -> None:
    err = from_produce_exception(KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC)), 1)
    assert isinstance(err, DeliveryFailed)
    assert err.status == 503
    assert err.fields["reason"] == "_UNKNOWN_TOPIC"


def test_timeouts_are_retriable_and_size_errors_are_not() -> None:
    assert is_retriable(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert is_retriable(KafkaError(KafkaError._TRANSPORT))
    assert not is_retriable(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
