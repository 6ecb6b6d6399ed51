"""Closed zone-days: the incident book's cold storage (docs/record.md, "Retention").

History is read by the hour and the day long after its reports stop changing. Holding every
report of years of history as linked objects would cost about 2 KB each (2.7 GiB for a
million) and a recovery that links them all again. So once every report of a zone-day's
incidents is older than the retention, the book *closes* the day: its incidents leave the
linker and are kept here as one compressed unit (the reports of each incident, in canonical
order, with the versions of their ids), about a tenth of the memory. Nothing is lost and
nothing changes meaning:

* the tally keeps the closed incidents' cells and a packed summary of each (exact window
  edges), so tallies, series and alert inputs never see a close;
* a change that could touch a closed day (a late report, a revision or withdrawal of a
  closed report, found through `members`) first *reopens* every closed day within its reach,
  restoring exactly the incidents that were closed; the change then links as if nothing had
  ever been closed, and the day closes again at a later sweep;
* the incidents API reads closed incidents from their unit (`incidents_of`).

A unit on the changelog (key `u` + zone + NUL + day) is, after a 2-byte format tag, three
lengths, then: a JSON summary (per incident: occurred, tally cell, reports, killed,
wounded), the members' 16-byte identity keys, the incident ids' 8-byte hashes, and the
zlib-compressed JSON body. A recovery reads the summary and the keys and keeps the body
compressed; it links nothing of a closed day.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from streams.record.changelog import detail_row, from_detail_row
from streams.record.incident import IncidentFields, incident_id
from streams.record.model import Ident, ReportVersion, identity_key

UNIT_PREFIX = b"u"
_FORMAT = b"U1"
_LENGTHS = struct.Struct("<III")
DAY = 86_400

#: (zone, attribution, category, verification): an incident's tally cell
Cell = tuple[str, str, str, str]
#: (occurred, cell, reports, killed, wounded): what the tally keeps of a closed incident
Summary = tuple[float, Cell, int, int, int]
#: An incident's reports in canonical order (the first is its anchor) and the last
#: published version of each of their ids (ids that never headed an incident: absent).
Group = tuple[list[ReportVersion], dict[str, int]]


def day_of(t: float) -> int:
    return int(t // DAY)


def unit_key(zone: str, day: int) -> bytes:
    return UNIT_PREFIX + zone.encode() + b"\x00" + str(day).encode()


def decode_unit_key(key: bytes) -> tuple[str, int]:
    zone, _, day = key[len(UNIT_PREFIX) :].partition(b"\x00")
    return zone.decode(), int(day)


def id_hash(iid: str) -> int:
    return int.from_bytes(hashlib.blake2b(iid.encode(), digest_size=8).digest(), "little")


def key_hash(key: bytes) -> int:
    """A report's 16-byte identity key as the 8 bytes the member index holds."""
    return int.from_bytes(key[:8], "little")


def summary_of(f: IncidentFields) -> Summary:
    cell = (f.zone, f.attribution, f.category.value, f.verification.value)
    return (f.occurred, cell, len(f.reports), f.killed, f.wounded)


@dataclass(frozen=True, slots=True)
class UnitHead:
    """What a recovery reads of a unit without decompressing it."""

    summaries: list[Summary]
    member_keys: list[bytes]
    id_hashes: list[int]
    body: bytes


def encode_unit(groups: Sequence[Group], fields: Sequence[IncidentFields]) -> bytes:
    cells: dict[Cell, int] = {}
    incidents = []
    for f in fields:
        occurred, cell, reports, killed, wounded = summary_of(f)
        incidents.append([occurred, cells.setdefault(cell, len(cells)), reports, killed, wounded])
    summary = orjson.dumps([list(map(list, cells)), incidents])
    keys = b"".join(identity_key(*m.ident) for members, _ in groups for m in members)
    ids = b"".join(
        id_hash(incident_id(members[0].ident)).to_bytes(8, "little") for members, _ in groups
    )
    rows = [[[detail_row(m) for m in members], versions] for members, versions in groups]
    body = zlib.compress(orjson.dumps(rows), 1)
    return _FORMAT + _LENGTHS.pack(len(summary), len(keys), len(ids)) + summary + keys + ids + body


def read_head(value: bytes) -> UnitHead:
    if not value.startswith(_FORMAT):
        raise ValueError(f"unknown unit format: {value[:8]!r}")
    at = len(_FORMAT)
    n_summary, n_keys, n_ids = _LENGTHS.unpack_from(value, at)
    at += _LENGTHS.size
    cells, incidents = orjson.loads(value[at : at + n_summary])
    at += n_summary
    cell_of = [tuple(c) for c in cells]
    summaries: list[Summary] = [
        (float(o), cell_of[c], r, k, w)  # type: ignore[misc]
        for o, c, r, k, w in incidents
    ]
    keys = value[at : at + n_keys]
    at += n_keys
    ids = value[at : at + n_ids]
    at += n_ids
    return UnitHead(
        summaries,
        [keys[i : i + 16] for i in range(0, len(keys), 16)],
        [int.from_bytes(ids[i : i + 8], "little") for i in range(0, len(ids), 8)],
        value[at:],
    )


def decode_body(body: bytes) -> list[Group]:
    return [
        ([from_detail_row(row) for row in rows], {str(k): int(v) for k, v in versions.items()})
        for rows, versions in orjson.loads(zlib.decompress(body))
    ]


class PackedIndex:
    """64-bit hash -> unit number in about 12 bytes an entry: two sorted arrays, and a dict
    of recent entries merged in when it grows past half the arrays. An entry is a hint, not
    a fact (a reopened unit leaves its entries behind): readers check the unit."""

    def __init__(self) -> None:
        self._keys = array("Q")
        self._values = array("I")
        self._recent: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._keys) + len(self._recent)

    def put(self, key: int, value: int) -> None:
        self._recent[key] = value
        if len(self._recent) > max(65_536, len(self._keys) // 2):
            self._merge()

    def get(self, key: int) -> int | None:
        value = self._recent.get(key)
        if value is not None:
            return value
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return self._values[i]
        return None

    def _merge(self) -> None:
        recent = sorted(self._recent.items())
        keys, values = array("Q"), array("I")
        old_k, old_v = self._keys, self._values
        i, n = 0, len(old_k)
        for k, v in recent:
            while i < n and old_k[i] < k:
                keys.append(old_k[i])
                values.append(old_v[i])
                i += 1
            if i < n and old_k[i] == k:
                i += 1  # the recent entry wins
            keys.append(k)
            values.append(v)
        keys.extend(old_k[i:])
        values.extend(old_v[i:])
        self._keys, self._values, self._recent = keys, values, {}


class Archive:
    """The closed units of one book: compressed bodies by (zone, day), and where each closed
    report and incident id is."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, int], bytes] = {}
        #: zone -> its closed days
        self.days: dict[str, set[int]] = {}
        self.reports = 0
        self._members = PackedIndex()
        self._ids = PackedIndex()
        self._zones: list[str] = []
        self._zone_no: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.bodies)

    def __contains__(self, unit: tuple[str, int]) -> bool:
        return unit in self.bodies

    def _number(self, zone: str, day: int) -> int:
        z = self._zone_no.get(zone)
        if z is None:
            if len(self._zones) >= 4096:
                raise ValueError("more than 4,096 zones: unit numbers hold 12 bits of zone")
            z = self._zone_no[zone] = len(self._zones)
            self._zones.append(zone)
        return (z << 20) | (day & 0xFFFFF)

    def _unit(self, number: int) -> tuple[str, int]:
        day = number & 0xFFFFF
        if day & 0x80000:  # days before 1970 (negative), two's complement in 20 bits
            day -= 0x100000
        return self._zones[number >> 20], day

    def add(self, zone: str, day: int, head: UnitHead) -> None:
        number = self._number(zone, day)
        self.bodies[(zone, day)] = head.body
        self.days.setdefault(zone, set()).add(day)
        self.reports += len(head.member_keys)
        for key in head.member_keys:
            self._members.put(key_hash(key), number)
        for h in head.id_hashes:
            self._ids.put(h, number)

    def take(self, zone: str, day: int) -> list[Group]:
        """Remove a unit and return its incidents."""
        groups = decode_body(self.bodies.pop((zone, day)))
        days = self.days[zone]
        days.discard(day)
        if not days:
            del self.days[zone]
        self.reports -= sum(len(members) for members, _ in groups)
        return groups

    def unit_of_report(self, key: bytes) -> tuple[str, int] | None:
        """The closed unit that may hold the report with this identity key."""
        number = self._members.get(key_hash(key))
        if number is None:
            return None
        unit = self._unit(number)
        return unit if unit in self.bodies else None

    def unit_of_incident(self, iid: str) -> tuple[str, int] | None:
        number = self._ids.get(id_hash(iid))
        if number is None:
            return None
        unit = self._unit(number)
        return unit if unit in self.bodies else None

    def peek(self, zone: str, day: int) -> list[Group]:
        """A unit's incidents, read without reopening it (the incidents API)."""
        return decode_body(self.bodies[(zone, day)])

    def units(self) -> Iterator[tuple[str, int]]:
        return iter(self.bodies)


def anchors_of(groups: Sequence[Group]) -> list[Ident]:
    return [members[0].ident for members, _ in groups]
