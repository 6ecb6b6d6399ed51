"""kafka-python clients for the command-line tools, with one clear error when no broker answers."""

from __future__ import annotations

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.config import Settings
from streams.kafka.topics import ensure_topics, unreachable


def producer_for(settings: Settings) -> KafkaProducer:
    """A producer to the monitor's topics, which are created first if missing."""
    ensure_topics(settings)
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap(),
            linger_ms=20,
            acks="all",
            retries=5,
            **settings.kafka_security(),
        )
    except KafkaError as exc:  # kafka-python raises a timeout when no bootstrap server answers
        raise unreachable(settings) from exc
