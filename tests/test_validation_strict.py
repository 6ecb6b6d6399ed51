"""Validation refuses what the contract does not allow, rather than reading it some way:
casualty figures beyond any report, times that are not RFC 3339, identities with control
characters, versions that are not the integer 1, a byte order mark, a media type that merely
contains "json". And the exported JSON Schema agrees on each.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codes import RejectReason
from schemas.report import (
    INVISIBLE_CHAR,
    INVISIBLE_RANGES,
    MAX_CASUALTIES,
    MAX_REVISION,
    Report,
    report_json_schema,
)
from schemas.validation import Rejection, parse_json, validate_report
from tests.test_validation import NOW, report, validated

pytestmark = pytest.mark.timeout(120)  # hypothesis runs included

VALIDATOR = jsonschema.Draft202012Validator(report_json_schema())
ENVELOPE = {"specversion": "1.0", "id": "e-1", "source": "/jmc", "type": "t"}


def withdrawal(**changes: Any) -> dict[str, Any]:
    return {"report_id": "r-1", "source": "az-mod", "revision": 2, "withdrawn": True, **changes}


def check(doc: Any) -> Any:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return validate_report(raw, now=NOW)


def rejected(doc: Any, reason: RejectReason, field: str | None = None) -> Rejection:
    result = check(doc)
    assert isinstance(result, Rejection), result
    assert result.reason is reason, result
    if field is not None:
        assert field in {e.field for e in result.errors}, result.errors
        assert result.message.startswith(field), result.message
    return result


#: The errors beyond JSON Schema: an identity not in NFC, or not in NFKC.
NOT_NORMALIZED = frozenset(("not_nfc", "not_nfkc"))


def agrees(doc: dict[str, Any]) -> None:
    """The exported schema accepts `doc` exactly when the validator does; but for an identity
    not in NFC or NFKC, which no JSON Schema keyword can refuse (the fields' description
    says it)."""
    result = validated(doc)
    kinds = {e.type for e in result.errors} if isinstance(result, Rejection) else set()
    if kinds and kinds <= NOT_NORMALIZED:
        assert VALIDATOR.is_valid(doc), (doc, result)
        return
    assert VALIDATOR.is_valid(doc) == (not isinstance(result, Rejection)), (doc, result)


# -- casualties ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["killed", "wounded"])
@pytest.mark.parametrize("figure", [2**64, 2**63, 2**53, MAX_CASUALTIES + 1])
def test_casualties_beyond_the_bound_are_out_of_range(kind: str, figure: int) -> None:
    # 2**64 passed validation and crashed ingest's orjson ("Integer exceeds 64-bit range").
    doc = report(casualties={kind: figure})
    for shape in (doc, {**ENVELOPE, "data": doc}, withdrawal(casualties={kind: figure})):
        r = rejected(shape, RejectReason.OUT_OF_RANGE, f"casualties.{kind}")
        assert str(MAX_CASUALTIES) in r.message
    agrees(doc)


def test_the_largest_casualty_figure_is_accepted_and_serialisable() -> None:
    doc = report(casualties={"killed": MAX_CASUALTIES, "wounded": MAX_CASUALTIES})
    result = check(doc)
    assert isinstance(result, Report)
    assert result.casualties is not None and result.casualties.killed == MAX_CASUALTIES
    orjson.dumps(result.model_dump(mode="json"))
    agrees(doc)
    shape = report_json_schema()["$defs"]["Casualties"]["properties"]
    assert shape["killed"]["maximum"] == shape["wounded"]["maximum"] == MAX_CASUALTIES


def test_revision_bounds_are_unchanged() -> None:
    assert isinstance(check(report(revision=MAX_REVISION)), Report)
    rejected(report(revision=MAX_REVISION + 1), RejectReason.OUT_OF_RANGE, "revision")
    rejected(report(revision=-1), RejectReason.OUT_OF_RANGE, "revision")


# -- times: RFC 3339 date-times with an offset, nothing else -------------------------------
NOT_RFC3339 = [
    "20210512",  # read as Unix seconds: 1970-08-22
    "1620800000",
    "0",
    "1620800000.5",
    "2021-05-12T10:00Z",  # no seconds
    "2021-05-12T10:00:00+0400",  # offset without a colon
    "2021-05-12T10:00:00+04",
    "2021-05-12T10:00:00,5Z",  # comma before the fraction
    "2021-05-12 10:00:00Z",  # space for T: no sender or converter writes it
    "2021-05-12_10:00:00Z",
    "2021-05-12T10:00:00.Z",
    "2021-05-12",
    "2021-5-12T10:00:00Z",
    "2021-05-12T10:00:00 +04:00",
    " 2021-05-12T10:00:00Z",
    "2021-05-12T10:00:00Z ",
    "2021-05-12T10:00:00Z\n",
    "\uff12\uff10\uff12\uff11-05-12T10:00:00Z",  # full-width digits
    "",
]


@pytest.mark.parametrize("field", ["occurred_at", "reported_at"])
@pytest.mark.parametrize("text", NOT_RFC3339)
def test_times_not_in_rfc3339_form_are_refused_with_the_form_expected(
    field: str, text: str
) -> None:
    r = rejected(report(**{field: text}), RejectReason.INVALID_VALUE, field)
    assert "is not an RFC 3339 date-time: expected YYYY-MM-DDTHH:MM:SS" in r.message, r.message
    assert "2021-05-12T10:00:00+04:00" in r.message, r.message
    rejected({**ENVELOPE, "data": report(**{field: text})}, RejectReason.INVALID_VALUE, field)
    rejected(withdrawal(**{field: text}), RejectReason.INVALID_VALUE, field)
    agrees(report(**{field: text}))


@pytest.mark.parametrize(
    "text",
    [
        "2021-05-12T10:00:00+04:00",
        "2021-05-12T06:00:00Z",
        "2021-05-12t06:00:00z",
        "2021-05-12T06:00:00.5Z",
        "2021-05-12T06:00:00.123456789-00:00",
        "2021-05-10T23:59:59-12:00",
        "2021-05-10T23:59:59+14:00",
        "2021-05-10T23:59:59+13:45",
        "2021-05-10T23:59:59-09:30",
        "1900-01-01T00:00:00Z",
    ],
)
def test_rfc3339_times_are_accepted(text: str) -> None:
    for field in ("occurred_at", "reported_at"):
        doc = report(**{field: text})
        assert isinstance(check(doc), Report), (field, text)
        agrees(doc)


@pytest.mark.parametrize(
    "text", ["1899-12-31T23:59:59Z", "1900-01-01T03:59:59+04:00", "0001-01-01T00:00:00Z"]
)
def test_a_time_before_1900_is_out_of_range(text: str) -> None:
    """Year 0001 passed, then overflowed a week's period or the UTC arithmetic downstream:
    an `internal_error` (a bug) instead of a rejection saying why."""
    for field in ("occurred_at", "reported_at"):
        r = rejected(report(**{field: text}), RejectReason.OUT_OF_RANGE)
        assert f"{field}: {field} " in r.message and "before 1900-01-01" in r.message, r.message
    week = report(occurred_at="0001-01-03T00:00:00Z", time_precision="week")
    assert "before 1900-01-01" in rejected(week, RejectReason.OUT_OF_RANGE).message


def test_a_leap_second_is_refused_as_such() -> None:
    r = rejected(report(occurred_at="2016-12-31T23:59:60Z"), RejectReason.INVALID_VALUE)
    assert "leap second" in r.message, r.message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2021-05-12T25:00:00Z", "hour"),
        ("2021-05-12T10:61:00Z", "minute"),
        ("2021-13-12T10:00:00Z", "month"),
        ("2021-02-30T10:00:00Z", "day"),
        ("2021-05-12T10:00:00+24:00", "offset"),
        ("0000-01-01T00:00:00Z", "year"),
    ],
)
def test_a_number_out_of_range_in_a_time_is_named(text: str, says: str) -> None:
    r = rejected(report(reported_at=text), RejectReason.INVALID_VALUE, "reported_at")
    assert says in r.message and "or date" not in r.message, r.message


@pytest.mark.parametrize(
    "offset", ["+14:01", "+14:30", "+15:00", "+23:59", "-12:01", "-12:30", "-13:00", "-23:59"]
)
def test_utc_offsets_not_in_use_are_refused(offset: str) -> None:
    # RFC 3339's syntax takes any offset up to +-23:59; those in use run from -12:00 to +14:00
    text = f"2021-05-11T10:00:00{offset}"
    for field in ("occurred_at", "reported_at"):
        r = rejected(report(**{field: text}), RejectReason.INVALID_VALUE, field)
        assert f"UTC offset {offset} is not one in use" in r.message, r.message
        assert "-12:00 to +14:00" in r.message, r.message
        rejected(withdrawal(**{field: text}), RejectReason.INVALID_VALUE, field)
        agrees(report(**{field: text}))


@settings(max_examples=200, deadline=2000)
@given(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59))
def test_an_offset_is_accepted_exactly_when_in_use(sign: str, hours: int, minutes: int) -> None:
    offset = f"{sign}{hours:02d}:{minutes:02d}"
    signed = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
    doc = report(occurred_at=f"2021-05-11T10:00:00{offset}")
    result = check(doc)
    assert isinstance(result, Report) == (-12 * 60 <= signed <= 14 * 60), (offset, result)
    agrees(doc)


def test_naive_times_are_still_missing_their_timezone() -> None:
    for text in ("2021-05-12T10:00:00", "2021-05-12T10:00:00.250"):
        rejected(report(occurred_at=text), RejectReason.MISSING_TIMEZONE, "occurred_at")
        agrees(report(occurred_at=text))


_TIME_CHARS = st.sampled_from([*"0123456789-:TtZz+.,_ ", "", "60", "+04:00", "Z"])


@st.composite
def _mangled_times(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(["2021-05-12T10:00:00+04:00", "2020-12-31T23:59:59.5Z"])))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["set", "insert", "delete"]))
        if how == "insert" or at == len(text):
            text.insert(at, draw(_TIME_CHARS))
        elif how == "set":
            text[at] = draw(_TIME_CHARS)
        else:
            del text[at]
    return "".join(text)


@settings(max_examples=500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(_mangled_times())
def test_the_schema_and_the_validator_agree_on_time_forms(text: str) -> None:
    doc = report(occurred_at=text)
    result = validated(doc)
    if not isinstance(result, Rejection):
        assert VALIDATOR.is_valid(doc), text
    elif VALIDATOR.is_valid(doc):
        # beyond a pattern: the future, days past a month's end, the year 0 (RFC 3339 has
        # one, Python's datetime has not), the years before 1900
        beyond = ("day value", "year 0", "before 1900-01-01")
        assert result.reason is RejectReason.FUTURE_TIME or any(
            b in result.message for b in beyond
        ), (text, result)
    else:
        assert result.reason in (RejectReason.INVALID_VALUE, RejectReason.MISSING_TIMEZONE), (
            text,
            result,
        )


# -- identities: no control characters, not blank ------------------------------------------
CONTROLS = ["\x00", "\x09", "\x0a", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]
BLANKS = [" ", "   ", "\xa0", "\u2003", "\u3000 ", "\u2028"]


@pytest.mark.parametrize("field", ["source", "report_id"])
@pytest.mark.parametrize("char", CONTROLS)
def test_control_characters_in_an_identity_are_refused(field: str, char: str) -> None:
    for value in (f"a{char}b", char, f"{char}op-1"):
        r = rejected(report(**{field: value}), RejectReason.INVALID_VALUE, field)
        assert f"U+{ord(char):04X}" in r.message and "control character" in r.message
        rejected(withdrawal(**{field: value}), RejectReason.INVALID_VALUE, field)
        agrees(report(**{field: value}))


def test_the_identity_separator_cannot_make_two_reports_one() -> None:
    one = report(source="a\x1fb", report_id="c")
    other = report(source="a", report_id="b\x1fc")
    rejected(one, RejectReason.INVALID_VALUE, "source")
    rejected(other, RejectReason.INVALID_VALUE, "report_id")


@pytest.mark.parametrize("field", ["source", "report_id"])
@pytest.mark.parametrize("value", BLANKS)
def test_a_blank_identity_is_refused(field: str, value: str) -> None:
    r = rejected(report(**{field: value}), RejectReason.INVALID_VALUE, field)
    assert "blank" in r.message
    agrees(report(**{field: value}))


@pytest.mark.parametrize("field", ["source", "report_id"])
@pytest.mark.parametrize("value", ["op-1 ", " op-1", "\u3000op-1", "op-1\xa0", " o ", "o\u2028"])
def test_an_identity_with_whitespace_at_an_end_is_refused(field: str, value: str) -> None:
    # A spreadsheet's "op-1 " would otherwise be a second report beside "op-1": counted
    # twice, and out of reach of the withdrawal of "op-1".
    r = rejected(report(**{field: value}), RejectReason.INVALID_VALUE, field)
    assert "whitespace" in r.message and repr(value.strip()) in r.message
    rejected(withdrawal(**{field: value}), RejectReason.INVALID_VALUE, field)
    agrees(report(**{field: value}))


INVISIBLES = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u200e",
    "\u202e",
    "\u2066",
    "\u2060",
    "\ufeff",
    "\xad",
    # Cf above U+FFFF: tag characters, shorthand format controls
    "\U000e0001",
    "\U000e0031",
    "\U000e007f",
    "\U0001bca0",
    "\U0001d173",
    # invisible, though not Cf: variation selectors, fillers, the Braille blank
    "\ufe0f",
    "\ufe00",
    "\U000e0100",
    "\U000e01ef",
    "\u034f",
    "\u3164",
    "\u2800",
    "\u115f",
    "\u1160",
    "\uffa0",
]


@pytest.mark.parametrize("field", ["source", "report_id"])
@pytest.mark.parametrize("char", INVISIBLES)
def test_invisible_characters_in_an_identity_are_refused(field: str, char: str) -> None:
    # "op-1" and "op\u200b-1" look the same: were both valid, one report re-sent through a
    # system that adds a zero width (or a direction mark) would count twice.
    for value in (f"op{char}-1", char, f"{char}op-1"):
        r = rejected(report(**{field: value}), RejectReason.INVALID_VALUE, field)
        assert f"U+{ord(char):04X}" in r.message and "invisible character" in r.message, r.message
        rejected(withdrawal(**{field: value}), RejectReason.INVALID_VALUE, field)
        agrees(report(**{field: value}))


def test_every_format_character_is_refused() -> None:
    # README: no character of Unicode's Cf; 131 of them passed (tag characters among them)
    cf = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    assert len(cf) > 150
    for char in cf:
        assert INVISIBLE_CHAR.search(char), f"U+{ord(char):04X}"
        doc = report(report_id=f"r1{char}")
        r = rejected(doc, RejectReason.INVALID_VALUE, "report_id")
        assert f"U+{ord(char):04X}" in r.message, r.message
        agrees(doc)


def test_the_prepended_number_signs_are_refused_as_format_characters() -> None:
    # The Arabic number sign is seen, but is a format character all the same: refused, named so
    r = rejected(report(report_id="\u0600 12"), RejectReason.INVALID_VALUE, "report_id")
    assert "the format character U+0600" in r.message, r.message
    agrees(report(report_id="\u0600 12"))


_INVISIBLE_CODES = [c for a, b in INVISIBLE_RANGES for c in range(a, b + 1)]


@settings(max_examples=300, deadline=2000)
@given(
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=6).filter(
        lambda t: not INVISIBLE_CHAR.search(t)
    ),
    st.sampled_from(_INVISIBLE_CODES),
    st.integers(0, 6),
)
def test_an_invisible_character_anywhere_is_refused(text: str, code: int, at: int) -> None:
    value = text[:at] + chr(code) + text[at:]
    for field in ("source", "report_id"):
        r = rejected(report(**{field: value}), RejectReason.INVALID_VALUE, field)
        assert f"U+{code:04X}" in r.message, r.message
        agrees(report(**{field: value}))


def test_a_look_alike_identity_is_not_a_second_report() -> None:
    # "r1" + a tag character, a variation selector or a Hangul filler was a new identity, and
    # the same report sent through a system that adds one counted twice
    assert isinstance(check(report(report_id="r1")), Report)
    for suffix in ("\U000e0031", "\ufe0f", "\u3164"):
        rejected(report(report_id="r1" + suffix), RejectReason.INVALID_VALUE, "report_id")
        rejected(report(source="pkf-op-12" + suffix), RejectReason.INVALID_VALUE, "source")


# -- identities: in Unicode NFC, as sent ------------------------------------------------------
@pytest.mark.parametrize("field", ["source", "report_id"])
def test_an_identity_not_in_nfc_is_refused_saying_its_nfc_spelling(field: str) -> None:
    nfc, nfd = "caf\u00e9-1", "cafe\u0301-1"
    assert unicodedata.normalize("NFC", nfd) == nfc
    kept = check(report(**{field: nfc}))
    assert isinstance(kept, Report) and getattr(kept, field) == nfc
    for doc in (report(**{field: nfd}), withdrawal(**{field: nfd})):
        r = rejected(doc, RejectReason.INVALID_VALUE, field)
        assert [e.type for e in r.errors] == ["not_nfc"], r.errors
        assert "not in Unicode normalization form C (NFC)" in r.message, r.message
        assert "U+0301 (COMBINING ACUTE ACCENT) at position 4" in r.message, r.message
        assert repr(nfc) in r.message, r.message
    # the schema cannot say it: its description does
    assert VALIDATOR.is_valid(report(**{field: nfd}))
    assert "NFC" in report_json_schema()["$defs"]["Report"]["properties"][field]["description"]


# marks that compose with the letter before them, Hangul jamo that compose, singletons
_COMPOSING = st.sampled_from(["e", "a", "\u0301", "\u0323", "\u212b", "\uf900", "\u1100", "\u1161"])


@settings(max_examples=300, deadline=2000)
@given(st.text(st.characters(exclude_categories=["Cs"]) | _COMPOSING, min_size=1, max_size=8))
def test_an_identity_is_accepted_only_in_nfc_and_never_rewritten(value: str) -> None:
    result = check(report(report_id=value))
    if isinstance(result, Report):
        assert result.report_id == value  # as sent
    if unicodedata.is_normalized("NFC", value):
        assert isinstance(result, Report) or "not_nfc" not in {e.type for e in result.errors}
    else:
        assert isinstance(result, Rejection), value
    agrees(report(report_id=value))


# -- integers: written as such, which the schema can only say -------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("revision", 2.0),
        ("casualties", {"killed": 0.0}),
        ("casualties", {"wounded": 1e0}),
        ("schema_version", 1.0),
    ],
)
def test_integral_floats_are_invalid_type_as_the_schema_says(field: str, value: Any) -> None:
    rejected(report(**{field: value}), RejectReason.INVALID_TYPE)
    assert VALIDATOR.is_valid(report(**{field: value}))  # JSON Schema: 2.0 is an integer
    shapes = report_json_schema()["$defs"]
    for prop in (
        shapes["Report"]["properties"]["revision"],
        shapes["WithdrawnReport"]["properties"]["revision"],
        shapes["Report"]["properties"]["schema_version"],
        shapes["Casualties"]["properties"]["killed"],
        shapes["Casualties"]["properties"]["wounded"],
    ):
        assert "`2.0`" in prop["description"] and "invalid_type" in prop["description"], prop


def test_a_final_newline_is_refused_by_the_schema_too() -> None:
    # Python's `$` (jsonschema's) matches before a final newline unless the pattern says not.
    for doc, field in (
        (report(source="pkf-op-12\n"), "source"),
        (withdrawal(report_id="r-1\n"), "report_id"),
        (report(occurred_at="2021-05-12T10:00:00Z\n"), "occurred_at"),
    ):
        assert not VALIDATOR.is_valid(doc), doc
        assert isinstance(check(doc), Rejection), doc
        assert field in {e.field for e in check(doc).errors}, check(doc)
        agrees(doc)


@pytest.mark.parametrize(
    "value", ["a", "ü-✓", "a b", "x" * 64, "op 12", "Պաշտպանության նախարարություն", "Şuşa"]
)
def test_printable_identities_stay_valid(value: str) -> None:
    doc = report(source=value, report_id=value)
    assert isinstance(check(doc), Report)
    agrees(doc)


@settings(max_examples=300, deadline=2000)
@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=6))
def test_the_schema_and_the_validator_agree_on_identities(value: str) -> None:
    agrees(report(source=value))
    agrees(withdrawal(report_id=value))


# -- schema_version: the integer 1 ----------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, RejectReason.INVALID_TYPE),
        (1.0, RejectReason.INVALID_TYPE),
        ("1", RejectReason.INVALID_TYPE),
        ([1], RejectReason.INVALID_TYPE),
        (2, RejectReason.UNSUPPORTED_VERSION),
        (0, RejectReason.UNSUPPORTED_VERSION),
    ],
)
def test_schema_version_is_the_integer_one(value: Any, reason: RejectReason) -> None:
    for doc in (report(schema_version=value), withdrawal(schema_version=value)):
        r = rejected(doc, reason, "schema_version")
        if reason is RejectReason.UNSUPPORTED_VERSION:
            assert f"schema version {value} is not supported" in r.message, r.message
    assert isinstance(check(report(schema_version=1)), Report)


def test_schema_version_true_disagreed_with_the_schema() -> None:
    for value in (True, "1", 2, 1):
        agrees(report(schema_version=value))


# -- a byte order mark ---------------------------------------------------------------------
def test_a_byte_order_mark_is_named() -> None:
    bare = json.dumps(report()).encode()
    enveloped = json.dumps({**ENVELOPE, "data": report()}).encode()
    for raw in (bare, enveloped):
        r = rejected(b"\xef\xbb\xbf" + raw, RejectReason.INVALID_JSON)
        assert "byte order mark" in r.message, r.message
    decoded = parse_json(b"\xef\xbb\xbf" + bare)
    assert isinstance(decoded, Rejection) and "byte order mark" in decoded.message


# -- CloudEvents datacontenttype: a JSON media type, matched as one -------------------------
@pytest.mark.parametrize(
    "media_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/cloudevents+json",
        "application/vnd.ceasefire.report.v1+json",
        "text/json",
    ],
)
def test_json_media_types_are_accepted_in_any_case(media_type: str) -> None:
    assert isinstance(check({**ENVELOPE, "datacontenttype": media_type, "data": report()}), Report)


@pytest.mark.parametrize(
    "media_type",
    [
        "application/notjson-at-all",
        "application/jsonl",
        "application/json-seq",
        "text/plain; note=json",
        "json",
        "application/+json",
        "image/svg+xml",
        "",
    ],
)
def test_other_media_types_are_refused(media_type: str) -> None:
    doc = {**ENVELOPE, "datacontenttype": media_type, "data": report()}
    r = rejected(doc, RejectReason.INVALID_ENVELOPE)
    assert "datacontenttype" in r.message


# -- messages that told the sender the wrong thing ------------------------------------------
def test_a_bare_report_with_a_stray_specversion_names_the_unknown_field() -> None:
    for version in ("1.0", "0.3"):
        rejected(report(specversion=version), RejectReason.UNKNOWN_FIELD, "specversion")
    rejected(withdrawal(specversion="1.0"), RejectReason.UNKNOWN_FIELD, "specversion")
    # an envelope without data is still one, whatever extension attributes it has
    for envelope in (dict(ENVELOPE), {**ENVELOPE, "category": "x", "location": "y"}):
        r = rejected(envelope, RejectReason.INVALID_ENVELOPE)
        assert "data" in r.message


def test_a_number_too_long_for_python_is_said_to_be_too_long() -> None:
    raw = json.dumps({**ENVELOPE, "data": report(revision=7)}).encode()
    raw = raw.replace(b'"revision": 7', b'"revision": ' + b"9" * 5000)
    r = rejected(raw, RejectReason.INVALID_JSON)
    assert "set_int_max_str_digits" not in r.message and "digits" in r.message, r.message


@pytest.mark.parametrize("attribute", ["id", "source", "type"])
@pytest.mark.parametrize("value", [None, "", 7, ["x"]])
def test_an_envelope_without_a_required_attribute_is_refused(attribute: str, value: Any) -> None:
    """CloudEvents 1.0 requires `id`, `source` and `type`: an envelope of `specversion` and
    `data` alone was unwrapped and its report counted."""
    envelope = {**ENVELOPE, "data": report()}
    for doc in (
        {**envelope, attribute: value},
        {k: v for k, v in envelope.items() if k != attribute},
    ):
        r = rejected(doc, RejectReason.INVALID_ENVELOPE)
        assert f"`{attribute}`" in r.message, r.message
    assert isinstance(check(envelope), Report)


def test_the_message_leads_with_the_errors_its_reason_names() -> None:
    """An envelope in an envelope: the inner one is validated as a report, and fails on
    fields it lacks and on fields it should not have. Its reason was `unknown_field` and its
    message began with the missing ones."""
    inner = {**ENVELOPE, "data": report()}
    r = rejected({**ENVELOPE, "data": inner}, RejectReason.UNKNOWN_FIELD)
    assert r.message.startswith(("specversion", "data", "id", "type")), r.message
    assert {e.field for e in r.errors} >= {"category", "specversion"}
