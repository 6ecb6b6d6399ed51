"""What the Kafka helpers raise when the brokers cannot be used."""

from __future__ import annotations

from streams.config import Settings


class BrokerUnavailable(RuntimeError):
    """No broker answered at the configured address."""


def unreachable(settings: Settings, *, because: str = "") -> BrokerUnavailable:
    """The error for no broker answering; `because`: what the addresses said, if known."""
    protocol = settings.security_protocol
    also = (
        ""
        if protocol == "PLAINTEXT"
        else f"; with CEASEFIRE_SECURITY_PROTOCOL={protocol}, check that the broker's "
        "listener speaks it and that the credentials and certificates are the broker's"
    )
    return BrokerUnavailable(
        f"no Kafka broker reachable at {settings.bootstrap()}"
        f"{f' ({because})' if because else ''} (start the embedded one with "
        "`ceasefire-monitor broker` or `ceasefire-monitor run`, or set --broker / "
        f"CEASEFIRE_BROKER{also})"
    )
