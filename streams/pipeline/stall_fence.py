"""Pauses of a process's event loop longer than its group's session timeout.

A worker paused that long (SIGSTOP, a suspended VM, a machine swapping) has been put out
of its consumer groups while it slept, and its partitions given to another worker, but it
does not know that until a heartbeat answers after it wakes. A step it was writing then
lands after the next owner read the changelog: a state older than the one the next owner
went on from, on every later recovery (measured: two incidents held a superseded revision
on every worker after 12-15 s pauses with a 6 s session timeout). Kafka transactions would
fence such a write; the monitor does not use them. `Stage` instead asks the fence, before
a step's sends and again before its changelog write, whether the loop paused longer than
the session timeout since the step began: if so, the step is dropped as a revoked one
is, and the stage recovers its state again from the changelog (`Stage.check_owned`).

A pause is seen by a ticker (`TICK_SECONDS`) and by every question: whichever runs first
after the loop wakes finds the gap since the loop last ran. Gaps count from the ticker's
first tick (Faust starts its timers after the worker started: before that, a gap between
two questions is not the loop's pause). A pause after the last
question of a step (within a write already handed to the producer) is not seen in time:
this narrows the window, it does not close it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: How often the ticker looks: a pause is measured to within this.
TICK_SECONDS = 0.5


class StallFence:
    """Counts the loop's pauses longer than `limit` seconds (`pauses`)."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._last = 0.0
        self._armed = False  # by the first tick
        #: pauses seen so far; a step compares the count at its start with the count now
        self.pauses = 0
        #: the last pause seen, in seconds (for the log line)
        self.last_pause = 0.0

    def look(self) -> int:
        """The pauses seen, this moment included (the loop is running now)."""
        now = self._clock()
        gap = now - self._last
        self._last = now
        if self._armed and gap > self.limit:
            self.pauses += 1
            self.last_pause = gap
        return self.pauses

    async def tick(self) -> None:
        """The ticker's work (`timers.every`)."""
        if not self._armed:
            self._armed = True
            self._last = self._clock()
        self.look()
