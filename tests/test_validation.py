"""Report validation: every way a report can be wrong gives a reason code and field errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codes import RejectReason
from schemas.report import Report
from schemas.validation import MAX_MESSAGE_BYTES, Rejection, validate_report

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


def check(doc: Any) -> Report | Rejection:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return validate_report(raw, now=NOW)


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
        (report(report_id=""), RejectReason.TOO_LONG, "report_id"),
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
