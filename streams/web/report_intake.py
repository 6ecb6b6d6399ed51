"""The body of POST /api/v1/reports: what its headers must say, reading it within its
limit, and each report it carries accepted or rejected (`examine_body`; pure, run off the
event loop), with the dead letter of each rejected one (`http_dead_letter`). Each item is
validated and classified as ingest does it (`streams/intake.py`); the handler that sends
them on is `Api.post_reports` (`streams/web/api.py`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aiohttp import StreamReader, web

from schemas.codes import RejectReason
from schemas.dead_letter import dead_letter
from schemas.validation import MAX_MESSAGE_BYTES, Rejection, is_json_media_type, validate_report
from streams.classify.classifier import Classifier
from streams.intake import classify_report
from streams.web.jsonsplit import SplitError, TooManyElements, is_array, split_array
from streams.web.responses import error
from streams.web.tokens import Poster, claimed_source, first_outside

#: Most reports one POST may carry; more is refused whole (413) before any is validated.
MAX_BATCH = 1000
HTTP_SOURCE = "http"
#: The Content-Encodings of a POST body the server decodes ("": none given).
BODY_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
#: Most bytes of a rejected item its dead-letter record keeps: the largest report the
#: schema accepts, so any item that could have been valid is kept whole, while the record
#: (base64 and text of it, plus the errors) stays well under Kafka's default 1 MiB limit.
#: A larger item is kept truncated, and its record's message says so.
DEAD_LETTER_KEEP = MAX_MESSAGE_BYTES
#: Most field errors a dead-letter record lists, for the same limit (the message counts all).
DEAD_LETTER_ERRORS = 100


def browser_problem(
    origin: str | None, fetch_site: str | None, allowed: frozenset[str]
) -> str | None:
    """Why a POST looks sent by a web page, which no reporting system is; None when it does
    not. A browser sends `Origin` with every POST of a script or a form, and
    `Sec-Fetch-Site` (other than `none`, a user's own navigation) with every request: a page
    of any site could post reports without either a preflight or the token (a body sent
    without Content-Type), or reach the worker under its own host name (DNS rebinding).
    Origins in `allowed` (CEASEFIRE_POST_ORIGINS) may post."""
    site = (fetch_site or "").strip().lower()
    if origin is None and site in ("", "none"):
        return None
    if origin is not None and origin.strip().rstrip("/").lower() in allowed:
        return None
    said = f"Origin: {origin[:100]!r}" if origin is not None else f"Sec-Fetch-Site: {site[:20]!r}"
    return (
        f"POST /api/v1/reports from a web page is refused (the request carries {said}): "
        "reports are posted by reporting systems, without a browser; to take posts from "
        "pages of a trusted origin, name it in CEASEFIRE_POST_ORIGINS"
    )


def content_type_problem(header: str | None) -> str | None:
    """Why a Content-Type cannot be read as a report body; None when it can. JSON types
    (`application/json`, `text/json`, a `+json` suffix such as CloudEvents'; as a CloudEvent's
    `datacontenttype` is judged) are read, and so is a request without one, as clients that
    send no header mean JSON here."""
    if header is None or not header.strip():
        return None
    mime, *params = (part.strip() for part in header.split(";"))
    mime = mime.lower()
    if not is_json_media_type(mime):
        return (
            f"Content-Type {mime!r} is not JSON; send application/json "
            "(curl: --json @file, or -H 'Content-Type: application/json')"
        )
    for param in params:
        name, _, charset = param.partition("=")
        charset = charset.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return f"charset {charset!r} is not supported; JSON bodies must be UTF-8"
    return None


async def read_body(stream: StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it proves longer than `limit` (no Content-Length,
    a lying one, or a compressed body that expands)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(limit: int, size: int | None = None) -> web.Response:
    got = f" ({size} bytes)" if size is not None else ""
    return error(
        413,
        f"request body is larger than {limit} bytes{got} (CEASEFIRE_MAX_BODY_BYTES); "
        "send fewer reports per request",
        limit=limit,
    )


# -- the body (pure) --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Accepted:
    index: int
    raw: bytes
    key: str
    source: str
    report_id: str


@dataclass(frozen=True, slots=True)
class RejectedItem:
    index: int
    raw: bytes
    rejection: Rejection

    def as_dict(self) -> dict[str, Any]:
        r = self.rejection
        return {
            "index": self.index,
            "reason": r.reason.value,
            "message": r.message,
            "errors": [e.as_dict() for e in r.errors],
        }


@dataclass(frozen=True, slots=True)
class Refused:
    """The body as a whole is refused. `dead` is what goes to the dead-letter topic: the
    body when it was read as one item, nothing when the request was merely too big."""

    status: int
    message: str
    reason: RejectReason | None = None
    dead: RejectedItem | None = None


#: A single-report body rejected for what it is as a document answers 4xx, not 202.
_BODY_STATUS = {
    RejectReason.INVALID_JSON: 400,
    RejectReason.INVALID_ENCODING: 400,
    RejectReason.TOO_DEEP: 400,
    RejectReason.TOO_LARGE: 413,
}


def examine_item(
    index: int, raw: bytes, *, received: datetime, classifier: Classifier
) -> Accepted | RejectedItem:
    result = validate_report(raw, now=received)  # total: never raises
    if isinstance(result, Rejection):
        return RejectedItem(index, raw, result)
    # Check the place now, so the caller learns of an unknown place at once.
    classified = classify_report(result, received, classifier)
    if isinstance(classified, Rejection):
        return RejectedItem(index, raw, classified)
    key, _ = classified
    return Accepted(index, raw, key, result.source, result.report_id)


def examine_body(
    body: bytes, *, received: datetime, classifier: Classifier, max_items: int = MAX_BATCH
) -> list[Accepted | RejectedItem] | Refused:
    """Each report of a body (one JSON object, or an array of them) accepted or rejected,
    each from its own bytes as sent; or the body refused as a whole."""
    if not is_array(body):
        item = examine_item(0, body, received=received, classifier=classifier)
        if isinstance(item, RejectedItem) and item.rejection.reason in _BODY_STATUS:
            r = item.rejection
            return Refused(_BODY_STATUS[r.reason], r.message, r.reason, item)
        return [item]
    try:
        spans = split_array(body, max_elements=max_items)
    except TooManyElements:
        return Refused(413, f"at most {max_items} reports per request; split the batch")
    except SplitError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            message = f"request body is not UTF-8: {err}"
            rejection = Rejection(RejectReason.INVALID_ENCODING, message)
        else:
            rejection = Rejection(RejectReason.INVALID_JSON, f"request body is not JSON: {exc}")
        return Refused(400, rejection.message, rejection.reason, RejectedItem(0, body, rejection))
    return [
        examine_item(i, body[start:end], received=received, classifier=classifier)
        for i, (start, end) in enumerate(spans)
    ]


def item_sources(examined: list[Accepted | RejectedItem] | Refused) -> list[tuple[int, str]]:
    """(index, source) of each item of a body that names its source: an accepted report's,
    and a rejected item's string `source` (it would be dead-lettered under that name).
    Items that are no JSON object, or without a string `source`, name none."""
    if isinstance(examined, Refused):
        items: list[Accepted | RejectedItem] = [] if examined.dead is None else [examined.dead]
    else:
        items = examined
    named = []
    for item in items:
        source = item.source if isinstance(item, Accepted) else claimed_source(item.raw)
        if source is not None:
            named.append((item.index, source))
    return named


def outside_scope(
    examined: list[Accepted | RejectedItem] | Refused, poster: Poster
) -> tuple[int, str] | None:
    """The first item's (index, source) of a body that `poster` may not post."""
    return first_outside(item_sources(examined), poster)


def http_dead_letter(item: RejectedItem, received: datetime) -> bytes:
    """The dead-letter record of a rejected item: its bytes as sent, bounded (see
    DEAD_LETTER_KEEP) so that the record always fits a Kafka message."""
    raw, rejection, size = item.raw, item.rejection, len(item.raw)
    if len(raw) > DEAD_LETTER_KEEP:
        kept = _utf8_prefix(raw, DEAD_LETTER_KEEP)
        note = f" (this record keeps its first {len(kept)} of {len(raw)} bytes)"
        rejection = replace(rejection, message=rejection.message + note)
        raw = kept
    if len(rejection.errors) > DEAD_LETTER_ERRORS:
        rejection = replace(rejection, errors=rejection.errors[:DEAD_LETTER_ERRORS])
    return dead_letter(
        raw,
        rejection,
        topic=HTTP_SOURCE,
        partition=None,
        offset=None,
        key=None,
        received_at=received,
        size=size,
    )


def _utf8_prefix(raw: bytes, size: int) -> bytes:
    """At most `size` bytes of `raw`, not cutting a UTF-8 character in two."""
    end = size
    while end > size - 3 and end > 0 and raw[end] & 0xC0 == 0x80:
        end -= 1
    return raw[:end]
