"""kafka-python clients for the command-line tools, with one clear error when no broker answers."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from streams.config import Settings
from streams.kafka.topics import ensure_topics, unreachable

#: What every command-line producer (feed, simulate, the demo feed) asks of delivery.
#: Idempotence off: kafka-python 3 turns it on by default, and its producer then stopped
#: for good once a batch expired (a broker frozen past `delivery_timeout_ms`): after a 180 s
#: freeze of the embedded broker, nothing was acknowledged or failed again while `run
#: --demo` kept saying "sent"; with it off, sends failed during the freeze and were
#: acknowledged again after it. The monitor needs no idempotence from its clients: a report
#: sent twice is counted once (its identity), and the order of its versions does not matter
#: (the highest revision wins).
DELIVERY: dict[str, Any] = {"acks": "all", "retries": 5, "enable_idempotence": False}


def producer_for(settings: Settings, **config: Any) -> KafkaProducer:
    """A producer to the monitor's topics, which are created first if missing. `config`:
    more of kafka-python's settings (tests shorten its timeouts)."""
    # A producer sends by key to the partitions a topic has: it need not match the
    # workers' CEASEFIRE_PARTITIONS (`simulate` on the host against the compose stack's 8).
    ensure_topics(settings, check_partitions=False)
    try:
        return KafkaProducer(
            bootstrap_servers=settings.bootstrap(),
            **{"linger_ms": 20, **DELIVERY, **config},
            **settings.kafka_security(),
        )
    except KafkaError as exc:  # kafka-python raises a timeout when no bootstrap server answers
        raise unreachable(settings) from exc
