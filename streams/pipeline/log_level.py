"""Undo the root logger level Faust's worker leaves behind.

`faust.Worker` sets the root logger to DEBUG for its start-up spinner whenever the log level
is WARN or above (`Worker._setup_spinner_handler`), and never sets it back. Every
`log.debug` of aiokafka (one per record sent, per fetch) then builds a LogRecord that every
handler drops: 6 % of the worker's CPU under load, measured with py-spy (docs/operations.md,
"Throughput").
"""

from __future__ import annotations

import logging

from faust.utils.terminal import SpinnerHandler


def restore_root_level() -> None:
    """Set the root logger to the lowest level one of its handlers emits, if Faust lowered
    it to DEBUG for its spinner alone. A handler at DEBUG (or NOTSET) keeps DEBUG."""
    root = logging.getLogger()
    if root.level != logging.DEBUG:
        return
    levels = [h.level for h in root.handlers if not isinstance(h, SpinnerHandler)]
    if levels and min(levels) > logging.DEBUG:
        root.setLevel(min(levels))
