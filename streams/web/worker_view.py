"""What the HTTP API reads of the worker it is served by: the web's narrow port.

The worker (`streams/pipeline/app.py::Monitor`) satisfies it structurally; the web does not
import the worker, so the composition root depends on the web and never the other way
round. Tests serve the API over stand-ins of this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import faust
    from aiokafka import AIOKafkaProducer

    from streams.classify.classifier import Classifier
    from streams.classify.zones import ZoneCatalogue
    from streams.config import Settings
    from streams.record.book import IncidentBook
    from streams.tallies.state import IncidentTally


class ZoneView(Protocol):
    """The zone stage's state, as queries read it."""

    @property
    def tallies(self) -> Mapping[int, IncidentTally]: ...

    @property
    def books(self) -> Mapping[int, IncidentBook]: ...

    def partitions_ready(self) -> set[int]:
        """Owned partitions whose state is recovered (empty between an assignment and its
        recovery)."""
        ...

    def owned_partitions(self) -> set[int]: ...


class AlertView(Protocol):
    def alerts(self, status: str) -> list[dict[str, Any]]: ...

    def holds_its_partitions(self) -> bool:
        """Whether the firing alerts of the partitions it owns are recovered (not while
        partitions move)."""
        ...

    def knows_resolved(self) -> bool:
        """Whether the resolved alerts are read up to the end of the alert topic (not while
        a worker starts, or after its read of the topic failed and restarted)."""
        ...


class ProducerView(Protocol):
    @property
    def producer(self) -> AIOKafkaProducer | None:
        """The started producer, None before it starts."""
        ...


class WorkerView(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def app(self) -> faust.App:
        """For the table assignments that say which worker owns which partition."""
        ...

    @property
    def zones(self) -> ZoneCatalogue: ...

    @property
    def classifier(self) -> Classifier: ...

    @property
    def producer(self) -> ProducerView: ...

    @property
    def zone(self) -> ZoneView: ...

    @property
    def alerting(self) -> AlertView: ...

    @property
    def ready(self) -> bool: ...

    @property
    def started(self) -> bool:
        """Ready once: alive for good (liveness)."""
        ...

    def stalled(self) -> dict[str, set[int]]:
        """Partitions with input their stage could not apply for a while, by topic."""
        ...

    def waiting_for(self) -> list[str]:
        """What readiness waits for, in words (empty when ready)."""
        ...
