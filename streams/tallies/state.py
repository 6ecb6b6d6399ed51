"""Event-time tallies of incidents, and queries over several partitions.

The zone stage feeds every published incident version to its partition's
`IncidentTally`: an open version replaces the incident's previous contribution, a merged
or withdrawn one takes it back. So a revised report moves its incident's counts, and a
withdrawn one leaves them (issue 10).

Counts live in hourly cells by the incident's event time (its earliest report). A window
query sums whole hours from their cells and scans only the incidents of the two edge hours
(`edge`), which makes answers exact to the second at any `as_of`. An incident the book has
closed (`streams/record/archive.py`) keeps its cell and, for the edges, a packed summary of
24 bytes instead of its fields; a reopen turns it back. In a row, `incidents` counts
incidents and `reports` the current reports they hold; `killed` and `wounded` are each
incident's figures (never summed across the reports of one event).
"""

from __future__ import annotations

import struct
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from streams.record.archive import Summary, summary_of
from streams.record.incident import IncidentFields, IncidentRecord, Status
from streams.tallies.windows import grouping, seconds_before, window_seconds

BUCKET_SECONDS = 3600

#: [incidents, reports, killed, wounded]
Totals = list[int]
#: (zone, party, category, verification)
Cell = tuple[str, str, str, str]

FIELD_INDEX = {"zone": 0, "party": 1, "category": 2, "verification": 3}

Row = dict[str, str | int]


#: A closed incident at an edge: occurred, cell number, reports, killed, wounded.
_PACKED = struct.Struct("<dIIII")
#: A cell of an hour whose incidents are all closed: cell number, incidents, reports,
#: killed, wounded (28 bytes, where a cell in a dict took about 150). The casualty sums
#: are 64-bit: an hour's cell sums many incidents of up to a million killed each (4,295
#: of them overflowed 32 bits: the hour's counts were lost, and the partition's recovery
#: failed for good).
_CELL = struct.Struct("<IIIQQ")
#: What an edge incident adds: (occurred, cell, (incidents, reports, killed, wounded))
Edge = tuple[float, Cell, tuple[int, int, int, int]]


def cell_of(f: IncidentFields) -> Cell:
    # str(), not `.value` (a Python-level property): the code, at a quarter of the cost
    return (f.zone, f.attribution, str(f.category), str(f.verification))


@dataclass(slots=True)
class IncidentTally:
    """The open incidents of one partition, by hour of event time.

    An hour's cells are a dict while the hour holds an open incident (`hours`), and packed
    once the book closes the last of them (`close`, `load_closed`: history, which only
    queries read); a change in a packed hour (a reopen) unpacks it first. Read them with
    `cells_of`."""

    open: dict[str, IncidentFields] = field(default_factory=dict)
    hours: dict[int, dict[Cell, Totals]] = field(default_factory=dict)
    #: hour -> its cells, packed (`_CELL`), for hours without an open incident
    packed: dict[int, bytes] = field(default_factory=dict)
    members: dict[int, set[str]] = field(default_factory=dict)
    #: hour -> the closed incidents of that hour, packed (`_PACKED`)
    closed: dict[int, bytearray] = field(default_factory=dict)
    #: every cell held, once (its number in the packed summaries is its index)
    cells: list[Cell] = field(default_factory=list)
    _cell_no: dict[Cell, int] = field(default_factory=dict)

    def apply(self, record: IncidentRecord) -> None:
        """An incident version as published: it replaces what the tally held of it. A
        revision that moves a report to another zone of this partition gives its id an open
        version in the new zone and a withdrawn one in the old, in either order: a merged or
        withdrawn version takes back only what its own zone holds."""
        old = self.open.get(record.incident_id)
        if old is not None and record.status is not Status.OPEN and old.zone != record.fields.zone:
            return  # the id lives on in another zone
        if old is not None:
            del self.open[record.incident_id]
            self._add(record.incident_id, old, -1)
        if record.status is Status.OPEN:
            self.open[record.incident_id] = record.fields
            self._add(record.incident_id, record.fields, 1)

    def _add(self, iid: str, f: IncidentFields, sign: int) -> None:
        hour = int(f.occurred // BUCKET_SECONDS)
        if hour in self.packed:
            self._unpack_hour(hour)
        cells = self.hours.setdefault(hour, {})
        cell = self._canonical(cell_of(f))
        t = cells.get(cell)
        if t is None:
            t = cells[cell] = [0, 0, 0, 0]
        t[0] += sign
        t[1] += sign * len(f.reports)
        t[2] += sign * f.killed
        t[3] += sign * f.wounded
        if not any(t):
            del cells[cell]
        ids = self.members.setdefault(hour, set())
        if sign > 0:
            ids.add(iid)
        else:
            ids.discard(iid)
        if not cells:
            del self.hours[hour]
        if not ids:
            del self.members[hour]

    def __len__(self) -> int:
        return len(self.open)

    # -- reading the cells -------------------------------------------------------------------
    def has_hour(self, hour: int) -> bool:
        return hour in self.hours or hour in self.packed

    def hour_count(self) -> int:
        return len(self.hours) + len(self.packed)

    def held_hours(self) -> list[int]:
        return [*self.hours, *self.packed]

    def cells_of(self, hour: int) -> Iterable[tuple[Cell, Sequence[int]]]:
        """(cell, [incidents, reports, killed, wounded]) of every cell of the hour; the
        figures are the tally's own: read them, never change them."""
        cells = self.hours.get(hour)
        if cells is not None:
            return cells.items()
        raw = self.packed.get(hour)
        if raw is None:
            return ()
        held = self.cells
        return [(held[c], totals) for c, *totals in _CELL.iter_unpack(raw)]

    def cell_items(self) -> Iterator[tuple[int, Cell, Sequence[int]]]:
        """(hour, cell, figures) of every cell held."""
        for hour in self.held_hours():
            for cell, t in self.cells_of(hour):
                yield hour, cell, t

    def _pack_hour(self, hour: int) -> None:
        """The hour holds no open incident now: its cells, packed."""
        cells = self.hours.get(hour)
        if cells:
            number = self._number
            self.packed[hour] = b"".join(_CELL.pack(number(c), *t) for c, t in cells.items())
        self.hours.pop(hour, None)  # once packed: a failure leaves the cells held

    def _unpack_hour(self, hour: int) -> None:
        held = self.cells
        self.hours[hour] = {
            held[c]: totals for c, *totals in _CELL.iter_unpack(self.packed.pop(hour))
        }

    def edge(self, hour: int) -> Iterator[Edge]:
        """Every incident of an hour, open or closed, for the queries' edge hours."""
        for iid in self.members.get(hour, ()):
            f = self.open[iid]
            yield f.occurred, cell_of(f), (1, len(f.reports), f.killed, f.wounded)
        packed = self.closed.get(hour)
        if packed is not None:
            cells = self.cells
            for occurred, c, reports, killed, wounded in _PACKED.iter_unpack(packed):
                yield occurred, cells[c], (1, reports, killed, wounded)

    def _number(self, cell: Cell) -> int:
        c = self._cell_no.get(cell)
        if c is None:
            cell = tuple(map(sys.intern, cell))  # type: ignore[assignment]
            c = self._cell_no[cell] = len(self.cells)
            self.cells.append(cell)
        return c

    def _canonical(self, cell: Cell) -> Cell:
        """The one tuple of this cell the tally holds: every hour's dict keys on it. Cells
        read from the changelog come as new strings each (a recovery): held per hour, they
        were most of a recovered tally's memory (measured, a broker-free restore of 250,000
        reports: 150 -> 88 MiB traced in all)."""
        return self.cells[self._number(cell)]

    # -- closed incidents (streams/record/archive.py) --------------------------------------
    def _pack(self, s: Summary) -> tuple[int, bytes]:
        occurred, cell, reports, killed, wounded = s
        c = self._number(cell)
        return int(occurred // BUCKET_SECONDS), _PACKED.pack(occurred, c, reports, killed, wounded)

    def close(self, iid: str) -> None:
        """The book closed an open incident: its cell stays, its fields leave."""
        f = self.open.pop(iid)
        hour, packed = self._pack(summary_of(f))
        ids = self.members[hour]
        ids.discard(iid)
        if not ids:
            del self.members[hour]
            self._pack_hour(hour)
        self.closed.setdefault(hour, bytearray()).extend(packed)

    def load_closed(self, summaries: Iterable[Summary]) -> None:
        """Closed incidents read from the changelog (a recovery): cells and summaries."""
        loaded: set[int] = set()
        for s in summaries:
            _, cell, reports, killed, wounded = s
            hour, packed = self._pack(s)
            self.closed.setdefault(hour, bytearray()).extend(packed)
            cell = self._canonical(cell)
            if hour in self.packed:
                self._unpack_hour(hour)
            loaded.add(hour)
            cells = self.hours.setdefault(hour, {})
            t = cells.get(cell)
            if t is None:
                t = cells[cell] = [0, 0, 0, 0]
            t[0] += 1
            t[1] += reports
            t[2] += killed
            t[3] += wounded
        for hour in loaded:
            if hour not in self.members:
                self._pack_hour(hour)

    def reopen(self, iid: str, f: IncidentFields) -> None:
        """The book reopened a closed incident: its summary turns back into its fields."""
        hour, packed = self._pack(summary_of(f))
        held = self.closed[hour]
        size = _PACKED.size
        at = held.find(packed)
        while at != -1 and at % size:  # a match must start at a record (-1: none)
            at = held.find(packed, at + 1)
        if at < 0:
            raise KeyError(f"incident {iid} is not closed in hour {hour}")
        del held[at : at + size]
        if not held:
            del self.closed[hour]
        if hour in self.packed:
            self._unpack_hour(hour)
        self.open[iid] = f
        self.members.setdefault(hour, set()).add(iid)


def query(partitions: Iterable[IncidentTally], *, window: str, by: str, as_of: float) -> list[Row]:
    """Rows of {<by keys>, incidents, reports, killed, wounded} for the open incidents with
    occurred_at in [as_of - window, as_of), summed over `partitions`: half-open as the
    series' buckets and the incident list's `from`/`to`, so that a day's tallies as of its
    local midnight hold that day, not the next day's first instant (where a day-precision
    report of the next day usually stands; it counts at the instant it gives)."""
    keys = grouping(by)
    end = as_of
    start = seconds_before(as_of, window_seconds(window))
    first = int(start // BUCKET_SECONDS)
    last = int(end // BUCKET_SECONDS)
    picks = tuple(FIELD_INDEX[k] for k in keys)
    acc: dict[tuple[str, ...], Totals] = defaultdict(lambda: [0, 0, 0, 0])
    for part in partitions:
        for hour in range(first, last + 1):
            if not part.has_hour(hour):
                continue
            if hour * BUCKET_SECONDS >= start and (hour + 1) * BUCKET_SECONDS <= end:
                for cell, t in part.cells_of(hour):
                    row = acc[tuple(cell[i] for i in picks)]
                    for i in range(4):
                        row[i] += t[i]
            else:
                for occurred, cell, adds in part.edge(hour):
                    if start <= occurred < end:
                        row = acc[tuple(cell[i] for i in picks)]
                        for i in range(4):
                            row[i] += adds[i]
    return _rows(keys, acc)


def merge_rows(parts: Iterable[list[Row]], keys: tuple[str, ...]) -> list[Row]:
    """Sum row lists answered by several workers for the same query."""
    acc: dict[tuple[str, ...], Totals] = defaultdict(lambda: [0, 0, 0, 0])
    for rows in parts:
        for r in rows:
            t = acc[tuple(str(r[k]) for k in keys)]
            for i, name in enumerate(("incidents", "reports", "killed", "wounded")):
                value = r[name]
                t[i] += int(value)
    return _rows(keys, acc)


def _rows(keys: tuple[str, ...], acc: dict[tuple[str, ...], Totals]) -> list[Row]:
    return [
        {
            **dict(zip(keys, group, strict=True)),
            "incidents": t[0],
            "reports": t[1],
            "killed": t[2],
            "wounded": t[3],
        }
        for group, t in sorted(acc.items())
        if any(t)
    ]
