"""Dead letters of the internal topics: records a stage cannot take, sent to the dead-letter
topic through the process's shared producer (`InternalDeadLetters`), and the input topic's
records read back for a revision conflict's dead letter (`input_reader`). Each record is
built, bounded, by `schemas/dead_letter.py::dead_letter`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.codes import RejectReason
from schemas.dead_letter import dead_letter, dead_letter_key
from schemas.validation import Rejection
from streams import metrics
from streams.config import Settings
from streams.kafka.offsets import read_records
from streams.kafka.producer import SharedProducer

log = logging.getLogger(__name__)


class InternalDeadLetters:
    """Sends records of an internal topic that a stage cannot take to the dead-letter topic,
    through a process's shared producer. Called as `dead_letter` in a stage's `Ports`."""

    def __init__(self, settings: Settings, producer: SharedProducer) -> None:
        self.settings = settings
        self.producer = producer

    async def __call__(
        self,
        topic: str,
        records: Sequence[tuple[int, int, bytes, str]],
        reason: str = RejectReason.INVALID_VALUE.value,
        keys: Sequence[bytes | None] | None = None,
    ) -> None:
        """Records (partition, offset, value, error) to the dead-letter topic with `reason`,
        never silently dropped. `invalid_value`: not what this monitor writes there.
        `keys`: of each record, its dead letter's key (none: no key)."""
        producer = await self.producer.started()
        code = RejectReason(reason)
        sends = []
        # A record this monitor did not write there is a fault to look into; a conflict of
        # revisions is the sender's data, counted in the metric and answered on the DLQ.
        level = logging.ERROR if code is RejectReason.INVALID_VALUE else logging.WARNING
        for n, (partition, offset, raw, error) in enumerate(records):
            key = None if keys is None else dead_letter_key(keys[n])
            log.log(
                level,
                "dead-lettering a record at %s[%d]@%d (%s): %s",
                topic,
                partition,
                offset,
                code.value,
                error,
            )
            message = (
                f"not a record this monitor writes to its internal topic {topic}: {error}"
                if code is RejectReason.INVALID_VALUE
                else error
            )
            value = dead_letter(
                raw,
                Rejection(code, message),
                topic=topic,
                partition=partition,
                offset=offset,
                key=key,
                received_at=datetime.now(UTC),
            )
            sends.append(await producer.send(self.settings.dlq_topic, value, key=key))
        await asyncio.gather(*sends)
        # counted once acknowledged: a step whose dead letters failed sends them again
        metrics.REJECTED.labels(code.value).inc(len(sends))


async def input_reader(
    settings: Settings, wanted: set[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    """The input topic's records at (partition, offset), those still there: the reports as
    sent, for a revision conflict's dead letter (`Ports.read_input`)."""
    return await read_records(
        settings.bootstrap(),
        settings.reports_topic,
        wanted,
        timeout=10.0,
        **settings.kafka_security(),
    )
