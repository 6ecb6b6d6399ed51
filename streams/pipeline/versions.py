"""Between the stages: classified documents as record versions, and the messages the
identity stage sends the zone stage. Pure.

The keyed topic carries classified documents (`schemas/incident.py`: `Incident` for a
report, `ReportWithdrawal` for a withdrawal). The identity stage reads them as `Version`s
of the record; what it accepts goes to the zone of the report as one line of
`ceasefire.reports.by-zone`:

    {"op":"upsert","digest":"<hex>","iid":..,"kh":..,"civ":<bool>,"v":[<version fields>]}
    {"op":"upsert","recheck":true,...}
    {"op":"remove","source":..,"report_id":..,"revision":..}
    {"op":"remove","source":..,"report_id":..,"revision":..,"to":"<zone>"}
    {"op":"floor","source":..,"report_id":..,"version":..}

An upsert with `recheck` is a re-send at the revision counted whose identity entry kept no
check of its classification (`Decision.recheck`): the zone stage replaces the version it
holds if the classification differs and counts the outcome (`reclassified` or `duplicate`),
which the identity stage could not tell. Workers that do not know the flag apply it as any
upsert, which replaces the version alike, and count nothing.

A remove with `to` takes a report out of its old zone because it moved to zone `to`. The
zone stage that applies it sends a floor to `to` (keyed by it, so it lands on the new zone's
partition): the last version the old partition published of the incident id named after the
report (withdrawn or merged). The new zone's book then publishes that id, when it heads an
incident there, above that version (docs/record.md, "Versions across partitions"). A floor
names the report, not the id: the id is a function of it (`incident_id_for`), and the book
finds an incident by its first report.

An upsert carries the record version's fields by position and the report's civilian flag,
all that the zone stage reads, and alerts word, of the classified document. An upsert
written before this carried the whole document (`"doc"`): it is still read, and written
with `CEASEFIRE_INTERNAL_FORMAT=1` while workers of that time still run
(`document_upsert_message`; docs/operations.md, "Upgrading workers").

A report's content digests are taken once, by ingest, and carried in its document:
`digest` of the classified document (`document_digest`: what the record version holds, the
zone stage's detail rows), and `sent_digest` of the report as the source sent it
(`report_digest`), which the identity stage tells a re-send from a conflicting version by,
so that a change of the classifier (a gazetteer's new spelling, a zone's new border) never
turns a re-send into a conflict. A document without `digest` (written before it) gets the
earlier `content_digest` of its content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from schemas import jsonbytes
from schemas.codes import Category, E, Party, SourceType, by_value
from schemas.report import Report
from streams.classify.time_of_day import checked_time_of_day, parse_time_of_day
from streams.record.model import (
    DIGEST_SIZE,
    LocationPrecision,
    RawNames,
    ReportVersion,
    TimePrecision,
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
    """A keyed-topic document this monitor did not write."""


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


# Enum members by value (`by_value`), twice per report.
_SOURCE_TYPES = by_value(SourceType)
_CATEGORIES = by_value(Category)
_TIME_PRECISIONS = by_value(TimePrecision)
_LOCATION_PRECISIONS = by_value(LocationPrecision)
_UNKNOWN = Party.UNKNOWN.value


def _member(members: dict[Any, E], value: Any) -> E:
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
        # members found by one dict lookup (`_member` only to raise), the model built from
        # positions: this runs twice per report, in the identity and the zone stage.
        source = str(doc["source"])
        report_id = str(doc["report_id"])
        revision = int(doc.get("revision", 0))
        source_type = _SOURCE_TYPES.get(v := doc["source_type"]) or _member(_SOURCE_TYPES, v)
        occurred = datetime.fromisoformat(doc["occurred_at"]).timestamp()
        zone = str(doc["zone"])
        lat = float(doc["lat"])
        lon = float(doc["lon"])
        category = _CATEGORIES.get(v := doc["category"]) or _member(_CATEGORIES, v)
        perpetrator = str(doc["perpetrator"])
        claimant = doc.get("claimant")
        killed = int(doc.get("killed", 0))
        wounded = int(doc.get("wounded", 0))
        v = doc.get("time_precision", "exact")
        time_precision = _TIME_PRECISIONS.get(v) or _member(_TIME_PRECISIONS, v)
        v = doc.get("location_precision", "point")
        location_precision = _LOCATION_PRECISIONS.get(v) or _member(_LOCATION_PRECISIONS, v)
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


def upsert_message(
    version: ReportVersion,
    civilian: bool,
    incident_id: str,
    key_hash: int,
    recheck: bool = False,
    moved: bool = False,
) -> bytes:
    """The zone stage's upsert of `version`: its fields by position, not the document (a
    third of its bytes, read at two thirds of the cost), and the report's civilian flag
    (`civ`; the record version holds it as of format 5, alerts word it). `incident_id`: the id of an
    incident this report would open, and `key_hash` its murmur2 (the partition on
    `ceasefire.incidents`): worked out by the identity stage, whose process idles once its
    backlog is read, not by the zone stage, whose process is the pipeline's bottleneck.
    `recheck`: see the module docstring. `moved`: the report's previous version was in
    another zone (`"moved":true`, a key workers before it ignore): an incident it opens here
    is no new event to the counters."""
    v = version
    head = b'{"op":"upsert",%s%s"digest":"%s","iid":"%s","kh":%d,"civ":%s,"v":' % (
        b'"recheck":true,' if recheck else b"",
        b'"moved":true,' if moved else b"",
        v.digest.hex().encode(),
        incident_id.encode(),
        key_hash,
        b"true" if civilian else b"false",
    )
    fields = [
        v.source,
        v.report_id,
        v.revision,
        v.source_type,
        v.occurred,
        v.zone,
        v.lat,
        v.lon,
        v.category,
        v.perpetrator,
        v.claimant,
        v.killed,
        v.wounded,
        v.time_precision,
        v.location_precision,
        v.target,
        v.place,
    ]
    if v.time_of_day is not None:  # only when stated: every other report's is as before
        fields.append(list(v.time_of_day))
    if v.names_raw is None:
        return head + orjson.dumps(fields) + b"}"
    # a key of its own, which workers before it ignore (a field more in `v` they refuse)
    return head + orjson.dumps(fields) + b',"raw":' + orjson.dumps(v.names_raw) + b"}"


def document_upsert_message(
    doc_raw: bytes, digest: bytes, incident_id: str, key_hash: int
) -> bytes:
    """The upsert as workers before the fields were carried wrote and read it: the whole
    classified document (`CEASEFIRE_INTERNAL_FORMAT=1`, for a rolling upgrade from them;
    they read `doc` and `digest` and ignore the rest)."""
    return (
        b'{"op":"upsert","digest":"%s","iid":"%s","kh":%d,"doc":'
        % (digest.hex().encode(), incident_id.encode(), key_hash)
        + doc_raw
        + b"}"
    )


def remove_message(source: str, report_id: str, revision: int, to: str | None = None) -> bytes:
    """`to`: the zone the report moved to (None: a withdrawal)."""
    msg: dict[str, Any] = {
        "op": "remove",
        "source": source,
        "report_id": report_id,
        "revision": revision,
    }
    if to is not None:
        msg["to"] = to
    return jsonbytes.dumps(msg)


def floor_message(source: str, report_id: str, version: int) -> bytes:
    return jsonbytes.dumps(
        {"op": "floor", "source": source, "report_id": report_id, "version": version}
    )


class Upsert(NamedTuple):
    version: ReportVersion
    #: the report's civilian flag (as sent: the version's is False under format 4)
    civilian: bool
    #: the id of an incident the report opens, and its murmur2 (None in an upsert written
    #: before they were carried)
    incident_id: str | None = None
    key_hash: int | None = None
    #: the classified document, when the upsert carried it (the earlier form): what an
    #: alert input of the earlier form is made of (`CEASEFIRE_INTERNAL_FORMAT=1`)
    doc: dict[str, Any] | None = None
    #: a re-send to compare with the version held (module docstring)
    recheck: bool = False
    #: the report's previous version was in another zone (`upsert_message`)
    moved: bool = False


class Remove(NamedTuple):
    source: str
    report_id: str
    revision: int
    #: the zone the report moved to (None: withdrawn)
    to: str | None = None


class Floor(NamedTuple):
    """The incident id named after report (source, report_id) was published at `version`
    by another zone partition: this one publishes it above that."""

    source: str
    report_id: str
    version: int


def _text(msg: dict[str, Any], name: str) -> str:
    value = msg[name]
    if not isinstance(value, str) or not value:
        raise BadDocument(f"not a message of the zone stage: {name} {value!r} is not a text")
    return value


def _optional_text(value: Any, name: str) -> str | None:
    if value is not None and type(value) is not str:
        raise BadDocument(f"not a message of the zone stage: {name} {value!r} is not a text")
    return value


def _number(value: Any, name: str) -> float:
    if type(value) is not float and type(value) is not int:
        raise BadDocument(f"not a message of the zone stage: {name} {value!r} is not a number")
    return value


def _integer(value: Any, name: str) -> int:
    if type(value) is not int:
        raise BadDocument(f"not a message of the zone stage: {name} {value!r} is not an integer")
    return value


def _time_of_day(value: Any) -> tuple[int, int]:
    try:
        return checked_time_of_day(value)
    except ValueError:
        raise BadDocument(f"not a message of the zone stage: time of day {value!r}") from None


def _names_raw(value: Any) -> RawNames | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 3:
        raise BadDocument(f"not a message of the zone stage: raw {value!r}")
    try:
        return raw_names(*value)
    except ValueError:
        raise BadDocument(f"not a message of the zone stage: raw {value!r}") from None


def _version_of_fields(
    fields: Any, digest: bytes, civilian: bool, names: RawNames | None = None
) -> ReportVersion:
    """The fields `upsert_message` writes, checked as it writes them."""
    if type(fields) is not list or not 17 <= len(fields) <= 18:
        raise BadDocument(f"not a message of the zone stage: fields {fields!r}")
    time_of_day = _time_of_day(fields.pop()) if len(fields) == 18 else None
    (
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
        target,
        place,
    ) = fields
    for name, value in (("source", source), ("report_id", report_id), ("zone", zone)):
        if type(value) is not str or not value:
            raise BadDocument(f"not a message of the zone stage: {name} {value!r} is not a text")
    if type(perpetrator) is not str:
        raise BadDocument(f"not a message of the zone stage: perpetrator {perpetrator!r}")
    return ReportVersion(
        source,
        report_id,
        _integer(revision, "revision"),
        _member(_SOURCE_TYPES, source_type),
        _number(occurred, "occurred"),
        zone,
        _number(lat, "lat"),
        _number(lon, "lon"),
        _member(_CATEGORIES, category),
        perpetrator,
        _optional_text(claimant, "claimant"),
        _integer(killed, "killed"),
        _integer(wounded, "wounded"),
        _member(_TIME_PRECISIONS, time_precision),
        _member(_LOCATION_PRECISIONS, location_precision),
        digest,
        _optional_text(target, "target"),
        _optional_text(place, "place"),
        time_of_day,
        civilian,
        names,
    )


def read_message(
    raw: bytes, keep_civilian: bool = True, keep_raw: bool = True
) -> Upsert | Remove | Floor:
    """A line of `ceasefire.reports.by-zone`. Raises BadDocument. Not `keep_civilian`:
    the record version's civilian flag is left False (the upsert's own stays), so that the
    record's changelog rows are those workers before format 5 read; not `keep_raw`: its raw
    names are left out, for the rows workers before format 6 read."""
    try:
        msg = orjson.loads(raw)
        if msg["op"] == "remove":
            to = msg.get("to")
            return Remove(
                str(msg["source"]),
                str(msg["report_id"]),
                int(msg["revision"]),
                None if to is None else _text(msg, "to"),
            )
        if msg["op"] == "floor":
            # written by the zone stage only: every field exactly as it writes them
            version = msg["version"]
            if type(version) is not int or version < 1:
                raise BadDocument(f"not a message of the zone stage: version {version!r}")
            return Floor(_text(msg, "source"), _text(msg, "report_id"), version)
        if msg["op"] == "upsert":
            digest = bytes.fromhex(msg["digest"])
            fields = msg.get("v")
            doc: dict[str, Any] | None = None
            if fields is not None:
                civilian = msg["civ"]
                if type(civilian) is not bool:
                    raise BadDocument(f"not a message of the zone stage: civ {civilian!r}")
                names = _names_raw(msg.get("raw")) if keep_raw else None
                version = _version_of_fields(fields, digest, civilian and keep_civilian, names)
            else:  # written before the fields were carried: the whole document
                doc = msg["doc"]
                kept = doc
                if not keep_civilian:
                    kept = {**kept, "civilian": False}
                if not keep_raw:
                    kept = {
                        **kept,
                        "perpetrator_raw": None,
                        "target_raw": None,
                        "claimant_raw": None,
                    }
                found = version_of(kept, digest)
                if not isinstance(found, ReportVersion):
                    raise BadDocument("an upsert of a withdrawal")
                version, civilian = found, doc.get("civilian") is True
            iid, kh = msg.get("iid"), msg.get("kh")
            if type(iid) is not str or type(kh) is not int:
                iid = kh = None
            return Upsert(
                version,
                civilian,
                iid,
                kh,
                doc,
                msg.get("recheck") is True,
                msg.get("moved") is True,
            )
        raise BadDocument(f"unknown op {msg['op']!r}")
    except BadDocument:
        raise
    except KeyError as exc:
        raise BadDocument(f"not a message of the zone stage: missing {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadDocument(f"not a message of the zone stage: {exc!r}") from None
