"""Classified documents (the keyed topic's lines) as record versions, and their digests. Pure.

The keyed topic carries classified documents (`schemas/incident.py`: `Incident` for a
report, `ReportWithdrawal` for a withdrawal); the identity stage reads them as `Version`s of
the record (`version_of`), as do the backtest and the tools that replay documents.

A report's content digests are taken once, by ingest (`streams/intake.py`), and carried in
its document: `digest` of the classified document (`document_digest`: what the record
version holds, the zone stage's detail rows), and `sent_digest` of the report as the source
sent it (`report_digest`), which the identity stage tells a re-send from a conflicting
version by, so that a change of the classifier (a gazetteer's new spelling, a zone's new
border) never turns a re-send into a conflict. A document without `digest` (written before
it) gets the earlier `content_digest` of its content (`legacy_digest`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.codes import Category, E, LocationPrecision, Party, SourceType, TimePrecision, by_value
from schemas.report import Report
from streams.classify.time_of_day import parse_time_of_day
from streams.record.model import (
    DIGEST_SIZE,
    ReportVersion,
    Version,
    Withdrawal,
    content_digest,
    raw_names,
)

#: Fields of a classified document that are not the report's content: a re-send differs
#: in them (arrival time; `reported_at` defaults to it; derived ids).
_NOT_CONTENT = frozenset(
    {
        "kind",
        "incident_id",
        "revision",
        "received_at",
        "reported_at",
        "withdrawn",
        "digest",
        "sent_digest",
        "input",  # where ingest read it: no content
    }
)


def document_digest(fields: Mapping[str, Any]) -> bytes:
    """The content digest of a classified report given as its fields (in the model's
    order, as `Classifier.fields` gives them): 8 bytes of blake2b over the JSON of its
    content, which is the fields minus `_NOT_CONTENT`. Equal content, equal digest, as
    with `content_digest`, at a tenth of its cost (no key sort, no json module)."""
    content = dict(fields)  # a copy less the few non-content keys: a third cheaper than
    for key in _NOT_CONTENT:  # filtering every field, and the same order, so the same bytes
        content.pop(key, None)
    if content.get("time_of_day", 0) is None:
        # kept since 2026-11-30: a document stating none digests as before it was kept
        del content["time_of_day"]
    occurred = content.get("occurred_at")
    if isinstance(occurred, datetime) and occurred.utcoffset():
        # one instant, whatever offset it is written in: a re-send in another is a
        # duplicate, not a reclassification (UTC times digest as they always did)
        content["occurred_at"] = occurred.astimezone(UTC)
    canonical = orjson.dumps(content, option=orjson.OPT_UTC_Z)
    return hashlib.blake2b(canonical, digest_size=DIGEST_SIZE).digest()


def report_digest(report: Report) -> bytes:
    """The content digest of a report as its source sent it (validated, not classified):
    8 bytes of blake2b over its content fields by position, so that two sendings of one
    content digest alike whatever their key order, spacing, time offset or arrival. Not
    content: `revision`, `reported_at` (it defaults to the arrival), `withdrawn`,
    `schema_version`. No casualties and zero casualties are one content, as are a point's
    default precision and the same precision given."""
    loc = report.location
    c = report.casualties
    content = (  # enum members as they are: orjson writes their values
        report.report_id,
        report.source,
        report.source_type,
        report.occurred_at.timestamp(),
        loc.lat,
        loc.lon,
        loc.place,
        loc.precision,
        report.category,
        report.perpetrator,
        report.target,
        (0, 0, False) if c is None else (c.killed, c.wounded, c.civilian),
        report.description,
        report.claimant,
        report.time_precision,
    )
    return hashlib.blake2b(orjson.dumps(content), digest_size=DIGEST_SIZE).digest()


class BadDocument(ValueError):
    """A keyed-topic document (or a message of the zone stage, `streams/pipeline/
    zone_messages.py`) this monitor did not write."""


def sent_digest_of(doc: Mapping[str, Any]) -> bytes | None:
    """The digest of the report as sent a document carries (`sent_digest`), None when it
    carries none (a withdrawal; a document of an ingest before it). Raises BadDocument."""
    carried = doc.get("sent_digest")
    if carried is None:
        return None
    try:
        digest = bytes.fromhex(carried) if isinstance(carried, str) else b""
    except ValueError:
        digest = b""
    if len(digest) != DIGEST_SIZE:
        raise BadDocument(f"sent_digest {carried!r} is not {DIGEST_SIZE} bytes of hex")
    return digest


# Enum members by value (`by_value`), looked up twice per report (here and in the zone
# stage's messages, `streams/pipeline/zone_messages.py`).
SOURCE_TYPES = by_value(SourceType)
CATEGORIES = by_value(Category)
TIME_PRECISIONS = by_value(TimePrecision)
LOCATION_PRECISIONS = by_value(LocationPrecision)
_UNKNOWN = Party.UNKNOWN.value


def member_of(members: dict[Any, E], value: Any) -> E:
    found = members.get(value)
    if found is None:
        raise ValueError(f"{value!r} is not a valid code")
    return found


def legacy_digest(doc: Mapping[str, Any]) -> bytes:
    """A classified document's digest as taken before ingest carried `document_digest`
    (identity entries of format 1 hold this form)."""
    return content_digest({k: v for k, v in doc.items() if k not in _NOT_CONTENT})


def version_of(doc: dict[str, Any], digest: bytes | None = None) -> Version:
    """The record version a classified document stands for. Raises BadDocument."""
    try:
        if doc.get("kind") == "withdrawal":
            return Withdrawal(str(doc["source"]), str(doc["report_id"]), int(doc["revision"]))
        if digest is None:
            carried = doc.get("digest")
            # a document written before ingest carried it: the digest of that time
            digest = bytes.fromhex(carried) if isinstance(carried, str) else legacy_digest(doc)
        # Fields read in the order of the model (the first bad one names the error), enum
        # members found by one dict lookup (`member_of` only to raise), the model built from
        # positions: this runs twice per report, in the identity and the zone stage.
        source = str(doc["source"])
        report_id = str(doc["report_id"])
        revision = int(doc.get("revision", 0))
        source_type = SOURCE_TYPES.get(v := doc["source_type"]) or member_of(SOURCE_TYPES, v)
        occurred = datetime.fromisoformat(doc["occurred_at"]).timestamp()
        zone = str(doc["zone"])
        lat = float(doc["lat"])
        lon = float(doc["lon"])
        category = CATEGORIES.get(v := doc["category"]) or member_of(CATEGORIES, v)
        perpetrator = str(doc["perpetrator"])
        claimant = doc.get("claimant")
        killed = int(doc.get("killed", 0))
        wounded = int(doc.get("wounded", 0))
        v = doc.get("time_precision", "exact")
        time_precision = TIME_PRECISIONS.get(v) or member_of(TIME_PRECISIONS, v)
        v = doc.get("location_precision", "point")
        location_precision = LOCATION_PRECISIONS.get(v) or member_of(LOCATION_PRECISIONS, v)
        # `unknown` (the classifier's code for no target or an unmatched name) is no
        # evidence: None, like a document written before targets were read
        target = doc.get("target")
        if target is not None:
            target = None if target == _UNKNOWN else str(target)
        place = doc.get("place")
        if place is not None:
            place = str(place) or None
        time_of_day = doc.get("time_of_day")
        if time_of_day is not None:
            time_of_day = parse_time_of_day(time_of_day)
        return ReportVersion(
            source,
            report_id,
            revision,
            source_type,
            occurred,
            zone,
            lat,
            lon,
            category,
            perpetrator,
            claimant,
            killed,
            wounded,
            time_precision,
            location_precision,
            digest,
            target,
            place,
            time_of_day,
            doc.get("civilian") is True,
            raw_names(doc.get("perpetrator_raw"), doc.get("target_raw"), doc.get("claimant_raw")),
        )
    except KeyError as exc:
        raise BadDocument(f"not a classified report or withdrawal: missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadDocument(f"not a classified report or withdrawal: {exc!r}") from None
