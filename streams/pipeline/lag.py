"""Consumer lag, per topic and partition a worker owns, for every stage's input.

Each stage reports the partitions it consumes; a partition it no longer owns disappears
from the gauge (one stage's report never clears another's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams import metrics
from streams.pipeline.stage_input import StageInput

#: Seconds between two refreshes of the stages' lag gauge.
LAG_INTERVAL = 5.0


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


def highwaters(app: Any, topic: str) -> dict[int, int]:
    """Fetch high watermarks of the partitions of `topic` the Faust `app` owns."""
    out: dict[int, int] = {}
    for tp in app.assignor.assigned_actives():
        if tp.topic != topic:
            continue
        try:
            hw = app.consumer.highwater(tp)
        except Exception:  # not (yet) assigned in the consumer: no figure this time
            continue
        if hw is not None:
            out[tp.partition] = hw
    return out


def behind(app: Any, inputs: Iterable[StageInput]) -> dict[tuple[str, int], int]:
    """Lag of stateful stages' inputs: fetch high watermark minus what the stage has
    applied, whatever the consumer's position says."""
    lag: dict[tuple[str, int], int] = {}
    for stage in inputs:
        applied = stage.progress.applied
        for p, hw in highwaters(app, stage.topic).items():
            if p in applied:
                lag[(stage.topic, p)] = max(hw - applied[p] - 1, 0)
    return lag
