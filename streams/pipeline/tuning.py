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
  (docs/operations.md, "Throughput"). Reference cycles are still collected, later.
"""

from __future__ import annotations

import gc
import logging

from faust.utils.terminal import SpinnerHandler

#: Allocations between young collections; young collections between middle ones; middle
#: collections between full ones (CPython also waits for the old generation to grow by 25 %).
GC_THRESHOLDS = (100_000, 50, 10)


def restore_root_level() -> None:
    """Set the root logger to the lowest level one of its handlers emits, if Faust lowered
    it to DEBUG for its spinner alone. A handler at DEBUG (or NOTSET) keeps DEBUG."""
    root = logging.getLogger()
    if root.level != logging.DEBUG:
        return
    levels = [h.level for h in root.handlers if not isinstance(h, SpinnerHandler)]
    if levels and min(levels) > logging.DEBUG:
        root.setLevel(min(levels))


def tune_for_throughput() -> None:
    """Both of the above; idempotent."""
    restore_root_level()
    gc.set_threshold(*GC_THRESHOLDS)
