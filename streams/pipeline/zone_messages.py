"""The messages the identity stage sends the zone stage: the lines of
`ceasefire.reports.by-zone`, written and read. Pure.

What the identity stage accepts of the classified documents (`streams/record/documents.py`)
goes to the zone of the report as one line of `ceasefire.reports.by-zone`:

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
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from schemas import jsonbytes
from streams.classify.time_of_day import checked_time_of_day
from streams.record.documents import (
    CATEGORIES,
    LOCATION_PRECISIONS,
    SOURCE_TYPES,
    TIME_PRECISIONS,
    BadDocument,
    member_of,
    version_of,
)
from streams.record.model import RawNames, ReportVersion, raw_names


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
        member_of(SOURCE_TYPES, source_type),
        _number(occurred, "occurred"),
        zone,
        _number(lat, "lat"),
        _number(lon, "lon"),
        member_of(CATEGORIES, category),
        perpetrator,
        _optional_text(claimant, "claimant"),
        _integer(killed, "killed"),
        _integer(wounded, "wounded"),
        member_of(TIME_PRECISIONS, time_precision),
        member_of(LOCATION_PRECISIONS, location_precision),
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
