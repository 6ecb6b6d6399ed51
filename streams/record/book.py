"""The incidents of a set of zones: current reports in, published incident versions, tally
deltas and changelog entries out.

This is the zone-keyed half of the record. It takes reports that revision state has
accepted (`upsert`) and takes out withdrawn or moved ones (`remove`), and is idempotent for
replays: a version at or below the revision it holds (or took the report out at) changes
nothing, so a batch applied twice after a crash leaves the state as applying it once. One
exception, which revision state sends only for a reclassification (`revisions.py`): a
version at the revision held with another digest replaces it, and a move at that revision
takes it out (both alike when applied twice: the digest, the zone then match).

Publishing (SPEC.md: every change of an incident as its full new version):

* an incident whose reports changed is published `open` with its version + 1;
* an incident id that no longer heads an incident (its first report left, moved or was
  preceded by an earlier one; or it was merged) is published once more: `merged` into the
  incident that now holds the first of its former reports still current in the zone, or
  `withdrawn` when none of them is (they were all withdrawn, or revised into another zone,
  where that zone's incidents hold them);
* versions continue where they stopped if an id heads an incident again;
* an id is named after a report, and a report can move to a zone of another book (another
  partition): the book it left publishes the id withdrawn (or merged) at its next version
  and sends that version to the new zone's book as a *floor* (`Change.floors`, which the
  zone stage sends), which publishes the id open above it if it heads an incident there,
  or remembers it for when it does; a book the report has left again passes it on. Either
  arrival order ends with the open version the highest (docs/record.md, "Versions across
  partitions").
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from schemas.codes import TimePrecision
from schemas.incident import incident_id_for
from streams.record.archive import (
    DAY,
    FIRST_UNIT_DAY,
    LAST_UNIT_DAY,
    UNIT_PART_BYTES,
    UNIT_PREFIX,
    Archive,
    Group,
    Summary,
    day_of,
    decode_body,
    decode_unit_key,
    encode_parts,
    read_head,
    unit_key,
)
from streams.record.changelog import (
    DETAIL_PREFIX,
    RULE_KEY,
    VERSION_PREFIX,
    Entry,
    decode_detail,
    decode_rule,
    decode_tombstone,
    decode_version,
    encode_detail,
    encode_rule,
    encode_tombstone,
    version_entry,
)
from streams.record.incident import IncidentFields, IncidentRecord, Status, derive, incident_id
from streams.record.linking import (
    LinkRule,
    Order,
    Regroup,
    ZoneLinker,
    _order,
    canonical_groups,
)
from streams.record.model import Ident, ReportVersion, identity_key
from streams.record.tally import Tally, tally_of

#: Reports of these precisions are never closed: they reach weeks around their time (the
#: days of their reach close once all of it is old, `IncidentBook._held_by_wide`, and a
#: change that can move one reopens them first, `IncidentBook._open_near`).
_WIDE = frozenset({TimePrecision.WEEK, TimePrecision.MONTH})

#: An open week's or month's report in a zone's index (`IncidentBook._wide`): the first and
#: last day of its reach, its place in the linker's canonical order, the report.
_WideEntry = tuple[int, int, Order, Ident]


def _first_day(e: _WideEntry) -> int:
    return e[0]


@dataclass(slots=True)
class Change:
    """What one step did: incident versions to publish (in order: open versions first, so
    a `merged` record never points at an incident not yet published), the changelog entries
    to write, and the incidents it closed or reopened (in order, before the versions: the
    tally turns them into summaries and back)."""

    incidents: list[IncidentRecord] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    #: entries to write once `entries` are written: what deletes the copy a close or a
    #: reopen moved (a failed or torn write then leaves both copies, never neither)
    later: list[Entry] = field(default_factory=list)
    #: ("close" | "reopen", incident id, its fields)
    moves: list[tuple[str, str, IncidentFields]] = field(default_factory=list)
    #: version floors to send: (zone, source, report id, version) (`floor`)
    floors: list[tuple[str, str, str, int]] = field(default_factory=list)
    #: an upsert replaced the version held at its revision (a reclassification)
    reclassified: bool = False

    def extend(self, other: Change) -> None:
        self.incidents.extend(other.incidents)
        self.entries.extend(other.entries)
        self.later.extend(other.later)
        self.moves.extend(other.moves)
        self.floors.extend(other.floors)


class IncidentBook:
    def __init__(
        self,
        rule: LinkRule | None = None,
        record_rule: bool = True,
        unit_cap: int = UNIT_PART_BYTES,
    ) -> None:
        """`record_rule`: keep the rule in the changelog and publish, at a recovery, what
        a change of it regrouped (`adopted`); False while workers that cannot read that
        entry may recover the partition (`CEASEFIRE_INTERNAL_FORMAT` below 5): a recovery
        then regroups without publishing, as they do. `unit_cap`: the most bytes of a closed
        day's part (`archive.UNIT_PART_BYTES`; smaller in tests)."""
        self.rule = rule or LinkRule()
        self.record_rule = record_rule
        self.unit_cap = unit_cap
        #: the rule entry as the changelog holds it (None: none written)
        self.rule_written: bytes | None = None
        #: after `restore`: what it must publish and write before the book takes changes
        #: (the regrouping a change of the rule made, and the rule's entry; the deletes of
        #: the copies a torn write left, `restore`); empty if none
        self.adopted = Change()
        #: after `restore`: why the rule entry could not be read (None: it could), in which
        #: case the incidents are regrouped without publishing the difference
        self.rule_problem: str | None = None
        self.zones: dict[str, ZoneLinker] = {}
        self._zone_of: dict[Ident, str] = {}
        #: incident id -> the current report it is named after, for every current report:
        #: the incidents API's lookups by id (`open_incident`, `holder_of`). None until the
        #: first lookup builds it (a book never asked holds none: it is a dict entry and an
        #: id per report), then kept where reports come and go (`_name`, `_unname`).
        self._named: dict[str, Ident] | None = None
        #: identity key -> revision the report was taken out at (replay protection)
        self._gone: dict[bytes, int] = {}
        #: identity key -> the zone a report taken out moved to (floors follow it)
        self._moved_to: dict[bytes, str] = {}
        #: incident id -> last published version (ids that ever headed an incident)
        self.versions: dict[str, int] = {}
        #: anchor -> fields of its open incident as last published (derived on demand after
        #: a restore): taking back an incident's old cell needs them on every change
        self._fields: dict[Ident, IncidentFields] = {}
        #: closed zone-days (streams/record/archive.py)
        self.archive = Archive()
        #: changes made (upserts and removes), and the time the stage stamps them with: a
        #: sweep's idleness counts in both
        self.changes = 0
        self.clock = 0.0
        #: (zone, day) -> (`changes`, `clock`) at the last change there
        self._touched: dict[tuple[str, int], tuple[int, float]] = {}
        #: how far (seconds) a change of a report of each precision can reach: its linking
        #: reach, the span of an incident on the far side, and a day for re-decisions
        #: running on (see `_open_near`)
        span = self.rule.window_seconds + 2 * self.rule.half_width(TimePrecision.DAY)
        self._reach = {
            p: self.rule.window_seconds + self.rule.half_width(p) + 2 * span + DAY
            for p in TimePrecision
        }
        #: zone -> its current week's and month's reports, sorted by the first day of their
        #: reach (`_wide_enter`, `_wide_leave` wherever `_zone_of` takes a report in or out)
        self._wide: dict[str, list[_WideEntry]] = {}
        #: zone -> (first day, last day) of a change's reach -> what `_wide_reached` found
        #: for it (emptied when the zone's index changes): a stream's changes ask alike
        self._wide_found: dict[str, dict[tuple[int, int], list[tuple[int, int]]]] = {}
        #: the most days from the first to the last of a wide report's reach
        self._wide_span = max(2 * math.ceil(self._reach[p] / DAY) + 1 for p in _WIDE)
        #: the last day of the latest sweep's cutoff (None: no sweep yet): the days a
        #: change marks as changed for reaching an old wide report (`_open_near`)
        self._swept_to: int | None = None

    def __len__(self) -> int:
        return len(self._zone_of)

    @property
    def crowded_reports(self) -> int:
        """Current reports in crowded linking cells: each an incident alone (a flood)."""
        return sum(linker.crowded_reports for linker in self.zones.values())

    def report(self, ident: Ident) -> ReportVersion | None:
        zone = self._zone_of.get(ident)
        return None if zone is None else self.zones[zone].live[ident]

    def reports(self) -> Iterator[ReportVersion]:
        for linker in self.zones.values():
            yield from linker.live.values()

    def incidents(self) -> Iterator[IncidentRecord]:
        """The open incidents, at their current versions."""
        for anchor, f in self.open_fields():
            yield self.open_record(anchor, f)

    def open_fields(self, zones: Collection[str] = ()) -> Iterator[tuple[Ident, IncidentFields]]:
        """(anchor, fields) of the open incidents, of `zones` only if any are given, in the
        order of `incidents()`: what a query can filter on, without the uuid5 of its id and
        the record of each (`open_record` makes it of those it wants)."""
        known = self._fields
        for zone, linker in self.zones.items():
            if zones and zone not in zones:
                continue
            for anchor, members in linker.members.items():
                f = known.get(anchor)
                yield anchor, f if f is not None else self._fields_of(anchor, members)

    def open_record(self, anchor: Ident, f: IncidentFields) -> IncidentRecord:
        """The record `incidents()` yields of the open incident `anchor` heads (`f`: its
        fields, from `open_fields`)."""
        iid = incident_id(anchor)
        return IncidentRecord(iid, self.versions[iid], Status.OPEN, None, f)

    def open_incident(self, iid: str) -> IncidentRecord | None:
        """The open incident `iid` as `incidents()` yields it, None when it is not open here;
        found by its id (`_named`), without deriving the others."""
        ident = self._report_named(iid)
        if ident is None:
            return None
        members = self.zones[self._zone_of[ident]].members.get(ident)
        if members is None:  # its report is in another incident
            return None
        return self.open_record(ident, self._fields_of(ident, members))

    def _report_named(self, iid: str) -> Ident | None:
        """The current report the incident id `iid` is named after (None: no current report
        here is). Every hit is checked against the book (a current report, of that id): a
        stale index answers nothing wrong, it is built anew. A miss is exact as long as the
        index holds every current report (`_name` wherever `_zone_of` takes one in, and its
        size checked against `_zone_of`'s)."""
        named = self._named
        if named is None or len(named) != len(self._zone_of):
            named = self._build_named()
        ident = named.get(iid)
        if ident is None:
            return None
        if ident not in self._zone_of or incident_id(ident) != iid:
            named = self._build_named()  # (not expected: every change keeps it)
            ident = named.get(iid)
        return ident

    def _build_named(self) -> dict[str, Ident]:
        # `incident_id_for`, not the cached `incident_id` (the same ids): a book's every
        # report would push out the ids the zone stage looks up
        named = self._named = {incident_id_for(*ident): ident for ident in self._zone_of}
        return named

    def _name(self, ident: Ident) -> None:
        """`ident` became a current report (after `_zone_of` took it in)."""
        if self._named is not None:
            self._named[incident_id(ident)] = ident

    def _unname(self, ident: Ident, iid: str | None = None) -> None:
        """`ident` is no longer a current report (`iid`: its incident id, if known)."""
        if self._named is not None:
            self._named.pop(iid or incident_id(ident), None)

    def closed_incidents(self) -> Iterator[IncidentRecord]:
        """The closed incidents (decompressed: for tests and exports, not the hot path)."""
        for zone, day in list(self.archive.units()):
            yield from self._closed_records(zone, day)

    def _closed_records(self, zone: str, day: int) -> Iterator[IncidentRecord]:
        for members, versions in self.archive.peek(zone, day):
            iid = incident_id(members[0].ident)
            yield IncidentRecord(iid, versions.get(iid, 1), Status.OPEN, None, derive(members))

    def find_closed(self, iid: str) -> tuple[IncidentRecord, dict[Ident, ReportVersion]] | None:
        """A closed incident, with its reports."""
        unit = self.archive.unit_of_incident(iid)
        if unit is not None:
            for members, versions in self.archive.peek(*unit):
                if incident_id(members[0].ident) == iid:
                    record = IncidentRecord(
                        iid, versions.get(iid, 1), Status.OPEN, None, derive(members)
                    )
                    return record, {m.ident: m for m in members}
        return None

    def closed_holder_of(self, iid: str) -> tuple[str, int] | None:
        """For an id that merged into an incident since closed: that incident's id, and the
        last version published of `iid` (units written before merged ids were indexed are
        not found)."""
        unit = self.archive.unit_of_incident(iid)
        if unit is not None:
            for members, versions in self.archive.peek(*unit):
                holder = incident_id(members[0].ident)
                if holder != iid and iid in versions:
                    return holder, versions[iid]
        return None

    def closed_day(self, zone: str, day: int) -> list[IncidentRecord]:
        return list(self._closed_records(zone, day))

    def tally(self) -> Tally:
        """The tally of the open incidents, closed ones included, from scratch."""
        open_ = (
            derive(members) for linker in self.zones.values() for members in linker.members.values()
        )
        closed = (r.fields for r in self.closed_incidents())
        return tally_of(itertools.chain(open_, closed))

    def _fields_of(self, anchor: Ident, members: Sequence[ReportVersion]) -> IncidentFields:
        f = self._fields.get(anchor)
        if f is None:
            f = self._fields[anchor] = derive(members)
        return f

    def _linker(self, zone: str) -> ZoneLinker:
        linker = self.zones.get(zone)
        if linker is None:
            linker = self.zones[zone] = ZoneLinker(self.rule)
        return linker

    def upsert(self, r: ReportVersion) -> Change:
        """Make `r` the current version of its report (moving it if its zone changed)."""
        change = Change()
        self.changes += 1
        key = identity_key(r.source, r.report_id)
        current = self._current(r.ident, key, change)
        if current is not None and (
            current.revision > r.revision
            or (current.revision == r.revision and current.digest == r.digest)
        ):
            return change  # (equal revisions of other content: a reclassification)
        gone = self._gone.get(key, -1)
        if gone > r.revision or (gone == r.revision and key not in self._moved_to):
            # (moved out at this revision: a reclassification may move it back)
            return change
        self._gone.pop(key, None)
        self._moved_to.pop(key, None)
        change.reclassified = current is not None and current.revision == r.revision
        self._open_near(r.zone, r.occurred, r.time_precision, change)
        if current is not None:
            if current.zone != r.zone:
                self._take_out(current, change)
            else:
                self._wide_leave(r.zone, current)
        self._zone_of[r.ident] = r.zone
        self._name(r.ident)
        self._wide_enter(r.zone, r)
        linker = self._linker(r.zone)
        self._publish(linker, linker.upsert(r), change)
        change.entries.append((DETAIL_PREFIX + key, encode_detail(r)))
        return change

    def remove(self, source: str, report_id: str, revision: int, to: str | None = None) -> Change:
        """Take the report out as of `revision`: a withdrawal, or (`to`) a move to zone `to`
        (one this book does not hold, or one it moved it to already). For a move, a floor
        for `to`: the last version published here of the id named after the report (sent
        whether or not the remove changed anything, as a replay's first sending may have
        been lost; a floor is idempotent)."""
        change = Change()
        self.changes += 1
        key = identity_key(source, report_id)
        current = self._current((source, report_id), key, change)
        if not (
            (
                current is not None
                and (
                    current.revision > revision
                    # at the revision held, only a reclassification moving it elsewhere
                    or (current.revision == revision and (to is None or current.zone == to))
                )
            )
            or self._gone.get(key, -1) >= revision
        ):
            if current is not None:
                self._take_out(current, change)
            self._gone[key] = revision
            if to is None:
                self._moved_to.pop(key, None)
            else:
                self._moved_to[key] = to
            change.entries.append((DETAIL_PREFIX + key, encode_tombstone(revision, to)))
        if to is not None:
            version = self.version_of((source, report_id))
            if version is not None:
                change.floors.append((to, source, report_id, version))
        return change

    def holder_of(self, iid: str) -> str | None:
        """The id of the open incident that holds the report `iid` is named after (an
        incident is named after its earliest report), when that is another incident: the
        one `iid` merged into, or what that later merged into. None when no open incident
        holds that report (withdrawn, closed: `closed_holder_of`, or moved to another zone's
        partition). The
        book keeps no `merged_into` of its own: the incident that holds the report, found by
        the id (`_named`), for the incidents API's answer to an id no longer open."""
        ident = self._report_named(iid)
        if ident is None:
            return None
        anchor = self.zones[self._zone_of[ident]].anchor[ident]
        return None if anchor == ident else incident_id(anchor)

    def version_of(self, ident: Ident) -> int | None:
        """The last version this book published of the incident id named after report
        `ident` (None: never published here); read from its unit if the report is closed."""
        iid = incident_id(ident)
        version = self.versions.get(iid)
        if version is None and self.archive:
            unit = self.archive.unit_of_report(identity_key(*ident))
            if unit is not None:
                for _, versions in self.archive.peek(*unit):
                    if iid in versions:
                        return versions[iid]
        return version

    def floor(self, source: str, report_id: str, version: int) -> Change:
        """Another zone partition published the incident id named after this report at
        `version` (withdrawn or merged there: the report moved out of its zones). If the id
        heads an incident here, publish it open above that version, so that its highest
        version anywhere is the open one; else remember the version, so that the id starts
        above it if it comes to head one, and if the report moved on from here, pass the
        floor on to where it went. Idempotent: a floor at or below what the book holds
        changes nothing (an id heading an incident: strictly below, as an open and a
        withdrawn version must not tie)."""
        change = Change()
        ident = (source, report_id)
        iid = incident_id(ident)
        if self.report(ident) is None and self.archive:
            unit = self.archive.unit_of_report(identity_key(source, report_id))
            if unit is not None:
                # closed: its versions live in its unit's body; a later sweep closes it again
                self._reopen(*unit, change)
        known = self.versions.get(iid, 0)
        zone = self._zone_of.get(ident)
        linker = None if zone is None else self.zones[zone]
        if linker is not None and linker.anchor.get(ident) == ident:
            if known > version:
                return change
            self.versions[iid] = version
            f = self._fields_of(ident, linker.members[ident])
            published = self._next_version(iid, change)
            change.incidents.append(IncidentRecord(iid, published, Status.OPEN, None, f))
        elif known < version and version > 1:
            # (a floor of 1 comes from a book where the id is still open at 1, so a replay
            # from before the report moved back there: nothing to keep)
            self.versions[iid] = version
            change.entries.append(version_entry(iid, version))
            to = self._moved_to.get(identity_key(source, report_id))
            if to is not None and zone is None:
                # The report moved on from here, and the floor it sent then did not hold
                # this one: pass it on. Only a floor that raised what the book held goes on,
                # so floors passed around stop.
                change.floors.append((to, source, report_id, version))
        return change

    def _current(self, ident: Ident, key: bytes, change: Change) -> ReportVersion | None:
        """The current version of a report, reopening its day (and the days within its
        reach) if it is closed: the change about to happen takes it out of its incident."""
        current = self.report(ident)
        if current is None and self.archive:
            unit = self.archive.unit_of_report(key)
            if unit is not None:
                zone, day = unit
                self._open_near(zone, (day + 0.5) * DAY, TimePrecision.DAY, change, DAY / 2)
                current = self.report(ident)
        if current is not None:
            self._open_near(current.zone, current.occurred, current.time_precision, change)
        return current

    def _take_out(self, r: ReportVersion, change: Change) -> None:
        del self._zone_of[r.ident]
        self._unname(r.ident)
        self._wide_leave(r.zone, r)
        linker = self.zones[r.zone]
        self._publish(linker, linker.remove(r.ident), change)
        if not linker.live:
            del self.zones[r.zone]

    # -- closed days (streams/record/archive.py) ---------------------------------------------
    def _open_near(
        self,
        zone: str,
        t: float,
        precision: TimePrecision,
        change: Change,
        extra: float = 0.0,
    ) -> None:
        """Reopen the closed days of `zone` that a change of a report at `t` can reach, and
        mark the days around it as changed now (a sweep leaves them open a while).

        What it can reach: its own reach, and the whole reach of every week's or month's
        report of the zone the change can move (`_wide_reached`): a change within its reach
        can take it from its incident (a late report it fits better), and the reports it
        leaves or joins then decide again anywhere in its reach. A sweep closes the days of
        such a report's reach once all of it is older than the cutoff (`_held_by_wide`), so
        those days are reopened here, before the change, as a book that never closes holds
        them. The days reopened for a wide report are marked as changed as well, so that an
        import writing into that history keeps them open until it stops rather than reopen
        them after every sweep."""
        reach = self._reach[precision] + extra
        first, last = day_of(t - reach), day_of(t + reach)
        touched = self._touched
        stamp = (self.changes, self.clock)
        if precision in _WIDE:
            for day in range(first, last + 1):
                touched[(zone, day)] = stamp
        else:
            touched[(zone, day_of(t))] = stamp
        closed = self.archive.days.get(zone)
        wide = self._wide.get(zone)
        if wide:
            found = self._wide_found.get(zone)
            if found is None or len(found) > 1000:
                found = self._wide_found[zone] = {}
            spans = found.get((first, last))
            if spans is None:
                spans = found[(first, last)] = self._wide_reached(wide, first, last)
            if spans:
                # (marked up to the last day a sweep has closed only: nothing after it is
                # closable yet, and a live stream near a recent wide report marks nothing)
                swept = self._swept_to
                for lo, hi in spans:
                    if closed:
                        for day in range(lo, hi + 1):
                            if day in closed:
                                self._reopen(zone, day, change)
                    if swept is not None:
                        for day in range(lo, min(hi, swept) + 1):
                            touched[(zone, day)] = stamp
        if closed:
            for day in range(first, last + 1):
                if day in closed:
                    self._reopen(zone, day, change)

    def _wide_enter(self, zone: str, r: ReportVersion) -> None:
        """`r` became a current report of `zone` (with `_zone_of`)."""
        if r.time_precision in _WIDE:
            insort(self._wide.setdefault(zone, []), self._wide_entry(r))
            self._wide_found.pop(zone, None)

    def _wide_leave(self, zone: str, r: ReportVersion) -> None:
        """`r` is no longer a current report of `zone`."""
        if r.time_precision in _WIDE:
            wide = self._wide.get(zone)
            if wide:
                e = self._wide_entry(r)
                i = bisect_left(wide, e)
                if i < len(wide) and wide[i] == e:
                    del wide[i]
                    self._wide_found.pop(zone, None)
                    if not wide:
                        del self._wide[zone]

    def _wide_entry(self, r: ReportVersion) -> _WideEntry:
        reach = self._reach[r.time_precision]
        return day_of(r.occurred - reach), day_of(r.occurred + reach), _order(r), r.ident

    def _wide_reached(self, wide: list[_WideEntry], first: int, last: int) -> list[tuple[int, int]]:
        """The reaches (first day, last day; merged, in order) of the wide reports of a zone
        (`wide`, its index) that a change reaching days `first` to `last` can move: those
        whose reach meets those days, and then those whose reach meets the reach of one
        already found and that come after it in the linker's canonical order."""
        lo = bisect_left(wide, first - self._wide_span, key=_first_day)
        hi = bisect_right(wide, last, key=_first_day)
        found = [e for e in wide[lo:hi] if e[1] >= first]
        if not found:
            return []
        return _merged(self._wide_closure(wide, found))

    def _wide_closure(self, wide: list[_WideEntry], found: list[_WideEntry]) -> list[_WideEntry]:
        """`found` (wide reports a change can move), and every wide report of the zone that
        a move of one of them can move in turn: one whose reach meets its reach and that
        comes after it in the linker's canonical order. Only those: a report's decision
        depends on the precise reports and on the decisions of the reports before it in
        that order, so a move changes the decisions of later reports only (linking.py),
        and one within a report's reach of the wide report moved (`_reach`). In a zone of
        week and month reports chained through the years, a change thus reaches forward
        along the chain of reports of a kind, and back only to the reports of a vaguer
        kind (a place less precise) beside one it reached: not the whole chain."""
        seen = {e[3] for e in found}
        todo = list(found)
        out: list[_WideEntry] = []
        span = self._wide_span
        while todo:
            e = todo.pop()
            out.append(e)
            first, last, order = e[0], e[1], e[2]
            lo = bisect_left(wide, first - span, key=_first_day)
            hi = bisect_right(wide, last, key=_first_day)
            for i in range(lo, hi):
                o = wide[i]
                if o[1] >= first and o[2] > order and o[3] not in seen:
                    seen.add(o[3])
                    todo.append(o)
        return out

    def _reopen(self, zone: str, day: int, change: Change) -> None:
        linker = self._linker(zone)
        entries = change.entries
        groups: list[list[ReportVersion]] = []
        parts = self.archive.parts(zone, day)  # every part: the day reopens whole
        for members, versions in self.archive.take(zone, day):
            linker.attach(members)
            groups.append(members)
            anchor = members[0].ident
            for m in members:
                self._zone_of[m.ident] = zone
                self._name(m.ident)
                self._wide_enter(zone, m)
                entries.append((DETAIL_PREFIX + identity_key(*m.ident), encode_detail(m)))
            for iid, version in versions.items():
                version = max(version, self.versions.get(iid, 0))
                self.versions[iid] = version
                if version > 1:
                    entries.append(version_entry(iid, version))
            f = self._fields[anchor] = derive(members)
            change.moves.append(("reopen", incident_id(anchor), f))
        # After the reports' entries (`later`): a write torn before these deletes leaves
        # parts whose reports have entries after them, which `restore` takes as open.
        change.later.extend((unit_key(zone, day, part), None) for part in range(parts))
        if not _grouped_by(groups, self.rule):
            # Closed under another rule (the grouping of a day is kept as it was closed):
            # the zone grouped again by this one, and the difference published.
            self._regroup_zone(linker, change)

    def _regroup_zone(self, linker: ZoneLinker, change: Change) -> None:
        before = linker.groups()
        linker.load(list(linker.live.values()))
        rg = _difference(before, linker.groups())
        if rg:
            self._publish(linker, rg, change)

    def sweep(self, before: float, idle: int = 0, idle_since: float = math.inf) -> Change:
        """Close every zone-day whose incidents' reports are all older than `before`, and
        within a change's reach of which no change was among the last `idle` ones and at
        or after `clock` `idle_since` (an import still running keeps the days it writes
        open, so that it does not reopen them; once it stops, they close). Reports of a
        week's or a month's precision stay open, and so do the days within reach of a
        recent one (`_held_by_wide`)."""
        change = Change()
        last_day = day_of(before) - 1  # whole days only
        since = self.changes - idle
        self._touched = {
            u: (n, t) for u, (n, t) in self._touched.items() if n > since and t >= idle_since
        }
        # a day changed recently keeps the days within a change's reach open (asked of
        # the closable days only, once each: most days are not)
        k = math.ceil(self._reach[TimePrecision.DAY] / DAY)
        touched = self._touched
        recent: dict[tuple[str, int], bool] = {}
        # Every open incident is looked at, every sweep: the loop below has no generators
        # (their closures would make `zone` and `before` cells).
        for zone, linker in list(self.zones.items()):
            by_day: dict[int, list[Ident]] = {}
            held = self._held_by_wide(zone, last_day)
            for anchor, members in linker.members.items():
                day = day_of(self._fields_of(anchor, members).occurred)
                if day > last_day or day in held or not FIRST_UNIT_DAY <= day <= LAST_UNIT_DAY:
                    continue  # (a day a unit number cannot name, such as year 1: kept open)
                near = recent.get((zone, day))
                if near is None:
                    near = False
                    for d in range(day - k, day + k + 1):
                        if (zone, d) in touched:
                            near = True
                            break
                    recent[(zone, day)] = near
                if near:
                    continue
                for m in members:
                    if m.occurred >= before or m.time_precision in _WIDE:
                        break
                else:
                    by_day.setdefault(day, []).append(anchor)
            for day, anchors in by_day.items():
                self._close(linker, zone, day, anchors, change)
            if not linker.live:
                del self.zones[zone]
        if self._swept_to is None or last_day > self._swept_to:
            self._swept_to = last_day
        return change

    def _held_by_wide(self, zone: str, last_day: int) -> set[int]:
        """The days of `zone` kept open for its week's and month's reports at a sweep that
        closes days up to `last_day`: the reach of each whose reach runs past that day (a
        recent one), and of each that a move of one of those can move in turn
        (`_wide_closure`).

        A change elsewhere can move such a report (a late report it fits better), and the
        reports it leaves or joins then decide again anywhere in its reach, weeks from the
        change; `_open_near` reopens the whole reach of the wide reports a change can move
        before the change, so the days of an old one may close. A recent one's are kept
        open, and so are those of the wide reports a move of it can move: a live stream of
        reports near the present moves recent ones, and would otherwise reopen the closed
        days beside them at every change. What a sweep holds open is thus a bounded band
        before the cutoff, not the history of the zone."""
        wide = self._wide.get(zone)
        if not wide:
            return set()
        lo = bisect_left(wide, last_day + 1 - self._wide_span, key=_first_day)
        recent = [e for e in wide[lo:] if e[1] > last_day]
        days: set[int] = set()
        if recent:
            for e in self._wide_closure(wide, recent):
                days.update(range(e[0], e[1] + 1))
        return days

    def _close(
        self, linker: ZoneLinker, zone: str, day: int, anchors: list[Ident], change: Change
    ) -> None:
        groups: list[Group] = []
        fields: list[IncidentFields] = []
        first = 0  # the number of the first part written
        if (zone, day) in self.archive:
            # Incidents of a day closed before: one unit. Its incidents stay in the parts
            # they are in, the new ones join its last part while it has room and fill parts
            # after it: a part is only ever written again with more, so a close whose
            # parts land only in part (`restore`) never takes an incident from the key
            # that holds it, and the keys of the unit are those it had and more (none to
            # delete). Rewriting them all, cut anew, could move an incident from a part
            # that landed to one that did not: lost.
            first, kept = self.archive.take_last(zone, day)
            for group in kept:
                groups.append(group)
                fields.append(derive(group[0]))
        keep = len(groups)
        later = change.later
        for anchor in anchors:
            members = linker.detach(anchor)
            f = self._fields.pop(anchor, None) or derive(members)
            versions: dict[str, int] = {}
            for m in members:
                del self._zone_of[m.ident]
                iid = incident_id(m.ident)
                self._unname(m.ident, iid)
                self._wide_leave(zone, m)
                version = self.versions.pop(iid, None)
                if version is not None:
                    versions[iid] = version
                    if version > 1:
                        later.append((VERSION_PREFIX + iid.encode(), None))
                later.append((DETAIL_PREFIX + identity_key(*m.ident), None))
            groups.append((members, versions))
            fields.append(f)
            change.moves.append(("close", incident_id(anchor), f))
        for i, (held, value) in enumerate(encode_parts(groups, fields, self.unit_cap, keep)):
            part = first + i
            if i > 0 or held > keep or not keep:  # (else: the last part as it is, unwritten)
                change.entries.append((unit_key(zone, day, part), value))
            self.archive.add(zone, day, read_head(value), part=part)

    def _next_version(self, iid: str, change: Change) -> int:
        version = self.versions.get(iid, 0) + 1
        self.versions[iid] = version
        if version > 1:  # an id heading an incident without an entry is at version 1
            change.entries.append(version_entry(iid, version))
        return version

    def _publish(self, linker: ZoneLinker, rg: Regroup, change: Change) -> None:
        if not rg.before and len(rg.after) == 1:
            # One incident started, nothing taken back (a report alone, most changes): what
            # the general case below does for it, without its dicts, sets and sorts.
            ((anchor, members),) = rg.after.items()
            f = self._fields[anchor] = derive(members)
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            change.incidents.append(IncidentRecord(iid, version, Status.OPEN, None, f))
            return
        # Loops, not comprehensions over `self` or `linker` in this method: those made them
        # closure cells, allocated on every call (every change).
        before: dict[Ident, IncidentFields] = {}
        for a, group in rg.before.items():
            before[a] = self._fields_of(a, group)
        after = {a: derive(m) for a, m in rg.after.items()}
        for anchor in before:
            del self._fields[anchor]
        self._fields.update(after)
        for anchor, f in sorted(after.items()):
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            change.incidents.append(IncidentRecord(iid, version, Status.OPEN, None, f))
        for anchor in sorted(before.keys() - after.keys()):
            target = None
            for m in rg.before[anchor]:
                target = linker.anchor.get(m.ident)
                if target is not None:
                    break
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            status = Status.WITHDRAWN if target is None else Status.MERGED
            merged_into = None if target is None else incident_id(target)
            change.incidents.append(
                IncidentRecord(iid, version, status, merged_into, before[anchor])
            )

    def restore(
        self,
        entries: Iterable[Entry],
        on_closed: Callable[[list[Summary]], None] | None = None,
    ) -> int:
        """Rebuild from changelog entries in the order written (the latest per key wins):
        closed units stay closed (their summaries go to `on_closed`, for the tally), and
        each zone's open reports are grouped from scratch. Returns how many were read.

        A write torn part-way leaves two copies of some reports: a unit written before
        their tombstones (a close), or their entries written before the unit's tombstone (a
        reopen). The later copy wins: a unit any of whose reports has an entry after it is
        open. The losing copy is deleted (`adopted`, written before the stage is ready): a
        unit left on the changelog would come back as closed, or its reports as open, once
        their newer entries are gone (the day they moved to closed), and count twice.

        A unit of several parts (`archive.encode_parts`) is judged part by part, each part
        holding whole incidents whose reports are in no other. A close's entries go out in
        several batches (a large part is a batch alone), in order, a failed one ending the
        write, and its deletes only once all landed (a step's input offset, last, likewise):
        a close may have landed only its first parts. Each part that landed is closed (its
        reports' entries are older: deleted); the incidents of one that did not are open as
        their entries hold them (a new part), or as the part it was to write again with
        more has them (a re-close; `_close` never moves an incident to another part). So
        the day is closed in part, as a day some of whose incidents were not closable yet
        is, and the next sweep closes the rest (a gap in the part numbers stays one: its
        key holds nothing). A reopen torn before its deletes leaves parts all of whose
        reports have entries after them: open, each deleted here."""
        details: dict[bytes, tuple[int, bytes]] = {}
        units: dict[tuple[str, int, int], tuple[int, bytes]] = {}
        n = 0
        self._named = None  # built again when asked
        for pos, (key, value) in enumerate(entries):
            n += 1
            prefix = key[:1]
            if prefix == VERSION_PREFIX:
                if value is not None:
                    iid, version = decode_version(key, value)
                    self.versions[iid] = max(version, self.versions.get(iid, 0))
            elif prefix == DETAIL_PREFIX:
                ik = key[len(DETAIL_PREFIX) :]
                if value is None:
                    details.pop(ik, None)
                else:
                    details[ik] = (pos, value)
            elif prefix == UNIT_PREFIX:
                unit = decode_unit_key(key)
                if value is None:
                    units.pop(unit, None)
                else:
                    units[unit] = (pos, value)
            elif key == RULE_KEY:
                self.rule_written = value
            else:
                raise ValueError(f"not an incident-book entry: {key[:20]!r}")
        current: dict[bytes, ReportVersion] = {}
        repair = Change()
        for (zone, day, part), (at, value) in units.items():
            head = read_head(value)
            if not any(details.get(k, (-1,))[0] > at for k in head.member_keys):
                self.archive.add(zone, day, head, part=part, bulk=True)
                for k in head.member_keys:
                    if details.pop(k, None) is not None:  # a close torn before its deletes
                        repair.later.append((DETAIL_PREFIX + k, None))
                if on_closed is not None:
                    on_closed(head.summaries)
                continue
            # Reopened, torn: the members the reopen's entries hold are open as they say;
            # those it did not write (a write torn part-way) are open as the unit has them.
            for members, versions in decode_body(head.body):
                for m in members:
                    k = identity_key(*m.ident)
                    if k not in details:
                        current[k] = m
                        repair.entries.append((DETAIL_PREFIX + k, encode_detail(m)))
                for iid, version in versions.items():
                    version = max(version, self.versions.get(iid, 0))
                    self.versions[iid] = version
                    if version > 1:
                        repair.entries.append(version_entry(iid, version))
            repair.later.append((unit_key(zone, day, part), None))
        self.archive.seal()
        for ik, (_, value) in details.items():
            decoded = decode_detail(value)
            if isinstance(decoded, int):
                self._gone[ik], to = decode_tombstone(value)
                if to is not None:
                    self._moved_to[ik] = to
            else:
                current[ik] = decoded
        by_zone: dict[str, list[ReportVersion]] = {}
        for r in current.values():
            by_zone.setdefault(r.zone, []).append(r)
            self._zone_of[r.ident] = r.zone
            self._wide_enter(r.zone, r)
        published = self._published_rule()
        regrouped: dict[str, Regroup] = {}
        for zone, reports in by_zone.items():
            linker = self._linker(zone)
            linker.load(reports)
            anchors: Iterable[Ident] = linker.members
            if published is not None:  # the incidents as published, and what the rule makes
                groups = canonical_groups(reports, published)
                rg = _difference(groups, linker.groups())
                if rg:
                    regrouped[zone] = rg
                anchors = groups
            for anchor in anchors:
                self.versions.setdefault(incident_id(anchor), 1)
        repair.extend(self._adopt(regrouped))
        self.adopted = repair
        return n

    def _published_rule(self) -> LinkRule | None:
        """The rule the open incidents were published by, when it is not this book's and
        a regrouping is to be published."""
        written = self.rule_written
        if not self.record_rule or written is None or written == encode_rule(self.rule):
            # None written: by workers before the entry, taken as grouped as now (most
            # likely; nothing tells)
            return None
        try:
            return decode_rule(written)
        except ValueError as exc:
            self.rule_problem = str(exc)
            return None

    def _adopt(self, regrouped: dict[str, Regroup]) -> Change:
        """Publish the regrouping (new versions; `merged` or `withdrawn` for ids no longer
        heading an incident, as any change does) and write this book's rule."""
        change = Change()
        if not self.record_rule:
            return change
        for zone, rg in sorted(regrouped.items()):
            self._publish(self.zones[zone], rg, change)
        current = encode_rule(self.rule)
        if self.rule_written != current:
            # last, after the versions: a write torn before it leaves the old rule, and the
            # next recovery publishes the regrouping again (subscribers keep the highest
            # version), never leaves it unpublished
            change.entries.append((RULE_KEY, current))
            self.rule_written = current
        return change


def _difference(
    before: dict[Ident, tuple[ReportVersion, ...]], after: dict[Ident, tuple[ReportVersion, ...]]
) -> Regroup:
    """The incidents that differ between two groupings of the same reports, as a `Regroup`
    (an anchor heading the same reports in both: the same incident, left out)."""

    def same(a: tuple[ReportVersion, ...], b: tuple[ReportVersion, ...]) -> bool:
        return len(a) == len(b) and all(x.ident == y.ident for x, y in zip(a, b, strict=True))

    return Regroup(
        {a: g for a, g in before.items() if a not in after or not same(g, after[a])},
        {a: g for a, g in after.items() if a not in before or not same(g, before[a])},
    )


def _merged(entries: list[_WideEntry]) -> list[tuple[int, int]]:
    """The days of the reaches of `entries`, as merged runs (first day, last day)."""
    runs: list[tuple[int, int]] = []
    for first, last, _, _ in sorted(entries):
        if runs and first <= runs[-1][1] + 1:
            if last > runs[-1][1]:
                runs[-1] = (runs[-1][0], last)
        else:
            runs.append((first, last))
    return runs


def _grouped_by(groups: list[list[ReportVersion]], rule: LinkRule) -> bool:
    """Whether `rule` groups these reports (a closed day's) as they are grouped."""
    regrouped = canonical_groups([m for g in groups for m in g], rule)
    return not _difference({g[0].ident: tuple(g) for g in groups}, regrouped)
