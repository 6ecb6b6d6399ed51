"""Process-wide settings a worker needs under load, applied once it starts (`Ingest.start`).

* The root logger level. `faust.Worker` sets the root logger to DEBUG for its start-up
  spinner whenever the log level is WARN or above (`Worker._setup_spinner_handler`) and never
  sets it back, so every `log.debug` of aiokafka (one per record sent, per fetch) built a
  LogRecord that every handler dropped: 6 % of the worker's CPU under load (py-spy).
* The garbage collector's thresholds. A step holds the objects of thousands of reports until
  it is committed; with CPython's default (700, 10, 10) they outlive two young collections,
  are promoted to the oldest generation and set off full collections, each traversing the
  whole state (hundreds of MB with 100,000 reports). Young collections every 100,000
  allocations let a step's objects die young: 12 % less CPU per report at 100,000 reports
  (docs/operations.md, "Throughput"). Every 1,000,000: a young collection still walks the
  step's objects alive at that moment, so ten times fewer of them walk them ten times less
  (GC time of a 100,000-report drain 0.75-0.80 s -> 0.50 s). Reference cycles are still
  collected, later.
* Two malloc arenas at most (`limit_malloc_arenas`, when the worker is composed, before its
  threads start). glibc gives each thread that contends for the heap an arena of its own,
  up to eight per core, and memory freed in one is reused only by its threads: Faust's
  consumer thread and the event loop's each kept their own high-water mark. Measured with a
  million-report backlog and `MALLOC_ARENA_MAX=2` (which an operator's environment still
  sets, and this then leaves alone): 1,021 -> 785 MiB once all was counted.
* Freed memory handed back after every step (`release_free_memory`). A step's objects die
  among the state's, so glibc keeps the pages they held: with steps of 16,384 records a
  100,000-report backlog drain peaked at ~900 MB RSS of which `malloc_trim` could hand back
  ~450 MB at the end. A trim costs a few ms, so at most one a second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any

#: Allocations between young collections; young collections between middle ones; middle
#: collections between full ones (CPython also waits for the old generation to grow by 25 %).
GC_THRESHOLDS = (1_000_000, 20, 10)


def _libc_function(name: str) -> Any:
    """A function of the C library, or None (not found, or not glibc's: `malloc_trim` and
    `mallopt`'s arena limit are glibc only, not musl's or macOS's)."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        return getattr(ctypes.CDLL(path), name, None)
    except OSError:
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()

#: glibc's `mallopt` parameter for the most arenas (malloc.h: M_ARENA_MAX)
_M_ARENA_MAX = -8
ARENAS = 2


def limit_malloc_arenas() -> bool:
    """At most ARENAS malloc arenas (glibc), unless MALLOC_ARENA_MAX is set; whether set."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, ARENAS))


#: Fewest seconds between two trims: a trim costs ~4 ms over a heap of 700 MB, and a backlog
#: drain ends a step of some stage every few tens of ms once the stages keep up.
TRIM_EVERY = 1.0
_last_trim = 0.0


def release_free_memory(*, now: bool = False) -> None:
    """Hand the pages of freed memory back to the system (glibc), after a step; at most
    once per TRIM_EVERY seconds, unless `now` (after a recovery, which may be the last
    work for a long while)."""
    global _last_trim
    if _TRIM is None:
        return
    at = time.monotonic()
    if now or at - _last_trim >= TRIM_EVERY:
        _last_trim = at
        _TRIM(0)


def restore_root_level() -> None:
    """Set the root logger to the lowest level one of its handlers emits, if Faust lowered
    it to DEBUG for its spinner alone. A handler at DEBUG (or NOTSET) keeps DEBUG."""
    root = logging.getLogger()
    if root.level != logging.DEBUG:
        return
    # Here, not at the top: the ingest process imports this module and not Faust (20 MB).
    from faust.utils.terminal import SpinnerHandler

    levels = [h.level for h in root.handlers if not isinstance(h, SpinnerHandler)]
    if levels and min(levels) > logging.DEBUG:
        root.setLevel(min(levels))


def tune_for_throughput() -> None:
    """Both of the above; idempotent."""
    restore_root_level()
    gc.set_threshold(*GC_THRESHOLDS)
