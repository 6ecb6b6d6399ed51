"""Where a report is validated: raw message bytes in, a `Report` or a `Rejection` out.

Pure and allocation-light: the hot path hands the bytes straight to pydantic's
JSON validator; only CloudEvents envelopes and failures take the slower road.

Total: for any bytes at all `validate_report` returns, never raises, because one bad
message must never stall the stream that carries it. Python's own JSON parser (used
for envelopes and to explain failures) recurses, so nesting depth is bounded before
it runs; lone UTF-16 surrogate escapes (valid JSON syntax, but not Unicode) are named
as `invalid_encoding`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.codes import RejectReason
from schemas.hints import did_you_mean
from schemas.report import PATTERN_EXPLANATIONS, Report, WithdrawnReport

log = logging.getLogger(__name__)

#: Largest accepted message. A report's longest field is 4,000 characters; this leaves room.
MAX_MESSAGE_BYTES = 64 * 1024
#: Deepest JSON nesting accepted. A report needs 3 levels (envelope, report, location);
#: the margin costs nothing, and it keeps Python's recursive parser far from its limit.
MAX_DEPTH = 32
#: Field errors kept in a rejection (all are counted): a message of thousands of unknown
#: keys must not become a dead letter of thousands of entries.
MAX_ERRORS = 50
#: Longest field path and error message kept (a key may be 60 KiB long).
MAX_FIELD_CHARS = 200
MAX_ERROR_CHARS = 300
#: Longest rejection message.
MAX_MESSAGE_CHARS = 1000

#: UTF-8's byte order mark: RFC 8259 forbids it before a JSON text, and both parsers refuse it
#: with a message that does not name it.
UTF8_BOM = b"\xef\xbb\xbf"
_BOM_REJECTION_TEXT = (
    "message starts with a UTF-8 byte order mark (BOM, EF BB BF), which JSON does not "
    "allow: send the report as UTF-8 without a BOM"
)
#: Fields of a report that no CloudEvents envelope can have: attribute names there are
#: `[a-z0-9]` only (and `source` is both).
_REPORT_ONLY_FIELDS = frozenset(("report_id", "source_type", "occurred_at", "reported_at"))
#: CloudEvents 1.0 context attributes that share a name with a report field.
_CLOUDEVENTS_ATTRIBUTES = frozenset(("specversion", "id", "source", "type", "time", "subject"))
#: Report fields that have no meaning beside `data` in an envelope.
_MISPLACED_IN_ENVELOPE = (
    frozenset(Report.model_fields) | frozenset(WithdrawnReport.model_fields)
) - _CLOUDEVENTS_ATTRIBUTES

_ERROR_REASON: dict[str, RejectReason] = {
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
    "missing": RejectReason.MISSING_FIELD,
    "timezone_aware": RejectReason.MISSING_TIMEZONE,
    "future_time": RejectReason.FUTURE_TIME,
    "time_too_early": RejectReason.OUT_OF_RANGE,
    "string_too_long": RejectReason.TOO_LONG,
    "string_too_short": RejectReason.INVALID_VALUE,  # an empty string is no length problem
    "greater_than_equal": RejectReason.OUT_OF_RANGE,
    "less_than_equal": RejectReason.OUT_OF_RANGE,
    "greater_than": RejectReason.OUT_OF_RANGE,
    "less_than": RejectReason.OUT_OF_RANGE,
    "enum": RejectReason.INVALID_VALUE,
    "location_incomplete": RejectReason.INVALID_VALUE,
    "datetime_from_date_parsing": RejectReason.INVALID_VALUE,
    "datetime_parsing": RejectReason.INVALID_VALUE,
    "json_invalid": RejectReason.INVALID_JSON,
    "string_pattern_mismatch": RejectReason.INVALID_VALUE,  # times, control characters
    "not_nfc": RejectReason.INVALID_VALUE,  # an identity not in Unicode NFC
    "finite_number": RejectReason.INVALID_VALUE,  # NaN, Infinity
}

# When several fields are wrong, the reason names the most telling problem.
_REASON_PRIORITY: tuple[RejectReason, ...] = (
    RejectReason.UNSUPPORTED_VERSION,
    RejectReason.UNKNOWN_FIELD,
    RejectReason.MISSING_FIELD,
    RejectReason.MISSING_TIMEZONE,
    RejectReason.FUTURE_TIME,
    RejectReason.OUT_OF_RANGE,
    RejectReason.TOO_LONG,
    RejectReason.INVALID_VALUE,
    RejectReason.INVALID_TYPE,
)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    type: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "type": self.type, "message": self.message}


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    message: str
    errors: tuple[FieldError, ...] = field(default=())


def validate_report(
    raw: bytes, *, now: datetime | None = None
) -> Report | WithdrawnReport | Rejection:
    """Validate one message: a report, a withdrawal (`withdrawn: true`), or why neither.
    `now` pins the clock for the future-time check."""
    try:
        return _validate(raw, now)
    except Exception as exc:  # a bug here must cost one message, not the stream
        log.exception("validation failed on a %d-byte message", len(raw))
        return Rejection(
            RejectReason.INTERNAL_ERROR, clip(f"validation failed: {type(exc).__name__}: {exc}")
        )


def parse_json(raw: bytes) -> Any | Rejection:
    """Decode a JSON document (e.g. a request body) without the failure modes of a bare
    `json.loads`: not UTF-8, nested too deep, a number too long to convert, a key given
    twice in one object."""
    value = _decode(raw)
    if isinstance(value, Rejection):
        return value
    twice = duplicate_key(raw, count_keys(value))
    return value if twice is None else _twice(twice)


def _decode(raw: bytes) -> Any | Rejection:
    """`parse_json` but for repeated keys (the last is kept)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(RejectReason.INVALID_ENCODING, clip(f"message is not UTF-8: {err}"))
    if raw.startswith(UTF8_BOM):
        return Rejection(RejectReason.INVALID_JSON, _BOM_REJECTION_TEXT)
    deep = _too_deep(raw)
    if deep is not None:
        return deep
    try:
        value = json.loads(text)
    except ValueError as exc:
        if "int_max_str_digits" in str(exc):
            # Python's own advice ("use sys.set_int_max_str_digits()") is for a programmer.
            return Rejection(
                RejectReason.INVALID_JSON,
                f"message is not JSON the monitor reads: a number is longer than "
                f"{sys.get_int_max_str_digits()} digits",
            )
        return Rejection(RejectReason.INVALID_JSON, clip(f"message is not JSON: {exc}"))
    return value


def count_keys(value: Any) -> int:
    """Keys of every object in a decoded JSON value (no recursion: `_too_deep` bounds the
    depth, but a list is as cheap)."""
    n, todo = 0, [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            n += len(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return n


def encode_json(obj: Any) -> bytes | Rejection:
    """UTF-8 JSON of a decoded value, or why it has none (lone surrogates, depth)."""
    try:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        return _lone_surrogate(err)
    except RecursionError:
        return Rejection(RejectReason.TOO_DEEP, f"JSON nested more than {MAX_DEPTH} levels deep")
    except (TypeError, ValueError) as exc:
        return Rejection(RejectReason.INVALID_VALUE, clip(f"not a JSON value: {exc}"))


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validate(raw: bytes, now: datetime | None) -> Report | WithdrawnReport | Rejection:
    if len(raw) > MAX_MESSAGE_BYTES:
        return Rejection(
            RejectReason.TOO_LARGE, f"message is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}"
        )
    context = {"now": now} if now is not None else None
    if b'"specversion"' in raw:
        unwrapped = _unwrap_cloudevent(raw)
        if isinstance(unwrapped, Rejection):
            return unwrapped
        raw = unwrapped
    valid: Report | WithdrawnReport
    try:
        valid = Report.model_validate_json(raw, context=context)
    except ValidationError as exc:
        # A withdrawal fails as a report on `withdrawn` (and on what it leaves out). Only then
        # is it validated as a withdrawal: the hot path of reports pays nothing for the shape.
        if not _says_withdrawn(exc):
            return _rejection_from(exc, raw)
        try:
            valid = WithdrawnReport.model_validate_json(raw, context=context)
        except ValidationError as wexc:
            return _rejection_from(wexc, raw)
    twice = duplicate_key(raw, _keys_given(valid))
    if twice is not None:
        return _twice(twice)
    return valid


#: Where a key of a JSON object ends: its closing quote, then the colon. Each key gives one
#: match; a string value gives one only where an escaped quote is followed by a colon.
_KEY_END = re.compile(rb'"[ \t\n\r]*:')


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def duplicate_key(raw: bytes, keys: int) -> str | None:
    """A key given twice in one object of the JSON document `raw`, whose parse (which
    keeps the last of each) has `keys` keys in all; None when there is none. The parsers
    keep the last value and say nothing: a gateway repeating `casualties` would change the
    figures unseen. Fast: when `raw` has no more key ends than `keys`, no key repeats;
    only then is it parsed again to find the key."""
    if not (b'" ' in raw or b'"\n' in raw or b'"\t' in raw or b'"\r' in raw):
        # no blank after a quote: every key end is `":`, counted in C (a third of the cost)
        if raw.count(b'":') <= keys:
            return None
    elif len(_KEY_END.findall(raw)) <= keys:
        return None
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        return dup.key
    except ValueError:  # parsed once already: cannot happen, and is no duplicate
        return None
    return None


def _twice(key: str) -> Rejection:
    return Rejection(
        RejectReason.INVALID_JSON,
        clip(
            f"key {key!r} is given twice in one object; give each key once "
            "(a JSON parser would silently keep only the last value)"
        ),
    )


def _keys_given(report: Report | WithdrawnReport) -> int:
    """Keys the JSON of a validated report held: every field given, and those of its two
    objects (unknown keys are refused, so there were no others)."""
    n = len(report.model_fields_set)
    for part in (report.location, report.casualties):
        if part is not None:
            n += len(part.model_fields_set)
    return n


def _says_withdrawn(exc: ValidationError) -> bool:
    """Whether the input has `"withdrawn": true` (at its top level)."""
    return any(
        e["loc"] == ("withdrawn",) and e["input"] is True
        for e in exc.errors(include_url=False, include_context=False)
    )


#: CloudEvents 1.0's required context attributes besides `specversion`
_REQUIRED_ATTRIBUTES = ("id", "source", "type")


def _unwrap_cloudevent(raw: bytes) -> bytes | Rejection:
    envelope = parse_json(raw)
    if isinstance(envelope, Rejection):
        return _explained(raw, envelope)
    if not isinstance(envelope, dict) or "specversion" not in envelope:
        # A report whose description merely mentions "specversion".
        return raw
    if (
        "data" not in envelope
        and "data_base64" not in envelope
        and (_REPORT_ONLY_FIELDS & envelope.keys())
    ):
        # A bare report with a stray `specversion`: validated as a report, which names
        # `specversion` as an unknown field, rather than as an envelope without `data`.
        return raw
    if envelope.get("specversion") != "1.0":
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            clip(
                f"unsupported CloudEvents specversion {envelope.get('specversion')!r}; "
                "expected '1.0'"
            ),
        )
    lacking = [
        a for a in _REQUIRED_ATTRIBUTES if not isinstance(envelope.get(a), str) or not envelope[a]
    ]
    if lacking:
        # CloudEvents 1.0 requires them: an envelope without them is not one (a sender's bug)
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            "CloudEvents envelope lacks the required attribute(s) "
            + ", ".join(f"`{a}`" for a in lacking)
            + " (each a non-empty string)",
        )
    content_type = envelope.get("datacontenttype", "application/json")
    if not isinstance(content_type, str) or not is_json_media_type(content_type):
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            clip(f"CloudEvents datacontenttype {content_type!r} is not JSON"),
        )
    if not isinstance(envelope.get("data"), dict):
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            "CloudEvents envelope has no JSON object in `data` (data_base64 is not supported)",
        )
    misplaced = sorted(_MISPLACED_IN_ENVELOPE & envelope.keys())
    if misplaced:
        # `withdrawn: true` beside `data` was ignored: a withdrawal counted as a report.
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            clip(
                "report field(s) "
                + ", ".join(f"`{f}`" for f in misplaced)
                + " beside the CloudEvents envelope's `data`, where they would be ignored: "
                "put them in `data`"
            ),
        )
    # `data` goes through pydantic's JSON validator like a bare report, so both give the
    # same answers; NaN / Infinity survive the round trip and are refused there.
    return encode_json(envelope["data"])


def is_json_media_type(value: str) -> bool:
    """Whether a media type (RFC 6838) is JSON: `application/json`, `text/json` or a `+json`
    suffix (RFC 6839), in any case, with any parameters (`; charset=utf-8`)."""
    kind, slash, subtype = value.partition(";")[0].strip().lower().partition("/")
    return (
        slash == "/"
        and kind in ("application", "text")
        and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))
    )


def _explained(raw: bytes, rejection: Rejection) -> Rejection:
    """An undecodable message's rejection, with emptiness said in so many words."""
    if not raw.strip():
        return Rejection(
            RejectReason.INVALID_JSON, "message is empty" if not raw else "message is blank"
        )
    return rejection


def _undecodable(raw: bytes, parser_message: str) -> Rejection:
    """Why pydantic's JSON parser refused `raw`, named as precisely as can be."""
    if raw.startswith(UTF8_BOM):
        return Rejection(RejectReason.INVALID_JSON, _BOM_REJECTION_TEXT)
    doc = _decode(raw)  # what is wrong with it besides a key given twice
    if isinstance(doc, Rejection):
        if doc.reason is RejectReason.INVALID_JSON:
            # pydantic's message gives line and column; Python's words it differently
            doc = Rejection(
                RejectReason.INVALID_JSON, clip(f"message is not JSON: {parser_message}")
            )
        return _explained(raw, doc)
    # Python's parser admits what pydantic's refuses: lone surrogate escapes ("\ud800")
    # are JSON syntax but not Unicode text; a number too long for pydantic.
    encoded = encode_json(doc)
    if isinstance(encoded, Rejection):
        return encoded
    return Rejection(RejectReason.INVALID_JSON, clip(f"message is not JSON: {parser_message}"))


def _lone_surrogate(err: UnicodeEncodeError) -> Rejection:
    char = err.object[err.start]
    return Rejection(
        RejectReason.INVALID_ENCODING,
        f"a string holds the lone surrogate escape \\u{ord(char):04x}: "
        "\\u escapes must form valid UTF-16 (a high surrogate followed by a low one)",
    )


#: A JSON string (possibly unterminated), matched without backtracking so that any
#: input costs linear time.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _too_deep(raw: bytes) -> Rejection | None:
    """A rejection when `raw` nests deeper than MAX_DEPTH (brackets in strings aside)."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:  # every real report: no scan
        return None
    depth = 0
    for c in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if c in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                return Rejection(
                    RejectReason.TOO_DEEP,
                    f"JSON nested more than {MAX_DEPTH} levels deep; a report needs 3",
                )
        else:
            depth -= 1
    return None


def _rejection_from(exc: ValidationError, raw: bytes) -> Rejection:
    deep = _too_deep(raw)  # the same answer for a deep report, bare or in an envelope
    if deep is not None:
        return deep
    details = exc.errors(include_url=False)
    for d in details:  # a check of the whole report names its field in its context
        if not d["loc"] and d["type"] in ("future_time", "not_nfc"):
            d["loc"] = (str(d.get("ctx", {}).get("field", "")),)
    if len(details) == 1 and not details[0]["loc"]:
        kind = details[0]["type"]
        if kind == "json_invalid":
            return _undecodable(raw, details[0]["msg"])
        return Rejection(
            RejectReason.NOT_AN_OBJECT, f"a report must be a JSON object: {details[0]['msg']}"
        )
    # JSON, with field errors: a key given twice first, since they may come from the value
    # kept of it (and a sender fixing only them would be refused next for the key)
    doc = _decode(raw)
    twice = None if isinstance(doc, Rejection) else duplicate_key(raw, count_keys(doc))
    if twice is not None:
        return _twice(twice)
    errors = tuple(
        FieldError(
            field=clip(_field_path(d["loc"]), MAX_FIELD_CHARS),
            type=d["type"],
            message=clip(_message(d), MAX_ERROR_CHARS),
        )
        for d in details
    )
    reasons = {_reason_for(e) for e in errors}
    reason = next((r for r in _REASON_PRIORITY if r in reasons), RejectReason.INVALID_TYPE)
    # the errors of the reason given first: the message leads with what the reason says
    errors = tuple(sorted(errors, key=lambda e: _reason_for(e) is not reason))
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return Rejection(reason, clip(summary), errors[:MAX_ERRORS])


def _field_path(loc: tuple[int | str, ...]) -> str:
    # An empty key is shown as "" rather than vanish from the path.
    return ".".join(str(part) if part != "" else '""' for part in loc) or "$"


#: The codes in pydantic's `expected` of an enum error ("'a', 'b' or 'c'").
_QUOTED = re.compile(r"'([^']*)'")


def _message(detail: ErrorDetails) -> str:
    """pydantic's message, or a plainer one where pydantic's would quote a regex or a bound."""
    kind = detail["type"]
    if kind == "string_pattern_mismatch":
        explain = PATTERN_EXPLANATIONS.get(detail.get("ctx", {}).get("pattern", ""))
        if explain is not None and isinstance(detail["input"], str):
            return explain(detail["input"])
    elif kind == "datetime_from_date_parsing":
        # A time is parsed leniently once its form is checked (schemas/report.py), which
        # would offer a date too: only a date-time is wanted.
        return detail["msg"].replace("valid datetime or date,", "valid datetime,")
    elif kind == "enum" and isinstance(detail["input"], str):
        codes = _QUOTED.findall(str(detail.get("ctx", {}).get("expected", "")))
        meant = did_you_mean(detail["input"], codes)
        if meant is not None:
            return f"did you mean {meant!r}? The codes: {', '.join(codes)}"
    elif detail["loc"] == ("schema_version",) and not _is_type_error(kind):
        return f"schema version {str(detail['input'])[:20]} is not supported; this monitor reads 1"
    return detail["msg"]


def _is_type_error(kind: str) -> bool:
    return kind.endswith("_type") or kind.endswith("_parsing")


def _reason_for(error: FieldError) -> RejectReason:
    if error.field == "schema_version" and not _is_type_error(error.type):
        # `2` is a version this monitor does not read; `"1"` or `true` is no version at all.
        return RejectReason.UNSUPPORTED_VERSION
    if error.type in _ERROR_REASON:
        return _ERROR_REASON[error.type]
    if _is_type_error(error.type):
        return RejectReason.INVALID_TYPE
    return RejectReason.INVALID_VALUE
