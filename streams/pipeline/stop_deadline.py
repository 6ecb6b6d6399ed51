"""The end of a stop that cannot finish: a worker whose broker is gone, or any stop that
takes far longer than stops do.

On SIGTERM with its broker gone, a worker waited about 75 s before it exited: its child
processes 15 s for a broker to leave their groups on, then Faust's consumer thread 60 s for a
fetch that will never answer. Waiting buys nothing then: every step's state is in the
changelogs and its offsets committed before the next step began, so exiting is what a kill
is, which the chaos test proves loses nothing. So once the children are stopped, the process
exits after a short grace whatever Faust still waits for, saying why. A stop that began
with the broker answering gets a long deadline (`WITH_BROKER`) in case something else
holds it: a broker lost just after the stop began left the worker waiting for good (the
embedded broker, reached by the terminal's Ctrl-C too, did that every time).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds a child process gets to stop when the broker is gone (15 otherwise).
CHILD_STOP_WITHOUT_BROKER = 3.0
#: Seconds Faust's own stop gets after the children, with the broker gone.
GRACE_WITHOUT_BROKER = 5.0
#: Seconds a whole stop may take with the broker answering (the children's 15 s, the last
#: commits, leaving the groups: about 3 s measured): then the process exits as a kill would.
WITH_BROKER = 60.0

_cleanups: list[Callable[[], None]] = []
_armed: threading.Timer | None = None
_due = 0.0  # when the armed deadline falls (time.monotonic)


def at_forced_exit(cleanup: Callable[[], None]) -> None:
    """Run `cleanup` before a forced exit (what `finally` blocks would have done: stop an
    embedded broker this process started)."""
    _cleanups.append(cleanup)


def _exit_now(code: int) -> None:
    logging.shutdown()  # flush the log: os._exit skips it
    os._exit(code)


def exit_after(seconds: float, why: str, *, exit: Callable[[int], object] = _exit_now) -> None:
    """Exit the process (code 0: a stop, as asked) in `seconds` unless it has ended by
    then. The earliest deadline asked for holds."""
    global _armed, _due
    due = time.monotonic() + seconds
    if _armed is not None:
        if _due <= due:
            return
        _armed.cancel()

    def forced() -> None:
        log.error("stopping without waiting any longer: %s", why)
        for cleanup in _cleanups:
            try:
                cleanup()
            except Exception:  # the exit must happen whatever a cleanup does
                log.exception("cleanup before the forced exit failed")
        exit(0)

    _armed, _due = threading.Timer(seconds, forced), due
    _armed.daemon = True  # a stop that ends in time is not held by it
    _armed.start()


def disarm() -> None:
    """Cancel the deadline (tests)."""
    global _armed
    if _armed is not None:
        _armed.cancel()
    _armed = None
    _cleanups.clear()
