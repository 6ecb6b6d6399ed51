"""Changelog entries of the record: key -> value, the latest value per key wins.

* `k` + 16-byte identity key -> the identity's revision, content digest, withdrawn flag and
  zone (`revisions.py`); written when a version changes the identity's state.
* `d` + 16-byte identity key -> the current report (JSON), or `t` + revision when it was
  taken out (+ space + the zone it moved to, when it left by a move); written when a report
  enters, changes or leaves the incidents.
* `v` + incident id -> the incident's last published version (decimal), from version 2 on:
  an id heading an incident without one is at version 1 (most incidents: one entry less).
* `r` -> the linking rule the open incidents were last published by (`encode_rule`), once
  per partition: a recovery under another rule publishes the regrouping
  (`IncidentBook.adopted`).

Entries are written only for what a step changed, so the changelog grows with the changes,
never with the size of the state. Replaying the entries (or a compacted topic of them)
rebuilds the state: incidents themselves are not stored, because they are a function of the
current reports (`linking.canonical_groups`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson

from schemas import jsonbytes
from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from streams.classify.time_of_day import checked_time_of_day
from streams.record.linking import GROUPING, LinkRule
from streams.record.model import ReportVersion, raw_names

DETAIL_PREFIX = b"d"
VERSION_PREFIX = b"v"
RULE_KEY = b"r"
_TOMBSTONE = b"t"
#: Format 2 appends the target and the place to format 1's fields; format-1 rows (in
#: changelogs and closed units written before) still read, as reports naming neither.
#: Format 3 appends the time of day, and is written only for a report stating one: every
#: other row stays format 2, which workers before it read. Format 4 appends the civilian
#: flag after the time of day (null when none), written only for civilian casualties.
#: Format 5 appends the raw names (`ReportVersion.names_raw`) after the time of day (or
#: null) and the civilian flag (true or false), written only for a report that has them;
#: its versions have none under `CEASEFIRE_INTERNAL_FORMAT` 5 (`zone_messages.read_message`).
_DETAIL_FORMAT = 2
_DETAIL_FORMAT_TIMED = 3
_DETAIL_FORMAT_CIVILIAN = 4
_DETAIL_FORMAT_NAMED = 5
#: format -> length of its rows
_DETAIL_LENGTHS = {1: 17, 2: 19, 3: 20, 4: 21, 5: 22}

#: key -> value; None deletes the key (a tombstone: a compacted topic drops it)
Entry = tuple[bytes, bytes | None]


def detail_row(r: ReportVersion) -> list[object]:
    """A report as the JSON array its entry holds (closed units hold the same rows).
    Codes by `str()`, a StrEnum member's value at a quarter of the cost of `.value`."""
    row: list[object] = [
        _DETAIL_FORMAT_NAMED
        if r.names_raw is not None
        else _DETAIL_FORMAT_CIVILIAN
        if r.civilian
        else _DETAIL_FORMAT
        if r.time_of_day is None
        else _DETAIL_FORMAT_TIMED,
        r.source,
        r.report_id,
        r.revision,
        str(r.source_type),
        r.occurred,
        r.zone,
        r.lat,
        r.lon,
        str(r.category),
        r.perpetrator,
        r.claimant,
        r.killed,
        r.wounded,
        str(r.time_precision),
        str(r.location_precision),
        r.digest.hex(),
        r.target,
        r.place,
    ]
    if r.names_raw is not None:
        row.append(None if r.time_of_day is None else list(r.time_of_day))
        row.append(r.civilian)
        row.append(list(r.names_raw))
    elif r.civilian:
        row.append(None if r.time_of_day is None else list(r.time_of_day))
        row.append(True)
    elif r.time_of_day is not None:
        row.append(list(r.time_of_day))
    return row


def encode_detail(r: ReportVersion) -> bytes:
    return jsonbytes.dumps(detail_row(r))  # compact UTF-8 JSON, as json.dumps wrote it


def encode_tombstone(revision: int, to: str | None = None) -> bytes:
    """`to`: the zone the report moved to, when it left by a move (version floors passed on
    follow it: `IncidentBook.floor`)."""
    raw = _TOMBSTONE + str(revision).encode()
    return raw if to is None else raw + b" " + to.encode()


def decode_tombstone(raw: bytes) -> tuple[int, str | None]:
    """A tombstone's revision, and the zone the report moved to (None: withdrawn, or
    written before tombstones named it)."""
    revision, _, to = raw[1:].partition(b" ")
    return int(revision), to.decode() if to else None


def decode_detail(raw: bytes) -> ReportVersion | int:
    """The report, or for a tombstone the revision it was taken out at."""
    if raw.startswith(_TOMBSTONE):
        return decode_tombstone(raw)[0]
    return from_detail_row(orjson.loads(raw))


def from_detail_row(row: object) -> ReportVersion:
    if not isinstance(row, list) or not row or _DETAIL_LENGTHS.get(row[0]) != len(row):
        raise ValueError(f"unknown report entry format: {str(row)[:40]!r}")
    (_, source, report_id, revision, source_type, occurred, zone, lat, lon, category,
     perpetrator, claimant, killed, wounded, time_precision, location_precision,
     digest) = row[:17]  # fmt: skip
    target, place = row[17:19] or (None, None)  # format 1 names neither
    time_of_day = None
    civilian = False
    names = None
    if len(row) == 20:
        time_of_day = checked_time_of_day(row[19])
    elif len(row) >= 21:  # format 4: a civilian's; 5: with raw names
        if row[19] is not None:
            time_of_day = checked_time_of_day(row[19])
        if row[20] is not True and (len(row) == 21 or row[20] is not False):
            raise ValueError(f"unknown report entry format: civilian {row[20]!r}")
        civilian = row[20]
        if len(row) == 22:
            if type(row[21]) is not list or len(row[21]) != 3:
                raise ValueError(f"unknown report entry format: raw names {row[21]!r}")
            names = raw_names(*row[21])
    return ReportVersion(
        source=source,
        report_id=report_id,
        revision=revision,
        source_type=SourceType(source_type),
        occurred=float(occurred),
        zone=zone,
        lat=float(lat),
        lon=float(lon),
        category=Category(category),
        perpetrator=perpetrator,
        claimant=claimant,
        killed=killed,
        wounded=wounded,
        time_precision=TimePrecision(time_precision),
        location_precision=LocationPrecision(location_precision),
        digest=bytes.fromhex(digest),
        target=target,
        place=place,
        time_of_day=time_of_day,
        civilian=civilian,
        names_raw=names,
    )


def version_entry(incident_id: str, version: int) -> Entry:
    return (VERSION_PREFIX + incident_id.encode(), str(version).encode())


def decode_version(key: bytes, value: bytes) -> tuple[str, int]:
    return key[len(VERSION_PREFIX) :].decode(), int(value)


def encode_rule(rule: LinkRule) -> bytes:
    """The rule's parameters and the grouping algorithm's version (`linking.GROUPING`), as
    canonical JSON: equal bytes, the same grouping of any set of reports."""
    fields: dict[str, Any] = dataclasses.asdict(rule)
    for name in ("time_widening", "place_widening_km"):
        fields[name] = {str(k): v for k, v in fields[name].items()}
    fields["grouping"] = GROUPING
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def decode_rule(raw: bytes) -> LinkRule:
    """The rule `encode_rule` wrote. Raises ValueError for one this code cannot group by:
    another grouping algorithm, a parameter it does not know (a newer worker's), a value
    out of range. A parameter it lacks (an older worker's) takes the value that groups as
    that worker did: its default, but for `chain_limit` (added 2026-12 with a default of
    100), None."""
    try:
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
        grouping = fields.pop("grouping", None)
        if grouping != GROUPING:
            raise ValueError(f"grouping {grouping!r}, this code groups by {GROUPING}")
        # Workers before the chain limit grouped every component whole.
        fields.setdefault("chain_limit", None)
        if "time_widening" in fields:
            fields["time_widening"] = {
                TimePrecision(k): float(v) for k, v in fields["time_widening"].items()
            }
        if "place_widening_km" in fields:
            fields["place_widening_km"] = {
                LocationPrecision(k): float(v) for k, v in fields["place_widening_km"].items()
            }
        return LinkRule(**fields)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"a linking rule this code cannot group by: {exc}") from exc
