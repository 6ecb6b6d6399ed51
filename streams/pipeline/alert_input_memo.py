"""The alert inputs a worker's zone stage wrote, kept by their bytes until its alert stage
reads them back from `ceasefire.incidents.by-zone`.

Both stages run in the worker's process and own the same partitions (their topics have one
partition count, and Faust assigns them together), so most inputs the alert stage reads
were encoded here moments before: it takes the value the bytes were encoded from instead of
parsing them again (a dict lookup against pydantic's 2.5 to 4 µs; the parse was a third of
the alert stage's time). The topic stays the one way in: an input is read from it, with
its offset, whatever the memo holds, and one the memo does not hold (written by another
worker, before a restart, in an earlier form, or read a second time by a retried step) is
parsed. A value and its bytes are the same input (`tests/test_alert_input.py`: reading
what was encoded gives it back). Bounded: the oldest go first.
"""

from __future__ import annotations

from schemas.alert_input import AlertInput, read_alert_input

#: Inputs held at most: about 600 bytes each; the alert stage trails the zone stage by a
#: few steps at most while both own the partition.
LIMIT = 20_000


class AlertInputMemo:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._held: dict[bytes, AlertInput] = {}
        #: reads that found their input held, and reads that parsed
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._held)

    def put(self, raw: bytes, value: AlertInput) -> None:
        """`raw` is `encode_alert_input(value)`."""
        held = self._held
        if len(held) >= self.limit:
            del held[next(iter(held))]  # the oldest: dicts keep insertion order
        held[raw] = value

    def read(self, raw: bytes) -> AlertInput:
        """`read_alert_input(raw)`, without the parse when `raw` is held (then no more)."""
        found = self._held.pop(raw, None)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return read_alert_input(raw)
