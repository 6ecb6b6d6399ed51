"""Where a report is validated: raw message bytes in, a `Report` or a `Rejection` out.

Pure and allocation-light: the hot path hands the bytes straight to pydantic's
JSON validator; only CloudEvents envelopes and failures take the slower road.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.codes import RejectReason
from schemas.report import Report

#: Largest accepted message. A report's longest field is 4,000 characters; this leaves room.
MAX_MESSAGE_BYTES = 64 * 1024

_ERROR_REASON: dict[str, RejectReason] = {
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
    "missing": RejectReason.MISSING_FIELD,
    "timezone_aware": RejectReason.MISSING_TIMEZONE,
    "future_time": RejectReason.FUTURE_TIME,
    "string_too_long": RejectReason.TOO_LONG,
    "string_too_short": RejectReason.TOO_LONG,
    "greater_than_equal": RejectReason.OUT_OF_RANGE,
    "less_than_equal": RejectReason.OUT_OF_RANGE,
    "greater_than": RejectReason.OUT_OF_RANGE,
    "less_than": RejectReason.OUT_OF_RANGE,
    "enum": RejectReason.INVALID_VALUE,
    "location_incomplete": RejectReason.INVALID_VALUE,
    "datetime_from_date_parsing": RejectReason.INVALID_VALUE,
    "datetime_parsing": RejectReason.INVALID_VALUE,
    "json_invalid": RejectReason.INVALID_JSON,
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


def validate_report(raw: bytes, *, now: datetime | None = None) -> Report | Rejection:
    """Validate one message. `now` pins the clock for the future-time check."""
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
    try:
        return Report.model_validate_json(raw, context=context)
    except ValidationError as exc:
        return _rejection_from(exc, raw)


def validate_object(obj: Any, *, now: datetime | None = None) -> Report | Rejection:
    """Validate an already-decoded JSON value (the HTTP API receives arrays of them)."""
    return validate_report(json.dumps(obj, ensure_ascii=False).encode(), now=now)


def _unwrap_cloudevent(raw: bytes) -> bytes | Rejection:
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return _undecodable(raw, exc)
    if not isinstance(envelope, dict) or "specversion" not in envelope:
        # A report whose description merely mentions "specversion".
        return raw
    if envelope.get("specversion") != "1.0":
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            f"unsupported CloudEvents specversion {envelope.get('specversion')!r}; expected '1.0'",
        )
    content_type = envelope.get("datacontenttype", "application/json")
    if not isinstance(content_type, str) or "json" not in content_type:
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            f"CloudEvents datacontenttype {content_type!r} is not JSON",
        )
    if not isinstance(envelope.get("data"), dict):
        return Rejection(
            RejectReason.INVALID_ENVELOPE,
            "CloudEvents envelope has no JSON object in `data` (data_base64 is not supported)",
        )
    return json.dumps(envelope["data"], ensure_ascii=False).encode()


def _undecodable(raw: bytes, exc: Exception) -> Rejection:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(RejectReason.INVALID_ENCODING, f"message is not UTF-8: {err}")
    return Rejection(RejectReason.INVALID_JSON, f"message is not JSON: {exc}")


def _rejection_from(exc: ValidationError, raw: bytes) -> Rejection:
    details = exc.errors(include_url=False, include_context=False)
    if len(details) == 1 and not details[0]["loc"]:
        kind = details[0]["type"]
        if kind == "json_invalid":
            return _undecodable(raw, ValueError(details[0]["msg"]))
        return Rejection(
            RejectReason.NOT_AN_OBJECT, f"a report must be a JSON object: {details[0]['msg']}"
        )
    errors = tuple(
        FieldError(
            field=".".join(str(part) for part in d["loc"]) or "$",
            type=d["type"],
            message=d["msg"],
        )
        for d in details
    )
    reasons = {_reason_for(e) for e in errors}
    reason = next((r for r in _REASON_PRIORITY if r in reasons), RejectReason.INVALID_TYPE)
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    if len(errors) > 5:
        summary += f"; and {len(errors) - 5} more"
    return Rejection(reason, summary, errors)


def _reason_for(error: FieldError) -> RejectReason:
    if error.field == "schema_version":
        return RejectReason.UNSUPPORTED_VERSION
    if error.type in _ERROR_REASON:
        return _ERROR_REASON[error.type]
    if error.type.endswith("_type") or error.type.endswith("_parsing"):
        return RejectReason.INVALID_TYPE
    return RejectReason.INVALID_VALUE
