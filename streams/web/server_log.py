"""What the HTTP server logs of its clients' errors: one line each, repeats held back.

aiohttp logs a malformed request (a line over 8 KiB, a bad method, too many headers) as an
ERROR with a ten-line traceback of its own parser, and asyncio a refused connection (the
process out of file handles) the same way, once per attempt: a review's client with no token
wrote 2.5 million lines, 188 MB, in 65 s. A client's bad request is the client's error, not
the worker's: one INFO line saying what was wrong; and each kind of line is shown at most
every 30 s with the count held back (`RepeatFilter`).
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

from streams.kafka.log_repeats import RepeatFilter

#: The loggers a client can make write: aiohttp's server, and asyncio's (accept errors).
HTTP_LOGGERS = ("aiohttp.server", "asyncio")


class ClientErrorFilter(logging.Filter):
    """A request the server could not parse: one INFO line naming what was wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # what was wrong, without the bytes the client sent (a repeat is then one kind)
            said = str(exc.message).split(":")[0].strip()[:120] or type(exc).__name__
            record.msg = f"{record.getMessage()}: {exc.code} {said}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_client_errors() -> None:
    """Filter the HTTP server's loggers in this process (idempotent)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in server.filters):
        server.addFilter(ClientErrorFilter())  # first: a repeat is judged by its new form
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())
