"""What ingest's rejections say: a field error for an unknown place (SPEC: dead letters hold
the reason and the field errors), and why a CSV row the feed could not convert was sent as its
text, whatever the reason its text is refused for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from schemas.codes import RejectReason
from schemas.dead_letter import UNCONVERTED_HEADER, DeadLetter
from schemas.validation import MAX_MESSAGE_BYTES, Rejection
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.intake import Rejected, process_record, route
from streams.web.report_intake import examine_item

NOW = datetime(2024, 1, 1, tzinfo=UTC)
CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())
WHY = b"event_date '' is not a date"


def report(**changes: Any) -> bytes:
    doc = {
        "report_id": "r1",
        "source": "pkf-op-1",
        "source_type": "observation_post",
        "occurred_at": "2023-12-01T10:00:00+04:00",
        "location": {"lat": 39.8, "lon": 46.75},
        "category": "small_arms_fire",
    }
    return json.dumps(doc | changes).encode()


def record(
    value: bytes, headers: list[tuple[str, bytes]] | None = None, timestamp: int = 0
) -> ConsumerRecord:  # type: ignore[type-arg]
    return ConsumerRecord(
        topic="ceasefire.reports",
        partition=0,
        offset=7,
        timestamp=timestamp,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=headers or [],
    )


def dead(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> DeadLetter:
    routed = route(record(value, headers), CLASSIFIER, NOW)
    assert isinstance(routed, Rejected), routed
    return DeadLetter.model_validate_json(routed.value)


# -- unknown_place: a field error on location.place -----------------------------------------
def test_an_unknown_place_names_the_field() -> None:
    raw = report(location={"place": "Atlantis"})
    result = process_record(raw, NOW, CLASSIFIER)
    assert isinstance(result, Rejection) and result.reason is RejectReason.UNKNOWN_PLACE
    assert [(e.field, e.type) for e in result.errors] == [("location.place", "unknown_place")]
    assert "'Atlantis' is not in the gazetteer" in result.errors[0].message
    letter = dead(raw)
    assert letter.reason is RejectReason.UNKNOWN_PLACE
    assert [(e.field, e.type) for e in letter.errors] == [("location.place", "unknown_place")]
    # the HTTP API's item (202, with the item's errors) says it too
    item = examine_item(0, raw, received=NOW, classifier=CLASSIFIER)
    assert not hasattr(item, "key"), item
    errors = [e.as_dict() for e in item.rejection.errors]  # type: ignore[union-attr]
    assert [(e["field"], e["type"]) for e in errors] == [("location.place", "unknown_place")]


# -- a row the feed could not convert: why, whatever its text is refused for -----------------
@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b"12345,", RejectReason.INVALID_JSON),
        (b"\xff,AZE1", RejectReason.INVALID_ENCODING),
        (b"12345", RejectReason.NOT_AN_OBJECT),  # the row's text happens to be JSON
        (b'"AZE1"', RejectReason.NOT_AN_OBJECT),
        (b"[1,2]", RejectReason.NOT_AN_OBJECT),
        (b'{"a":1}', RejectReason.UNKNOWN_FIELD),
        (b"x" * (MAX_MESSAGE_BYTES + 1), RejectReason.TOO_LARGE),
        (b"[" * 40 + b"]" * 40, RejectReason.TOO_DEEP),
    ],
)
def test_an_unconverted_row_says_why_whatever_the_reason(row: bytes, reason: RejectReason) -> None:
    letter = dead(row, [(UNCONVERTED_HEADER, WHY)])
    assert letter.reason is reason
    assert letter.message.startswith(
        "a CSV row the feed could not convert (event_date '' is not a date), sent as its text: "
    ), letter.message
    plain = dead(row)
    assert plain.reason is reason and "CSV" not in plain.message
    assert letter.message.endswith(plain.message)
    assert letter.errors == plain.errors


def test_a_converted_row_ignores_the_header() -> None:
    routed = route(record(report(), [(UNCONVERTED_HEADER, WHY)]), CLASSIFIER, NOW)
    assert isinstance(routed, tuple)


# -- future_time: judged at the record's arrival, not when the stage reads it -------------------
@pytest.mark.parametrize("lag", [timedelta(0), timedelta(minutes=1), timedelta(days=3)])
def test_a_time_from_the_future_is_judged_at_arrival_whatever_the_lag(lag: timedelta) -> None:
    """It was judged at the batch's clock: a report 6 minutes ahead of its sender's clock was
    dead-lettered by a stage keeping up and counted by one a minute behind (a backlog, a
    restart, a record read again), and `feed` had said it would be rejected."""
    sent = NOW - timedelta(hours=1)
    stamp = int(sent.timestamp() * 1000)
    ahead = report(occurred_at=(sent + timedelta(minutes=6)).isoformat())
    routed = route(record(ahead, timestamp=stamp), CLASSIFIER, sent + lag)
    assert isinstance(routed, Rejected) and routed.reason is RejectReason.FUTURE_TIME
    within = report(occurred_at=(sent + timedelta(minutes=4)).isoformat())
    assert not isinstance(route(record(within, timestamp=stamp), CLASSIFIER, sent + lag), Rejected)


def test_a_record_stamped_ahead_of_the_stage_is_judged_at_the_stage_s_clock() -> None:
    """A producer's clock ahead of ours is no arrival time (`stamped_time`)."""
    stamp = int((NOW + timedelta(hours=1)).timestamp() * 1000)
    ahead = report(occurred_at=(NOW + timedelta(minutes=30)).isoformat())
    routed = route(record(ahead, timestamp=stamp), CLASSIFIER, NOW)
    assert isinstance(routed, Rejected) and routed.reason is RejectReason.FUTURE_TIME
