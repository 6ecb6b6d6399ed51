"""Consumer lag, per topic and partition a worker owns, for every stage's input.

Each stage reports the partitions it consumes; a partition it no longer owns disappears
from the gauge (one stage's report never clears another's).
"""

from __future__ import annotations

from collections.abc import Mapping

from streams import metrics


class LagReport:
    """The lag gauge's series owned by one stage."""

    def __init__(self) -> None:
        self._series: set[tuple[str, str]] = set()

    def publish(self, lag: Mapping[tuple[str, int], int]) -> None:
        series = {(topic, str(partition)) for topic, partition in lag}
        for gone in self._series - series:
            metrics.CONSUMER_LAG.remove(*gone)
        for (topic, partition), messages in lag.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(messages, 0))
        self._series = series
