"""What the Kafka helpers raise when the brokers cannot be used."""

from __future__ import annotations

from streams.config import Settings


class BrokerUnavailable(RuntimeError):
    """No broker answered at the configured address."""


def unreachable(settings: Settings) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"no Kafka broker reachable at {settings.bootstrap()} "
        "(start one with `ceasefire-monitor run`, or set --broker / CEASEFIRE_BROKER)"
    )
