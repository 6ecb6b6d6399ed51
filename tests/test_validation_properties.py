"""Property-based tests of validation: any input gets a `Report`, a `WithdrawnReport` or a
named `Rejection`, never an exception, and each kind of mistake in a valid report gets its
own reason.

`internal_error` (validation's last-resort catch) counts as a failure here: every
input must be handled on purpose, not by the safety net.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codes import RejectReason
from schemas.dead_letter import MAX_DEAD_LETTER_BYTES, DeadLetter, dead_letter
from schemas.report import MAX_REVISION, Report, WithdrawnReport
from schemas.validation import (
    MAX_ERRORS,
    MAX_MESSAGE_CHARS,
    Rejection,
    count_keys,
    duplicate_key,
    encode_json,
    parse_json,
    validate_report,
)

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2021, 5, 12, 12, 0, tzinfo=UTC)
# Each property runs in a few seconds; deadline per example is generous for a shared CI box.
BOUNDED = settings(
    max_examples=300,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID: dict[str, Any] = {
    "report_id": "op12-2021-0001",
    "source": "pkf-op-12",
    "source_type": "observation_post",
    "occurred_at": "2021-05-12T10:00:00+04:00",
    "reported_at": "2021-05-12T10:30:00+04:00",
    "location": {"lat": 39.758, "lon": 46.748, "place": "Shusha", "precision": "town"},
    "category": "small_arms_fire",
    "perpetrator": "Armenian Armed Forces",
    "target": "civilians",
    "casualties": {"killed": 0, "wounded": 1, "civilian": False},
    "description": "bursts of automatic fire",
    "revision": 3,
    "claimant": "AZ MoD",
    "time_precision": "day",
    "schema_version": 1,
}
ENVELOPE_HEAD = '{"specversion":"1.0","id":"e-1","source":"/jmc","type":"t","data":'


def assert_handled(raw: bytes) -> Report | WithdrawnReport | Rejection:
    result = validate_report(raw, now=NOW)
    assert isinstance(result, Report | WithdrawnReport | Rejection)
    if isinstance(result, Rejection):
        assert result.reason is not RejectReason.INTERNAL_ERROR, result
        assert result.message and len(result.message) <= MAX_MESSAGE_CHARS
        assert len(result.errors) <= MAX_ERRORS
        # and its dead letter is bounded and readable back
        value = dead_letter(
            raw, result, topic="t", partition=0, offset=1, key=raw[:50], received_at=NOW
        )
        assert len(value) <= MAX_DEAD_LETTER_BYTES
        letter = DeadLetter.model_validate_json(value)
        assert letter.original() == raw[: len(letter.original())]
    return result


# -- (a) any bytes ------------------------------------------------------------------------
@BOUNDED
@given(
    st.one_of(
        st.binary(max_size=2000),
        # the envelope path, and JSON-looking noise
        st.binary(max_size=500).map(lambda b: b'{"specversion":"1.0","data":' + b),
        st.binary(max_size=500).map(lambda b: b'{"report_id":' + b + b"}"),
        st.lists(st.sampled_from([b"{", b"[", b"}", b"]", b'"', b"\\", b":", b",", b"1"])).map(
            b"".join
        ),
    )
)
def test_any_bytes_get_an_answer(raw: bytes) -> None:
    assert_handled(raw)


# -- (b) any JSON-ish value, bare or in an envelope -------------------------------------
# Built as JSON text, so it may hold what `json.dumps` cannot write: NaN, huge numbers,
# lone surrogate escapes, nesting thousands deep.
_strings = st.one_of(
    st.text(max_size=20).map(json.dumps),  # escapes any surrogates as \udXXX
    st.sampled_from(['"\\ud800"', '"\\udfff"', '"x\\ud83d"', '"\\ud83d\\ude00"', '""', '"\\\\"']),
)
_keys = st.one_of(
    _strings,
    st.sampled_from(
        ['"report_id"', '"location"', '"lat"', '"data"', '"specversion"', '""', '"withdrawn"']
    ),
)
_scalars = st.one_of(
    st.sampled_from(["null", "true", "false", "NaN", "Infinity", "-Infinity", "1e999", "-0"]),
    st.integers().map(str),
    st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n),  # beyond int64, 4300
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    _strings,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(_keys, inner), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{k}:{v}" for k, v in kvs) + "}"
        ),
    ),
    max_leaves=20,
)
_deep = st.tuples(st.integers(1, 12_000), st.booleans(), _scalars).map(
    lambda t: ('{"a":' * t[0] + t[2] + "}" * t[0]) if t[1] else ("[" * t[0] + t[2] + "]" * t[0])
)
_values = st.one_of(_json, _deep)


def _in_report(value: str, field: str) -> str:
    """A valid report with one field's value replaced by `value` (JSON text)."""
    marker = "\x00MARK\x00"
    doc = json.loads(json.dumps(VALID))
    if "." in field:
        group, name = field.split(".")
        doc[group][name] = marker
    else:
        doc[field] = marker
    return json.dumps(doc).replace(json.dumps(marker), value)


_FIELDS = [
    *VALID,
    "location.lat",
    "location.place",
    "location.precision",
    "casualties.killed",
    "withdrawn",
    "extra",
]


@BOUNDED
@given(
    _values,
    st.sampled_from(["bare", "envelope", "field", "enveloped field"]),
    st.sampled_from(_FIELDS),
)
def test_any_json_value_gets_an_answer(value: str, wrap: str, field: str) -> None:
    text = _in_report(value, field) if "field" in wrap else value
    if "envelope" in wrap:
        text = ENVELOPE_HEAD + text + "}"
    raw = text.encode("utf-8")
    if len(raw) > 64 * 1024:
        raw = raw[: 64 * 1024]  # the size check would end it at once; test the parsing
    assert_handled(raw)
    # a decoded value written back (`encode_json`, as an envelope's data is) and validated
    decoded = parse_json(raw)
    if not isinstance(decoded, Rejection):
        encoded = encode_json(decoded)
        result = encoded if isinstance(encoded, Rejection) else validate_report(encoded, now=NOW)
        assert isinstance(result, Report | WithdrawnReport | Rejection)
        if isinstance(result, Rejection):
            assert result.reason is not RejectReason.INTERNAL_ERROR, result


# -- (c) one mistake in a valid report: its own reason, naming the field ----------------
_texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_STRING_FIELDS = [
    "report_id",
    "source",
    "perpetrator",
    "target",
    "claimant",
    "description",
    "location.place",
]
_LIMITS = {
    "report_id": 128,
    "source": 64,
    "perpetrator": 128,
    "target": 128,
    "claimant": 128,
    "description": 4000,
    "location.place": 128,
}
_NOT_A_STRING: st.SearchStrategy[Any] = st.one_of(
    st.integers(), st.booleans(), st.just([]), st.just({"a": 1})
)
# field -> values of a wrong JSON type (null is "absent" for optional fields)
_WRONG_TYPES: dict[str, st.SearchStrategy[Any]] = {
    **{f: _NOT_A_STRING for f in _STRING_FIELDS},
    "occurred_at": st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()),
    "reported_at": st.one_of(st.integers(), st.booleans(), st.just([])),
    "location.lat": st.one_of(_texts, st.booleans(), st.just([])),
    "casualties.killed": st.one_of(_texts, st.booleans(), st.floats(0.5, 9.5), st.just(None)),
    "casualties.civilian": st.one_of(_texts, st.integers(), st.just(None)),
    "location": st.one_of(_texts, st.integers(), st.just([])),
    "casualties": st.one_of(_texts, st.integers(), st.just([1])),
    "revision": st.one_of(_texts, st.booleans(), st.floats(0.5, 9.5), st.just(None)),
    # not `true`: that makes it a withdrawal
    "withdrawn": st.one_of(_texts, st.integers(), st.just(None), st.just([])),
}
# field -> values of the right type that are out of range, or not in the field's enum
_OUT_OF_RANGE: dict[str, st.SearchStrategy[Any]] = {
    "revision": st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_REVISION + 1)),
    "location.lat": st.floats(90.001, 1e300),
    "casualties.wounded": st.integers(max_value=-1),
}
_NOT_IN_ENUM: dict[str, st.SearchStrategy[Any]] = {
    "time_precision": _texts.filter(lambda t: t not in ("exact", "day", "week", "month")),
    "location.precision": _texts.filter(lambda t: t not in ("point", "town", "region")),
    "category": st.sampled_from(["shelling", "", "Small_arms_fire"]),
}
_REQUIRED = ["report_id", "source", "source_type", "occurred_at", "location", "category"]


def _set(doc: dict[str, Any], field: str, value: Any) -> None:
    if "." in field:
        group, name = field.split(".")
        doc[group][name] = value
    else:
        doc[field] = value


def _naive_times() -> st.SearchStrategy[str]:
    return st.datetimes(datetime(2000, 1, 1), datetime(2021, 5, 12)).map(datetime.isoformat)


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[dict[str, Any], RejectReason, str]:
    """(mutated report, expected reason, field it must name)."""
    doc = json.loads(json.dumps(VALID))
    kind = draw(
        st.sampled_from(["remove", "type", "unknown", "long", "naive", "nan", "range", "enum"])
    )
    if kind == "remove":
        field = draw(st.sampled_from(_REQUIRED))
        del doc[field]
        return doc, RejectReason.MISSING_FIELD, field
    if kind == "type":
        field = draw(st.sampled_from(sorted(_WRONG_TYPES)))
        _set(doc, field, draw(_WRONG_TYPES[field]))
        return doc, RejectReason.INVALID_TYPE, field
    if kind == "unknown":
        key = draw(_texts.filter(lambda k: k not in VALID))
        doc[key] = draw(st.one_of(st.integers(), _texts, st.none()))
        return doc, RejectReason.UNKNOWN_FIELD, key if key else '""'
    if kind == "long":
        field = draw(st.sampled_from(_STRING_FIELDS))
        extra = draw(st.integers(1, 50))
        char = draw(st.characters(exclude_categories=["Cs"]))
        _set(doc, field, char * (_LIMITS[field] + extra))
        return doc, RejectReason.TOO_LONG, field
    if kind == "range":
        field = draw(st.sampled_from(sorted(_OUT_OF_RANGE)))
        _set(doc, field, draw(_OUT_OF_RANGE[field]))
        return doc, RejectReason.OUT_OF_RANGE, field
    if kind == "enum":
        field = draw(st.sampled_from(sorted(_NOT_IN_ENUM)))
        _set(doc, field, draw(_NOT_IN_ENUM[field]))
        return doc, RejectReason.INVALID_VALUE, field
    if kind == "naive":
        field = draw(st.sampled_from(["occurred_at", "reported_at"]))
        _set(doc, field, draw(_naive_times()))
        return doc, RejectReason.MISSING_TIMEZONE, field
    field = draw(st.sampled_from(["location.lat", "location.lon"]))
    _set(doc, field, float(draw(st.sampled_from(["nan", "inf", "-inf"]))))
    return doc, RejectReason.INVALID_VALUE, field


def test_the_unmutated_report_is_valid() -> None:
    assert isinstance(validate_report(json.dumps(VALID).encode(), now=NOW), Report)


@BOUNDED
@given(_mutations(), st.booleans())
def test_each_mistake_has_its_named_reason(
    mutation: tuple[dict[str, Any], RejectReason, str], wrap: bool
) -> None:
    doc, reason, field = mutation
    text = json.dumps(doc)  # NaN / Infinity written as JSON's (invalid) tokens
    if wrap:
        text = ENVELOPE_HEAD + text + "}"
    result = assert_handled(text.encode())
    assert isinstance(result, Rejection)
    assert result.reason is reason, (result, doc)
    assert field in {e.field for e in result.errors}, result.errors


# -- (d) a key given twice ------------------------------------------------------------------
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@BOUNDED
@given(_json_values, st.sampled_from([",", ", ", ",\n  "]), st.sampled_from([":", " : ", ":\t"]))
def test_json_without_a_repeated_key_is_never_said_to_have_one(
    value: Any, item: str, key: str
) -> None:
    """However its strings read (escaped quotes before colons) and however it is spaced."""
    raw = json.dumps(value, separators=(item, key)).encode()
    assert duplicate_key(raw, count_keys(value)) is None
    assert not isinstance(parse_json(raw), Rejection)


@BOUNDED
@given(
    st.sampled_from(sorted(VALID)),
    st.sampled_from(["location.place", "casualties.killed", None]),
    st.booleans(),
    st.sampled_from([":", " : "]),
)
def test_a_key_given_twice_is_refused_naming_it(
    top: str, nested: str | None, wrap: bool, colon: str
) -> None:
    """The parsers keep the last value silently: a repeated `casualties` changed the
    figures counted, a repeated `report_id` the identity."""
    text = json.dumps(VALID, separators=(",", colon))
    twice = top
    if nested is None:  # the top-level key again, first, with its own value
        text = "{" + json.dumps(top) + colon + json.dumps(VALID[top]) + "," + text[1:]
    else:
        parent, twice = nested.split(".")
        inner = json.dumps(VALID[parent], separators=(",", colon))
        again = "{" + json.dumps(twice) + colon + json.dumps(VALID[parent][twice]) + ","
        text = text.replace(inner, again + inner[1:], 1)
    if wrap:
        text = ENVELOPE_HEAD + text + "}"
    result = assert_handled(text.encode())
    assert isinstance(result, Rejection) and result.reason is RejectReason.INVALID_JSON, result
    assert f"key {twice!r} is given twice" in result.message


@BOUNDED
@given(
    st.sampled_from(sorted(VALID)),
    st.sampled_from(sorted(set(VALID) - {"report_id"})),
    st.booleans(),
)
def test_a_key_given_twice_is_named_before_the_field_errors(
    top: str, dropped: str, withdrawal: bool
) -> None:
    """A review: a repeated key in a report also missing a field (or a withdrawal's) was
    refused as `missing_field`; fixed, it was refused again, for the repeated key."""
    doc = {k: v for k, v in VALID.items() if k != dropped}
    if withdrawal:
        doc = {"report_id": VALID["report_id"], "withdrawn": True, "revision": "one"}
    key = top if top in doc else "report_id"
    text = "{" + json.dumps(key) + ":" + json.dumps(doc[key]) + "," + json.dumps(doc)[1:]
    result = assert_handled(text.encode())
    assert isinstance(result, Rejection) and result.reason is RejectReason.INVALID_JSON, result
    assert f"key {key!r} is given twice" in result.message
