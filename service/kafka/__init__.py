"""The Kafka side of the service: the shared producer's delivery bridge and topic admin."""

from service.kafka.bridge import Publisher
from service.kafka.delivery import DeliveryBridge, Outcome
from service.kafka.topic import ensure_topic

__all__ = ["DeliveryBridge", "Outcome", "Publisher", "ensure_topic"]
