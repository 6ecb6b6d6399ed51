"""Repeats of the Kafka client's error lines, held back.

aiokafka logs an unreachable broker at every retry, every 100 ms or so per client: one
worker's three processes wrote 6,953 lines in 30 s with their broker gone (2026-12-01), and
the log was nothing else. A line repeating one shown less than `every` seconds before (same
logger, same message template, same level) is counted instead; the next one shown says how
many were held back. A first line is always shown, so a new kind of failure is never hidden.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two lines of one kind.
REPEAT_EVERY = 30.0
#: The loggers of the Kafka client that repeat themselves while a broker is away.
KAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
)
#: Kinds remembered at most (message templates are code, so few; a bound all the same).
MAX_KINDS = 1000


class RepeatFilter(logging.Filter):
    def __init__(
        self, every: float = REPEAT_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        #: kind -> (when last shown, repeats held back since)
        self._seen: dict[tuple[str, str, int], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg), record.levelno)
        now = self.clock()
        shown = self._seen.get(kind)
        if shown is not None and now - shown[0] < self.every:
            self._seen[kind] = (shown[0], shown[1] + 1)
            return False
        if len(self._seen) >= MAX_KINDS:
            self._seen.clear()
        self._seen[kind] = (now, 0)
        if shown is not None and shown[1]:
            since = now - shown[0]
            record.msg = f"{record.getMessage()} ({shown[1]} more like it in {since:.0f} s)"
            record.args = ()  # the message is formatted: nothing more to put in
        return True


def hold_back_repeats(every: float = REPEAT_EVERY) -> None:
    """Filter the Kafka client's loggers in this process (idempotent)."""
    for name in KAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter(every))
