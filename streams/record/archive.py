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

A unit on the changelog is one record (key `u` + zone + NUL + day), or for a day over
`UNIT_PART_BYTES` several: parts holding whole incidents, part 0 at that key and part n at
it + NUL + n (`unit_key`). Each part is, after a 2-byte format tag, three lengths, then: a
JSON summary (per incident: occurred, tally cell, reports, killed, wounded), the members'
16-byte identity keys, the 8-byte hashes of the incident ids (and of
the published ids merged into them; units written before 2026-12 hold the incidents' only), and the
zlib-compressed JSON body. A recovery reads the summary and the keys and keeps the body
compressed; it links nothing of a closed day.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from streams.record.changelog import detail_row, from_detail_row
from streams.record.incident import IncidentFields, incident_id
from streams.record.model import ReportVersion, identity_key

UNIT_PREFIX = b"u"
#: The most bytes a unit's part holds (one changelog record's value). A zone-day's unit
#: costs about 104 bytes a report, so a day of 10,000 reports made one record past Apache
#: Kafka's default `message.max.bytes` (1,048,588): aiokafka sent it (a record alone in a
#: batch takes any size), the broker refused it, the sweep only logged that, and the day
#: never closed on the changelog (every restart brought it back open, its memory and
#: recovery time growing). Half of that leaves room for the key and the batch's overhead,
#: and for a broker or a producer (`max_request_size`, 1 MiB) set below the default.
UNIT_PART_BYTES = 512 * 1024
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


def unit_key(zone: str, day: int, part: int = 0) -> bytes:
    """The key of a unit's part: part 0's is the key of a unit of one record (all units
    written before parts), a further part's that key + NUL + its number."""
    key = UNIT_PREFIX + zone.encode() + b"\x00" + str(day).encode()
    return key if part == 0 else key + b"\x00" + str(part).encode()


def decode_unit_key(key: bytes) -> tuple[str, int, int]:
    """(zone, day, part) of a unit's key (no zone contains NUL)."""
    zone, _, rest = key[len(UNIT_PREFIX) :].partition(b"\x00")
    day, _, part = rest.partition(b"\x00")
    return zone.decode(), int(day), int(part) if part else 0


def id_hash(iid: str) -> int:
    return int.from_bytes(hashlib.blake2b(iid.encode(), digest_size=8).digest(), "little")


def key_hash(key: bytes) -> int:
    """A report's 16-byte identity key as the 8 bytes the member index holds."""
    return int.from_bytes(key[:8], "little")


def summary_of(f: IncidentFields) -> Summary:
    cell = (f.zone, f.attribution, str(f.category), str(f.verification))
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
    # Each incident's id, and the ids merged into it that were published (its `versions`):
    # the incidents API finds a closed merged id's holder by them.
    ids = b"".join(
        id_hash(iid).to_bytes(8, "little")
        for members, versions in groups
        for iid in dict.fromkeys([incident_id(members[0].ident), *versions])
    )
    rows = [[[detail_row(m) for m in members], versions] for members, versions in groups]
    body = zlib.compress(orjson.dumps(rows), 1)
    return _FORMAT + _LENGTHS.pack(len(summary), len(keys), len(ids)) + summary + keys + ids + body


def encode_parts(
    groups: Sequence[Group],
    fields: Sequence[IncidentFields],
    cap: int = UNIT_PART_BYTES,
    keep: int = 0,
) -> list[tuple[int, bytes]]:
    """The values of the parts a unit of `groups` (with their `fields`) is written as, in
    order, each with how many of the groups (in order) it holds. A part holds whole
    incidents, and at most `cap` bytes unless one incident alone is larger (none comes near:
    an incident of the default rule is of a few hundred reports at most). The first `keep`
    groups stay together in the first part (a re-close: the incidents of the part it
    rewrites, `IncidentBook._close`), alone if they leave no room (or are over `cap`: a unit
    of before parts). A unit within `cap` is one part, as `encode_unit` writes it."""
    value = encode_unit(groups, fields)
    if len(value) <= cap or len(groups) <= max(keep, 1):
        return [(len(groups), value)]
    # Cut by reports, at the whole unit's bytes a report, to 90 % of `cap` (a part of a
    # day compresses about as the day does); a part still over `cap` is cut again.
    reports = sum(len(members) for members, _ in groups)
    room = 0.9 * cap * reports / len(value)
    bounds = [0]
    held = 0
    for i, (members, _) in enumerate(groups):
        if i >= keep and held and held + len(members) > room:
            bounds.append(i)
            held = 0
        held += len(members)
    if len(bounds) == 1:  # one part by the estimate, yet over `cap`: halved
        bounds.append(max(keep, len(groups) // 2))
    bounds.append(len(groups))
    out: list[tuple[int, bytes]] = []
    for j, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        out.extend(encode_parts(groups[lo:hi], fields[lo:hi], cap, keep if j == 0 else 0))
    return out


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


#: The days a unit number holds (20 bits, signed): about 535 to 3405. A report dated
#: outside them (a year-1 typo the schema accepts) keeps its day open: a closed one wrapped
#: round and could not be found.
FIRST_UNIT_DAY = -0x80000
LAST_UNIT_DAY = 0x7FFFF


class PackedIndex:
    """64-bit hash -> unit number in about 12 bytes an entry: sorted (hash << 32 | unit)
    integers in an array, and a dict of recent entries merged in when it grows past half
    the array. An entry is a hint, not a fact (a reopened unit leaves its entries behind,
    and a hash may name several units): readers check each unit it names."""

    def __init__(self) -> None:
        self._pairs = array("Q")  # the hashes, sorted; `_units` beside them
        self._units = array("I")
        self._recent: dict[int, int] = {}
        self._bulk: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._pairs) + len(self._recent) + len(self._bulk)

    def put(self, key: int, value: int) -> None:
        self._recent[key] = value
        if len(self._recent) > max(65_536, len(self._pairs) // 2):
            self._merge()

    def load(self, keys: Iterable[int], value: int) -> None:
        """Many entries at once (a recovery): merged by `seal`, in one sort."""
        self._bulk.extend((k, value) for k in keys)

    def seal(self) -> None:
        if self._bulk:
            self._merge()

    def get(self, key: int) -> list[int]:
        """Every unit the hash may name."""
        out = []
        recent = self._recent.get(key)
        if recent is not None:
            out.append(recent)
        pairs = self._pairs
        i = bisect_left(pairs, key)
        while i < len(pairs) and pairs[i] == key:
            out.append(self._units[i])
            i += 1
        return out

    def _merge(self) -> None:
        # One sort of (hash, unit) pairs; identical pairs collapse, a hash's other units
        # stay (stale hints, rare: a report closed again in another zone or day).
        # Each pair as one integer (hash << 32 | unit): a set and a sort of ints, not tuples.
        merged = {k << 32 | v for k, v in zip(self._pairs, self._units, strict=True)}
        merged.update(k << 32 | v for k, v in self._recent.items())
        merged.update(k << 32 | v for k, v in self._bulk)
        ordered = sorted(merged)
        del merged
        self._pairs = array("Q", (x >> 32 for x in ordered))
        self._units = array("I", (x & 0xFFFFFFFF for x in ordered))
        self._recent, self._bulk = {}, []


class Archive:
    """The closed units of one book: compressed bodies by (zone, day), and where each closed
    report and incident id is. A unit of several parts on the changelog is one unit here:
    its parts' bodies are kept apart only to be written back to the keys they came from."""

    def __init__(self) -> None:
        #: (zone, day) -> its part 0's body; or, when the unit spans more part numbers, a
        #: tuple of bodies by part number (None: no part of that number is held, such as one
        #: a close wrote only in part did not land, `IncidentBook.restore`)
        self.bodies: dict[tuple[str, int], bytes | tuple[bytes | None, ...]] = {}
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

    def _parts(self, unit: tuple[str, int]) -> tuple[bytes | None, ...]:
        held = self.bodies[unit]
        return (held,) if isinstance(held, bytes) else held

    def _hold(self, unit: tuple[str, int], parts: list[bytes | None]) -> None:
        while parts and parts[-1] is None:
            parts.pop()
        if not parts:
            del self.bodies[unit]
            zone, day = unit
            days = self.days[zone]
            days.discard(day)
            if not days:
                del self.days[zone]
        else:
            only = parts[0]
            self.bodies[unit] = only if len(parts) == 1 and only is not None else tuple(parts)

    def parts(self, zone: str, day: int) -> int:
        """How many part numbers a unit spans: its keys on the changelog are those of parts
        0 to this less one (`unit_key`), some perhaps not held (those a reopen deletes)."""
        return len(self._parts((zone, day)))

    def add(
        self, zone: str, day: int, head: UnitHead, *, part: int = 0, bulk: bool = False
    ) -> None:
        """Hold a unit's part (`part`: its number; one not held); `bulk` (a recovery): index
        it at `seal`."""
        number = self._number(zone, day)
        unit = (zone, day)
        if part == 0 and unit not in self.bodies:
            self.bodies[unit] = head.body
        else:
            parts = list(self._parts(unit)) if unit in self.bodies else []
            parts.extend([None] * (part + 1 - len(parts)))
            if parts[part] is not None:
                raise ValueError(f"part {part} of unit {unit} is held already")
            parts[part] = head.body
            self._hold(unit, parts)
        self.days.setdefault(zone, set()).add(day)
        self.reports += len(head.member_keys)
        if bulk:
            self._members.load(map(key_hash, head.member_keys), number)
            self._ids.load(head.id_hashes, number)
            return
        for key in head.member_keys:
            self._members.put(key_hash(key), number)
        for h in head.id_hashes:
            self._ids.put(h, number)

    def seal(self) -> None:
        self._members.seal()
        self._ids.seal()

    def take(self, zone: str, day: int) -> list[Group]:
        """Remove a unit (every part of it) and return its incidents."""
        groups = self.peek(zone, day)
        self._hold((zone, day), [])
        self.reports -= sum(len(members) for members, _ in groups)
        return groups

    def take_last(self, zone: str, day: int) -> tuple[int, list[Group]]:
        """Remove a unit's last part: its number and its incidents (a re-close writes it
        again with more, `IncidentBook._close`)."""
        parts = list(self._parts((zone, day)))
        number = len(parts) - 1
        body = parts.pop()
        assert body is not None  # (`_hold` keeps no trailing None)
        groups = decode_body(body)
        self._hold((zone, day), parts)
        self.reports -= sum(len(members) for members, _ in groups)
        return number, groups

    def unit_of_report(self, key: bytes) -> tuple[str, int] | None:
        """The closed unit that holds the report with this identity key (one the index
        names: with one, the unit to look in)."""

        def holds(groups: list[Group]) -> bool:
            return any(identity_key(*m.ident) == key for members, _ in groups for m in members)

        return self._held(self._members.get(key_hash(key)), holds)

    def unit_of_incident(self, iid: str) -> tuple[str, int] | None:
        """The closed unit of the incident `iid`, or of the one it was merged into."""

        def holds(groups: list[Group]) -> bool:
            return any(
                iid in versions or incident_id(members[0].ident) == iid
                for members, versions in groups
            )

        return self._held(self._ids.get(id_hash(iid)), holds)

    def _held(
        self, numbers: list[int], holds: Callable[[list[Group]], bool]
    ) -> tuple[str, int] | None:
        """Of the closed units the index names, the one to look in. Several: the index
        keeps stale hints (a report closed, reopened, and closed again in another zone or
        day), so the one whose body `holds` it; the first that existed was taken, and a
        withdrawal looked in a unit the report had left, missed it, and left it counted."""
        units = [u for u in map(self._unit, numbers) if u in self.bodies]
        if len(units) <= 1:
            return units[0] if units else None
        return next((u for u in units if holds(self.peek(*u))), None)

    def peek(self, zone: str, day: int) -> list[Group]:
        """A unit's incidents (of every part, in order), read without reopening it (the
        incidents API)."""
        held = self.bodies[(zone, day)]
        if isinstance(held, bytes):
            return decode_body(held)
        return [group for body in held if body is not None for group in decode_body(body)]

    def units(self) -> Iterator[tuple[str, int]]:
        return iter(self.bodies)
