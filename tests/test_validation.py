"""Report validation: every way a report can be wrong gives a reason code and field errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codes import RejectReason
from schemas.report import Report, WithdrawnReport
from schemas.validation import (
    MAX_DEPTH,
    MAX_ERRORS,
    MAX_FIELD_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CHARS,
    Rejection,
    encode_json,
    parse_json,
    validate_report,
)

NOW = datetime(2021, 5, 12, 12, 0, tzinfo=UTC)


def report(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "report_id": "op12-2021-0001",
        "source": "pkf-op-12",
        "source_type": "observation_post",
        "occurred_at": "2021-05-12T10:00:00+04:00",
        "location": {"lat": 39.758, "lon": 46.748},
        "category": "small_arms_fire",
        "perpetrator": "Armenian Armed Forces",
        "casualties": {"killed": 0, "wounded": 1, "civilian": False},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def check(doc: Any) -> Report | WithdrawnReport | Rejection:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return validate_report(raw, now=NOW)


def validated(doc: Any) -> Report | WithdrawnReport | Rejection:
    """`doc` validated as UTF-8 JSON with its non-ASCII characters as they are (unescaped)."""
    return validate_report(json.dumps(doc, ensure_ascii=False).encode(), now=NOW)


def rejected(doc: Any) -> Rejection:
    result = check(doc)
    assert isinstance(result, Rejection), result
    return result


def test_valid_report() -> None:
    result = check(report())
    assert isinstance(result, Report)
    assert result.key == "pkf-op-12\x1fop12-2021-0001"


def test_place_only_location_is_valid() -> None:
    assert isinstance(check(report(location={"place": "Shusha"})), Report)


@pytest.mark.parametrize(
    ("doc", "reason", "field"),
    [
        (report(colour="red"), RejectReason.UNKNOWN_FIELD, "colour"),
        (report(source=None), RejectReason.MISSING_FIELD, "source"),
        (report(occurred_at="2021-05-12T10:00:00"), RejectReason.MISSING_TIMEZONE, "occurred_at"),
        (report(occurred_at="2021-05-12T12:06:00Z"), RejectReason.FUTURE_TIME, "occurred_at"),
        (report(location={"lat": 91.0, "lon": 46.7}), RejectReason.OUT_OF_RANGE, "location.lat"),
        (report(location={"lat": 39.0, "lon": 181}), RejectReason.OUT_OF_RANGE, "location.lon"),
        (report(location={"lat": 39.0}), RejectReason.INVALID_VALUE, "location"),
        (report(location={}), RejectReason.INVALID_VALUE, "location"),
        (report(casualties={"killed": -1}), RejectReason.OUT_OF_RANGE, "casualties.killed"),
        (report(casualties={"killed": "2"}), RejectReason.INVALID_TYPE, "casualties.killed"),
        (report(description="x" * 4001), RejectReason.TOO_LONG, "description"),
        (report(report_id="r" * 129), RejectReason.TOO_LONG, "report_id"),
        (report(report_id=""), RejectReason.INVALID_VALUE, "report_id"),
        (report(source="s" * 65), RejectReason.TOO_LONG, "source"),
        (report(category="shelling"), RejectReason.INVALID_VALUE, "category"),
        (report(source_type="rumour"), RejectReason.INVALID_VALUE, "source_type"),
        (report(schema_version=2), RejectReason.UNSUPPORTED_VERSION, "schema_version"),
        (report(occurred_at=1620800000), RejectReason.INVALID_TYPE, "occurred_at"),
    ],
)
def test_rejections_name_reason_and_field(doc: Any, reason: RejectReason, field: str) -> None:
    r = rejected(doc)
    assert r.reason == reason, r
    assert field in {e.field for e in r.errors}, r.errors
    assert r.message


def test_a_few_minutes_of_clock_skew_is_allowed() -> None:
    assert isinstance(check(report(occurred_at="2021-05-12T12:04:00Z")), Report)


@pytest.mark.parametrize(
    ("occurred_at", "precision", "accepted"),
    [
        # NOW is 12:00 UTC, 16:00 in Baku: a day report of today written at 20:00 local, or
        # at the next noon UTC as ACLED converts, was rejected as from the future
        ("2021-05-12T20:00:00+04:00", "day", True),
        ("2021-05-12T23:59:00+04:00", "day", True),
        ("2021-05-13T00:00:00+04:00", "day", False),  # tomorrow in Baku
        ("2021-05-12T20:00:00+04:00", "exact", False),
        ("2021-05-13T12:00:00Z", "day", False),
        ("2021-05-18T12:00:00Z", "week", True),  # a week that began on the 12th
        ("2021-05-19T12:00:00Z", "week", False),
        ("2021-05-31T12:00:00Z", "month", True),
        ("2021-06-01T00:00:00Z", "month", False),
    ],
)
def test_a_time_of_a_period_that_has_begun_is_not_in_the_future(
    occurred_at: str, precision: str, accepted: bool
) -> None:
    result = check(report(occurred_at=occurred_at, time_precision=precision))
    if accepted:
        assert isinstance(result, Report), result
    else:
        assert isinstance(result, Rejection) and result.reason is RejectReason.FUTURE_TIME
        assert [e.field for e in result.errors] == ["occurred_at"]
        assert f"occurred_at {occurred_at.replace('Z', '+00:00')} is more than 5" in result.message


def test_undecodable_inputs() -> None:
    assert rejected(b"{not json").reason == RejectReason.INVALID_JSON
    assert rejected(b"\xff\xfe\x00garbage").reason == RejectReason.INVALID_ENCODING
    assert rejected(b"[1, 2]").reason == RejectReason.NOT_AN_OBJECT
    assert rejected(b'"text"').reason == RejectReason.NOT_AN_OBJECT
    assert rejected(b"").reason == RejectReason.INVALID_JSON
    assert rejected(b"{" + b" " * MAX_MESSAGE_BYTES + b"}").reason == RejectReason.TOO_LARGE


def test_cloudevents_envelope_is_unwrapped() -> None:
    envelope = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/jmc/aghdam",
        "type": "org.ceasefire.report.v1",
        "datacontenttype": "application/json",
        "data": report(),
    }
    result = check(envelope)
    assert isinstance(result, Report)
    assert result.report_id == "op12-2021-0001"


def test_cloudevents_without_object_data_is_rejected() -> None:
    envelope = {"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data_base64": "e30="}
    assert rejected(envelope).reason == RejectReason.INVALID_ENVELOPE
    assert rejected({**envelope, "specversion": "0.3"}).reason == RejectReason.INVALID_ENVELOPE


def test_the_word_specversion_in_a_description_is_not_an_envelope() -> None:
    assert isinstance(check(report(description='he said "specversion" twice')), Report)


def test_json_schema_is_exported() -> None:
    schema = Report.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "report_id",
        "source",
        "source_type",
        "occurred_at",
        "location",
        "category",
    }


def test_incident_ids_are_uuid5_of_the_report_identity() -> None:
    import uuid

    from schemas.incident import INCIDENT_NAMESPACE, incident_id_for

    for source, rid in (("pkf-op-12", "r-1"), ("az-mod", "ü-✓"), ("s", "x" * 128)):
        assert incident_id_for(source, rid) == str(
            uuid.uuid5(INCIDENT_NAMESPACE, f"{source}\x1f{rid}")
        )


# -- hostile input: every message gets a named answer, none an exception ---------------
ENVELOPE = {"specversion": "1.0", "id": "e", "source": "s", "type": "t"}


def enveloped(data: bytes) -> bytes:
    return json.dumps(ENVELOPE).encode()[:-1] + b', "data": ' + data + b"}"


def test_lone_surrogate_escapes_are_an_encoding_error() -> None:
    # The measured defect: a 219-byte envelope raised UnicodeEncodeError, and ingest
    # retried its batch forever.
    data = b'{"report_id": "r", "source": "s", "description": "\\ud800"}'
    raw = enveloped(data)
    assert len(raw) < 220
    bare = json.dumps(report()).encode()[:-1] + b", " + data[1:]
    for doc in (raw, enveloped(b'"\\ud800"'), bare):
        r = rejected(doc)
        assert r.reason in (RejectReason.INVALID_ENCODING, RejectReason.INVALID_ENVELOPE), r
    assert rejected(raw).reason is RejectReason.INVALID_ENCODING
    assert "\\ud800" in rejected(raw).message
    for escape in (b"\\udc00", b"\\ud800x", b"\\ud800\\u0041", b"\\ud83d"):
        bare = json.dumps(report(description="?")).encode().replace(b'"?"', b'"' + escape + b'"')
        r = rejected(bare)
        assert r.reason is RejectReason.INVALID_ENCODING, (escape, r)
        assert "surrogate" in r.message


def test_valid_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    pair = json.dumps(report(description="\U0001f600 shelling")).encode()  # "\ud83d\ude00"
    assert b"\\ud83d\\ude00" in pair
    result = check(pair)
    assert isinstance(result, Report) and result.description == "\U0001f600 shelling"
    literal = check(report(description="\\ud800"))  # a backslash, then "ud800"
    assert isinstance(literal, Report) and literal.description == "\\ud800"


@pytest.mark.timeout(10)
def test_deep_nesting_is_rejected_before_parsing() -> None:
    deep_list = b"[" * 10_000 + b"]" * 10_000
    deep_object = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    for raw in (deep_list, deep_object, enveloped(deep_list), enveloped(deep_object)):
        r = rejected(raw)  # the envelope raised RecursionError
        assert r.reason is RejectReason.TOO_DEEP, r
    nested: dict[str, Any] = {"x": 1}
    for _ in range(40):
        nested = {"x": nested}
    assert rejected(report(extra=nested)).reason is RejectReason.TOO_DEEP


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = '[{"quoted \\" [' * 200
    result = check(report(description=text))
    assert isinstance(result, Report) and result.description == text


@pytest.mark.timeout(10)
def test_the_depth_scan_is_linear_on_unterminated_strings() -> None:
    # A string that never ends, with escaped quotes: a backtracking scan is quadratic.
    # The brackets in it are text: 20 levels deep.
    raw = b"[" * 20 + b'"' + b"{" * 40 + b'\\"' * 20_000
    assert rejected(raw).reason is RejectReason.INVALID_JSON
    assert rejected(b"[" * 40 + raw).reason is RejectReason.TOO_DEEP


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
@pytest.mark.parametrize("field", ["lat", "lon"])
def test_nan_and_infinity_are_rejected(token: bytes, field: str) -> None:
    location: dict[str, Any] = {"lat": 39.7, "lon": 46.7, field: "?"}
    raw = json.dumps(report(location=location)).encode().replace(b'"?"', token)
    for doc in (raw, enveloped(raw)):
        r = rejected(doc)
        assert r.reason is RejectReason.INVALID_VALUE, r
        assert [e.field for e in r.errors] == [f"location.{field}"]
        assert "finite" in r.message


def test_empty_messages_keys_and_values() -> None:
    assert rejected(b"").reason is RejectReason.INVALID_JSON
    assert rejected(b"").message == "message is empty"
    assert rejected(b" \r\n").message == "message is blank"
    r = rejected(report(**{"": 1}))
    assert r.reason is RejectReason.UNKNOWN_FIELD and [e.field for e in r.errors] == ['""']
    r = rejected(report(location={"lat": 39.7, "lon": 46.7, "": None}))
    assert [e.field for e in r.errors] == ['location.""']
    assert rejected(report(source="")).reason is RejectReason.INVALID_VALUE
    assert rejected(report(location={"place": ""})).reason is RejectReason.INVALID_VALUE
    assert rejected(enveloped(b"{}")).reason is RejectReason.MISSING_FIELD
    assert rejected(enveloped(b"null")).reason is RejectReason.INVALID_ENVELOPE


def test_invalid_utf8_anywhere_is_an_encoding_error() -> None:
    good = json.dumps(report(description="?")).encode()
    for bad in (
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
    ):  # last two: surrogate, > U+10FFFF
        raw = good.replace(b'"?"', b'"' + bad + b'"')
        for doc in (raw, enveloped(raw)):
            assert rejected(doc).reason is RejectReason.INVALID_ENCODING, (bad, doc)


def test_huge_numbers_are_rejected() -> None:
    digits = b"9" * 5000
    raw = json.dumps(report()).encode().replace(b'"killed": 0', b'"killed": ' + digits)
    assert rejected(raw).reason in (RejectReason.INVALID_JSON, RejectReason.OUT_OF_RANGE)
    assert rejected(enveloped(raw)).reason in (RejectReason.INVALID_JSON, RejectReason.OUT_OF_RANGE)


def test_field_errors_are_bounded() -> None:
    many = report(**{f"x{i}": 0 for i in range(5000)})
    r = rejected(many)
    assert r.reason is RejectReason.UNKNOWN_FIELD
    assert len(r.errors) == MAX_ERRORS
    assert "and 4995 more" in r.message and len(r.message) <= MAX_MESSAGE_CHARS
    long_key = rejected(report(**{"k" * 30_000: 1}))
    assert len(long_key.errors[0].field) <= MAX_FIELD_CHARS
    assert len(long_key.message) <= MAX_MESSAGE_CHARS


def test_a_bug_in_validation_is_a_rejection_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> Report:
        raise KeyError("boom")

    monkeypatch.setattr(Report, "model_validate_json", explode)
    r = rejected(report())
    assert r.reason is RejectReason.INTERNAL_ERROR and "KeyError" in r.message


def test_decoded_values_are_encoded_without_exceptions() -> None:
    def reason_of(obj: Any) -> RejectReason:
        result = encode_json(obj)
        assert isinstance(result, Rejection), result
        return result.reason

    encoded = encode_json(report())
    assert isinstance(encoded, bytes)
    assert isinstance(validate_report(encoded, now=NOW), Report)
    assert reason_of(report(description="\ud800")) is RejectReason.INVALID_ENCODING
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    assert reason_of(deep) is RejectReason.TOO_DEEP
    assert reason_of({1, 2}) is RejectReason.INVALID_VALUE
    too_deep = parse_json(b"[" * 5000)
    assert isinstance(too_deep, Rejection) and too_deep.reason is RejectReason.TOO_DEEP
    assert str(MAX_DEPTH) in too_deep.message
    not_utf8 = parse_json(b'"\xff"')
    assert isinstance(not_utf8, Rejection) and not_utf8.reason is RejectReason.INVALID_ENCODING
    assert parse_json(b'{"a": [1, "\\u00e9"]}') == {"a": [1, "\u00e9"]}


def test_report_fields_beside_an_envelope_s_data_are_refused_not_ignored() -> None:
    """`"withdrawn": true` beside `data` was ignored: the withdrawal counted as a report."""
    envelope = {"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data": report()}
    for extra in ({"withdrawn": True}, {"revision": 5}, {"casualties": {"killed": 3}}):
        r = rejected({**envelope, **extra})
        assert r.reason == RejectReason.INVALID_ENVELOPE, r
        assert f"`{next(iter(extra))}`" in r.message and "put them in `data`" in r.message
    # CloudEvents' own attributes, extensions and `source` (an attribute of both) are fine
    fine = {**envelope, "time": "2021-05-12T10:00:00Z", "traceparent": "00-ab", "subject": "x"}
    assert isinstance(check(fine), Report)
