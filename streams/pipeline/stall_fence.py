"""Pauses of a process's event loop longer than its group's session timeout.

A worker paused that long (SIGSTOP, a suspended VM, a machine swapping) has been put out
of its consumer groups while it slept, and its partitions given to another worker, but it
does not know that until a heartbeat answers after it wakes. A step it was writing, or one
it began on waking, then lands after the next owner read the changelog: a state older than
the one the next owner went on from, on every later recovery (measured: two incidents held
a superseded revision on every worker after 12-15 s pauses with a 6 s session timeout).
Kafka transactions would fence such a write; the monitor does not use them. Instead every
stage listens to the fence (`Stage._paused`): a pause longer than the session timeout
revokes it as a rebalance would (a step being written writes no more, none is taken), and
it recovers its state again from the changelog once a rebalance has had time to be heard.

A pause is seen by a ticker (`TICK_SECONDS`) and by every look a stage takes at the start
of a step and before its writes (`Stage.check_owned`): whichever runs first after the loop
wakes finds the gap since the loop last ran. Gaps count from the ticker's first tick (Faust
starts its timers once the worker has started: before that, a gap between two looks is
not the loop's pause). A pause after a step's last look, its writes already handed to the
producer, is not seen in time: this narrows the window, it does not close it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: told of each pause: (its seconds, the limit)
Listener = Callable[[float, float], None]

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
        #: the last pause seen, in seconds
        self.last_pause = 0.0
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """`listener` is called, once, at the first look after each pause."""
        self._listeners.append(listener)

    def look(self) -> int:
        """The pauses seen, this moment included (the loop is running now)."""
        now = self._clock()
        gap = now - self._last
        self._last = now
        if self._armed and gap > self.limit:
            self.pauses += 1
            self.last_pause = gap
            for listener in self._listeners:
                listener(gap, self.limit)
        return self.pauses

    async def tick(self) -> None:
        """The ticker's work (`timers.every`)."""
        if not self._armed:
            self._armed = True
            self._last = self._clock()
        self.look()
