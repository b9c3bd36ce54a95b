"""The Kafka side of the service: the Publisher, its delivery results and topic admin."""

from service.kafka.delivery import DeliveryBridge, Outcome
from service.kafka.publisher import Publisher, RecordHeaders
from service.kafka.topic import ensure_topic

__all__ = ["DeliveryBridge", "Outcome", "Publisher", "RecordHeaders", "ensure_topic"]
