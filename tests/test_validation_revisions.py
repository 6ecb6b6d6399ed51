"""The optional fields added within schema version 1 (`revision`, `withdrawn`, `claimant`,
`time_precision`, `location.precision`), the withdrawal shape, and the JSON Schema of both
shapes checked against the validator itself."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codes import LocationPrecision, RejectReason, TimePrecision
from schemas.report import MAX_REVISION, Report, WithdrawnReport, report_json_schema
from schemas.validation import Rejection, validate_report

NOW = datetime(2021, 5, 12, 12, 0, tzinfo=UTC)
README = Path(__file__).resolve().parent.parent / "README.md"


def report(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "report_id": "op12-2021-0001",
        "source": "pkf-op-12",
        "source_type": "observation_post",
        "occurred_at": "2021-05-12T10:00:00+04:00",
        "location": {"lat": 39.758, "lon": 46.748},
        "category": "small_arms_fire",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def withdrawal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "report_id": "op12-2021-0001",
        "source": "pkf-op-12",
        "revision": 2,
        "withdrawn": True,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def check(doc: Any) -> Report | WithdrawnReport | Rejection:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return validate_report(raw, now=NOW)


def accepted_report(doc: Any) -> Report:
    result = check(doc)
    assert isinstance(result, Report), result
    return result


def rejected(doc: Any) -> Rejection:
    result = check(doc)
    assert isinstance(result, Rejection), result
    return result


# -- the new fields of a report -----------------------------------------------------------
def test_older_senders_get_the_defaults() -> None:
    r = accepted_report(report())
    assert r.revision == 0 and r.withdrawn is False and r.claimant is None
    assert r.time_precision is TimePrecision.EXACT
    assert r.location.precision is LocationPrecision.POINT


def test_new_fields_are_read() -> None:
    r = accepted_report(
        report(
            revision=MAX_REVISION,
            withdrawn=False,
            claimant="Azerbaijani Ministry of Defence",
            time_precision="week",
            location={"lat": 39.7, "lon": 46.7, "precision": "region"},
        )
    )
    assert r.revision == 2**63 - 1 and r.withdrawn is False
    assert r.claimant == "Azerbaijani Ministry of Defence"
    assert r.time_precision is TimePrecision.WEEK
    assert r.location.precision is LocationPrecision.REGION


@pytest.mark.parametrize(
    ("location", "precision"),
    [
        ({"lat": 39.7, "lon": 46.7}, LocationPrecision.POINT),
        ({"place": "Shusha"}, LocationPrecision.TOWN),
        ({"lat": 39.7, "lon": 46.7, "place": "Shusha"}, LocationPrecision.POINT),
        ({"lat": None, "lon": None, "place": "Shusha"}, LocationPrecision.TOWN),
        ({"place": "Shusha", "precision": "region"}, LocationPrecision.REGION),
        ({"place": "Shusha", "precision": "point"}, LocationPrecision.POINT),
        ({"lat": 39.7, "lon": 46.7, "precision": "town"}, LocationPrecision.TOWN),
    ],
)
def test_location_precision_defaults_by_what_is_given(
    location: dict[str, Any], precision: LocationPrecision
) -> None:
    assert accepted_report(report(location=location)).location.precision is precision


@pytest.mark.parametrize(
    ("doc", "reason", "field"),
    [
        (report(revision=-1), RejectReason.OUT_OF_RANGE, "revision"),
        (report(revision=2**63), RejectReason.OUT_OF_RANGE, "revision"),
        (report(revision=1.5), RejectReason.INVALID_TYPE, "revision"),
        (report(revision=2.0), RejectReason.INVALID_TYPE, "revision"),
        (report(revision="3"), RejectReason.INVALID_TYPE, "revision"),
        (report(revision=True), RejectReason.INVALID_TYPE, "revision"),
        (report(withdrawn=0), RejectReason.INVALID_TYPE, "withdrawn"),
        (report(withdrawn="false"), RejectReason.INVALID_TYPE, "withdrawn"),
        (report(claimant="c" * 129), RejectReason.TOO_LONG, "claimant"),
        (report(claimant=7), RejectReason.INVALID_TYPE, "claimant"),
        (report(time_precision="year"), RejectReason.INVALID_VALUE, "time_precision"),
        (report(time_precision=1), RejectReason.INVALID_VALUE, "time_precision"),
        (
            report(location={"lat": 39.7, "lon": 46.7, "precision": "street"}),
            RejectReason.INVALID_VALUE,
            "location.precision",
        ),
    ],
)
def test_new_fields_are_checked(doc: dict[str, Any], reason: RejectReason, field: str) -> None:
    r = rejected(doc)
    assert r.reason is reason, r
    assert field in {e.field for e in r.errors}, r.errors


def test_null_is_no_revision_or_precision() -> None:
    # Fields with a value as default take no null (like casualties.killed); claimant does.
    raw = json.dumps(report(claimant="AZ MoD")).encode()
    for name in (b"revision", b"withdrawn", b"time_precision"):
        doc = raw[:-1] + b', "' + name + b'": null}'
        assert rejected(doc).errors[0].field == name.decode()
    assert isinstance(check(raw.replace(b'"AZ MoD"', b"null")), Report)


# -- withdrawals ----------------------------------------------------------------------------
def test_a_withdrawal_needs_only_identity_revision_and_withdrawn() -> None:
    w = check(withdrawal())
    assert isinstance(w, WithdrawnReport)
    assert (w.source, w.report_id, w.revision, w.withdrawn) == (
        "pkf-op-12",
        "op12-2021-0001",
        2,
        True,
    )
    assert w.key == "pkf-op-12\x1fop12-2021-0001"
    assert w.source_type is None and w.location is None and w.occurred_at is None


def test_a_withdrawal_may_carry_the_report_it_withdraws() -> None:
    full = report(revision=3, withdrawn=True, claimant="AM MoD", time_precision="day")
    w = check(full)
    assert isinstance(w, WithdrawnReport)
    assert w.revision == 3 and w.category is not None and w.location is not None


@pytest.mark.parametrize(
    ("occurred_at", "precision"),
    [("2021-05-12T23:00:00+04:00", "day"), ("2021-05-14T12:00:00Z", "week")],
)
def test_a_withdrawal_re_sending_its_report_is_read_as_the_report_is(
    occurred_at: str, precision: str
) -> None:
    """A day report of today written for tonight is no report from the future; re-sent
    whole as its withdrawal it was `future_time`, and the withdrawn report stayed counted."""
    full = report(occurred_at=occurred_at, time_precision=precision)
    assert isinstance(check(full), Report)
    assert isinstance(check({**full, "revision": 1, "withdrawn": True}), WithdrawnReport)
    # and a withdrawal's time in the future is refused as a report's would be
    ahead = {**full, "occurred_at": "2021-05-20T12:00:00Z", "revision": 1, "withdrawn": True}
    assert rejected(ahead).reason is RejectReason.FUTURE_TIME


def test_a_withdrawal_in_a_cloudevents_envelope() -> None:
    envelope = {"specversion": "1.0", "id": "e", "source": "/jmc", "type": "t"}
    w = check({**envelope, "data": withdrawal(revision=7)})
    assert isinstance(w, WithdrawnReport) and w.revision == 7


@pytest.mark.parametrize(
    ("doc", "reason", "field"),
    [
        (withdrawal(revision=None), RejectReason.MISSING_FIELD, "revision"),
        (withdrawal(source=None), RejectReason.MISSING_FIELD, "source"),
        (withdrawal(report_id=None), RejectReason.MISSING_FIELD, "report_id"),
        # a report's first revision is 0: a withdrawal must be higher than what it withdraws
        (withdrawal(revision=0), RejectReason.OUT_OF_RANGE, "revision"),
        (withdrawal(revision=2**63), RejectReason.OUT_OF_RANGE, "revision"),
        (withdrawal(revision="2"), RejectReason.INVALID_TYPE, "revision"),
        (withdrawal(colour="red"), RejectReason.UNKNOWN_FIELD, "colour"),
        (withdrawal(source="s" * 65), RejectReason.TOO_LONG, "source"),
        # what rides along is still validated
        (withdrawal(location={"lat": 39.7}), RejectReason.INVALID_VALUE, "location"),
        (withdrawal(occurred_at="2021-05-12T13:00:00Z"), RejectReason.FUTURE_TIME, "occurred_at"),
        (
            withdrawal(occurred_at="2021-05-12T10:00:00"),
            RejectReason.MISSING_TIMEZONE,
            "occurred_at",
        ),
        (withdrawal(category="shelling"), RejectReason.INVALID_VALUE, "category"),
        (withdrawal(source_type="rumour"), RejectReason.INVALID_VALUE, "source_type"),
        (withdrawal(casualties={"killed": -1}), RejectReason.OUT_OF_RANGE, "casualties.killed"),
        (withdrawal(schema_version=2), RejectReason.UNSUPPORTED_VERSION, "schema_version"),
        # a full report with `withdrawn: true` is a withdrawal: it needs its revision
        (report(withdrawn=True), RejectReason.MISSING_FIELD, "revision"),
    ],
)
def test_withdrawals_are_checked(doc: dict[str, Any], reason: RejectReason, field: str) -> None:
    r = rejected(doc)
    assert r.reason is reason, r
    assert field in {e.field for e in r.errors}, r.errors


@pytest.mark.parametrize("value", [False, 1, "true", None])
def test_only_json_true_withdraws(value: Any) -> None:
    r = rejected(
        withdrawal(withdrawn=value) if value is not None else {**withdrawal(), "withdrawn": None}
    )
    # judged as a report: which misses what a report needs
    assert r.reason is RejectReason.MISSING_FIELD
    assert {"source_type", "occurred_at", "location", "category"} <= {e.field for e in r.errors}


def test_an_escaped_key_is_the_same_key() -> None:
    raw = json.dumps(withdrawal()).encode().replace(b'"withdrawn"', b'"withdr\\u0061wn"')
    assert isinstance(check(raw), WithdrawnReport)


# -- the reason list ------------------------------------------------------------------------
def test_revision_conflict_is_a_reason_and_every_reason_is_documented() -> None:
    assert RejectReason("revision_conflict") is RejectReason.REVISION_CONFLICT
    text = README.read_text(encoding="utf-8")
    section = text[text.index("Rejection reasons") :]
    section = section[: section.index("\n\n")]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    assert set(RejectReason) <= documented, set(RejectReason) - documented


# -- the JSON Schema ------------------------------------------------------------------------
SCHEMA = report_json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_schema_is_a_valid_2020_12_schema_of_two_shapes() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"].endswith("report-v1.json")
    assert [s["$ref"] for s in SCHEMA["oneOf"]] == ["#/$defs/Report", "#/$defs/WithdrawnReport"]
    shapes = SCHEMA["$defs"]
    assert set(shapes["Report"]["required"]) == {
        "report_id",
        "source",
        "source_type",
        "occurred_at",
        "location",
        "category",
    }
    assert set(shapes["WithdrawnReport"]["required"]) == {
        "report_id",
        "source",
        "revision",
        "withdrawn",
    }
    assert shapes["Report"]["properties"]["withdrawn"]["const"] is False
    assert shapes["WithdrawnReport"]["properties"]["withdrawn"]["const"] is True
    assert shapes["WithdrawnReport"]["properties"]["revision"]["minimum"] == 1
    assert "default" not in shapes["Location"]["properties"]["precision"]


@pytest.mark.parametrize(
    "doc",
    [
        report(),
        report(revision=4, claimant="AZ MoD", time_precision="month"),
        report(location={"place": "Shusha", "precision": "region"}),
        withdrawal(),
        report(revision=3, withdrawn=True),
        # invalid
        report(withdrawn=True),
        withdrawal(withdrawn=False),
        withdrawal(revision=0),
        withdrawal(colour=1),
        report(location={"lat": 39.7}),
        report(location={"lat": 39.7, "lon": None, "place": "Shusha"}),
        report(location={}),
        report(location={"place": "Shusha", "precision": "street"}),
        report(revision=-1),
    ],
)
def test_the_schema_agrees_with_the_validator(doc: dict[str, Any]) -> None:
    assert VALIDATOR.is_valid(doc) == (not isinstance(check(doc), Rejection)), doc


# Field values, valid and not, for documents built at random. Left out on purpose, as
# beyond what JSON Schema can say (the validator is stricter): times in the future or
# without an offset, and integral floats such as 2.0 (JSON Schema counts them as integers).
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=5)
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "report_id": st.one_of(_TEXT, st.just("r" * 129), st.integers(0, 3)),
    "source": st.one_of(_TEXT, st.just("s" * 65), st.none()),
    "source_type": st.sampled_from(["patrol", "dataset", "rumour", None, 3]),
    "occurred_at": st.sampled_from(["2021-05-12T10:00:00+04:00", "2021-05-01T00:00:00Z", None, 5]),
    "reported_at": st.sampled_from(["2021-05-12T10:30:00Z", None, False]),
    "location": st.fixed_dictionaries(
        {},
        optional={
            "lat": st.sampled_from([39.7, 40, 91, None, "39.7"]),
            "lon": st.sampled_from([46.7, 47, -181, None, True]),
            "place": st.sampled_from(["Shusha", "", None, "p" * 129]),
            "precision": st.sampled_from(["point", "town", "region", "street", None]),
            "height": st.just(1),
        },
    ),
    "category": st.sampled_from(["other", "drone_strike", "shelling", None]),
    "perpetrator": st.one_of(_TEXT, st.just("p" * 129), st.none(), st.just(1)),
    "target": st.sampled_from(["civilians", "AZ", None, ["az"]]),
    "casualties": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "killed": st.sampled_from([0, 3, -1, 1.5, None, "2"]),
                "wounded": st.sampled_from([0, 2, -2]),
                "civilian": st.sampled_from([True, False, 0, None]),
            },
        ),
    ),
    "description": st.sampled_from(["fire", "d" * 4001, None, 1]),
    "revision": st.sampled_from(
        [0, 1, 5, -1, MAX_REVISION, MAX_REVISION + 1, 1.5, "3", None, True]
    ),
    "withdrawn": st.sampled_from([True, False, 1, 0, "true", None]),
    "claimant": st.sampled_from(["AZ MoD", "", "c" * 129, None, 2]),
    "time_precision": st.sampled_from(["exact", "day", "week", "month", "year", None]),
    "schema_version": st.sampled_from([1, 2, "1", None]),
    "colour": st.just("red"),
}


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    # Mostly valid ones, with a few fields changed; so both shapes are reached often.
    base = draw(st.sampled_from([report(), withdrawal(), report(revision=2, withdrawn=True)]))
    names = draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=4, unique=True))
    doc = dict(base)
    for name in names:
        if draw(st.booleans()):
            doc[name] = draw(_VALUES[name])
        else:
            doc.pop(name, None)
    return doc


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_the_schema_and_the_validator_agree_on_any_document(doc: dict[str, Any]) -> None:
    result = validate_report(json.dumps(doc, ensure_ascii=False).encode(), now=NOW)
    kinds = {e.type for e in result.errors} if isinstance(result, Rejection) else set()
    if kinds and kinds <= {"not_nfc", "not_nfkc"}:
        # an identity not in NFC or NFKC: beyond JSON Schema (the fields' description says it)
        assert VALIDATOR.is_valid(doc), (doc, result)
        return
    assert VALIDATOR.is_valid(doc) == (not isinstance(result, Rejection)), (doc, result)
