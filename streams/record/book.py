"""The incidents of a set of zones: current reports in, published incident versions, tally
deltas and changelog entries out.

This is the zone-keyed half of the record. It takes reports that revision state has
accepted (`upsert`) and takes out withdrawn or moved ones (`remove`), and is idempotent for
replays: a version at or below the revision it holds (or took the report out at) changes
nothing, so a batch applied twice after a crash leaves the state as applying it once.

Publishing (SPEC.md: every change of an incident as its full new version):

* an incident whose reports changed is published `open` with its version + 1;
* an incident id that no longer heads an incident (its first report left, moved or was
  preceded by an earlier one; or it was merged) is published once more: `merged` into the
  incident that now holds the first of its former reports still current in the zone, or
  `withdrawn` when none of them is (they were all withdrawn, or revised into another zone,
  where that zone's incidents hold them);
* versions continue where they stopped if an id heads an incident again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from streams.record.changelog import (
    DETAIL_PREFIX,
    VERSION_PREFIX,
    Entry,
    decode_detail,
    decode_version,
    encode_detail,
    encode_tombstone,
    version_entry,
)
from streams.record.incident import IncidentFields, IncidentRecord, Status, derive, incident_id
from streams.record.linking import LinkRule, Regroup, ZoneLinker
from streams.record.model import Ident, ReportVersion, identity_key
from streams.record.tally import Tally, add_incident, add_tally, tally_of


@dataclass(slots=True)
class Change:
    """What one step did: incident versions to publish (in order: open versions first, so
    a `merged` record never points at an incident not yet published), the tally delta, and
    the changelog entries to write."""

    incidents: list[IncidentRecord] = field(default_factory=list)
    tally: Tally = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)

    def extend(self, other: Change) -> None:
        self.incidents.extend(other.incidents)
        add_tally(self.tally, other.tally)
        self.entries.extend(other.entries)


class IncidentBook:
    def __init__(self, rule: LinkRule | None = None) -> None:
        self.rule = rule or LinkRule()
        self.zones: dict[str, ZoneLinker] = {}
        self._zone_of: dict[Ident, str] = {}
        #: identity key -> revision the report was taken out at (replay protection)
        self._gone: dict[bytes, int] = {}
        #: incident id -> last published version (ids that ever headed an incident)
        self.versions: dict[str, int] = {}
        #: anchor -> fields of its open incident as last published (derived on demand after
        #: a restore): taking back an incident's old cell needs them on every change
        self._fields: dict[Ident, IncidentFields] = {}

    def __len__(self) -> int:
        return len(self._zone_of)

    def report(self, ident: Ident) -> ReportVersion | None:
        zone = self._zone_of.get(ident)
        return None if zone is None else self.zones[zone].live[ident]

    def reports(self) -> Iterator[ReportVersion]:
        for linker in self.zones.values():
            yield from linker.live.values()

    def incidents(self) -> Iterator[IncidentRecord]:
        """The open incidents, at their current versions."""
        for linker in self.zones.values():
            for anchor, members in linker.members.items():
                iid = incident_id(anchor)
                f = self._fields_of(anchor, members)
                yield IncidentRecord(iid, self.versions[iid], Status.OPEN, None, f)

    def tally(self) -> Tally:
        """The tally of the open incidents, from scratch."""
        return tally_of(
            derive(members) for linker in self.zones.values() for members in linker.members.values()
        )

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
        current = self.report(r.ident)
        if current is not None and current.revision >= r.revision:
            return change
        key = identity_key(r.source, r.report_id)
        if self._gone.get(key, -1) >= r.revision:
            return change
        self._gone.pop(key, None)
        if current is not None and current.zone != r.zone:
            self._take_out(current, change)
        self._zone_of[r.ident] = r.zone
        linker = self._linker(r.zone)
        self._publish(linker, linker.upsert(r), change)
        change.entries.append((DETAIL_PREFIX + key, encode_detail(r)))
        return change

    def remove(self, source: str, report_id: str, revision: int) -> Change:
        """Take the report out as of `revision` (a withdrawal, or a move to a zone this book
        does not hold)."""
        change = Change()
        key = identity_key(source, report_id)
        current = self.report((source, report_id))
        if (current is not None and current.revision >= revision) or self._gone.get(
            key, -1
        ) >= revision:
            return change
        if current is not None:
            self._take_out(current, change)
        self._gone[key] = revision
        change.entries.append((DETAIL_PREFIX + key, encode_tombstone(revision)))
        return change

    def _take_out(self, r: ReportVersion, change: Change) -> None:
        del self._zone_of[r.ident]
        linker = self.zones[r.zone]
        self._publish(linker, linker.remove(r.ident), change)
        if not linker.live:
            del self.zones[r.zone]

    def _next_version(self, iid: str, change: Change) -> int:
        version = self.versions.get(iid, 0) + 1
        self.versions[iid] = version
        change.entries.append(version_entry(iid, version))
        return version

    def _publish(self, linker: ZoneLinker, rg: Regroup, change: Change) -> None:
        if not rg.before and len(rg.after) == 1:
            # One incident started, nothing taken back (a report alone, most changes): what
            # the general case below does for it, without its dicts, sets and sorts.
            ((anchor, members),) = rg.after.items()
            f = self._fields[anchor] = derive(members)
            add_incident(change.tally, f, 1)
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            change.incidents.append(IncidentRecord(iid, version, Status.OPEN, None, f))
            return
        before = {a: self._fields_of(a, m) for a, m in rg.before.items()}
        after = {a: derive(m) for a, m in rg.after.items()}
        for anchor in before:
            del self._fields[anchor]
        self._fields.update(after)
        for f in before.values():
            add_incident(change.tally, f, -1)
        for f in after.values():
            add_incident(change.tally, f, 1)
        for anchor, f in sorted(after.items()):
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            change.incidents.append(IncidentRecord(iid, version, Status.OPEN, None, f))
        for anchor in sorted(before.keys() - after.keys()):
            target = next(
                (h for m in rg.before[anchor] if (h := linker.anchor.get(m.ident)) is not None),
                None,
            )
            iid = incident_id(anchor)
            version = self._next_version(iid, change)
            status = Status.WITHDRAWN if target is None else Status.MERGED
            merged_into = None if target is None else incident_id(target)
            change.incidents.append(
                IncidentRecord(iid, version, status, merged_into, before[anchor])
            )

    def restore(self, entries: Iterable[Entry]) -> int:
        """Rebuild from changelog entries (report and version entries; the latest per key
        wins), grouping each zone's reports from scratch. Returns how many were read."""
        current: dict[bytes, ReportVersion] = {}
        n = 0
        for key, value in entries:
            n += 1
            if key.startswith(VERSION_PREFIX):
                iid, version = decode_version(key, value)
                self.versions[iid] = version
            elif key.startswith(DETAIL_PREFIX):
                ik = key[len(DETAIL_PREFIX) :]
                decoded = decode_detail(value)
                if isinstance(decoded, int):
                    current.pop(ik, None)
                    self._gone[ik] = decoded
                else:
                    current[ik] = decoded
                    self._gone.pop(ik, None)
            else:
                raise ValueError(f"not an incident-book entry: {key[:20]!r}")
        by_zone: dict[str, list[ReportVersion]] = {}
        for r in current.values():
            by_zone.setdefault(r.zone, []).append(r)
            self._zone_of[r.ident] = r.zone
        for zone, reports in by_zone.items():
            self._linker(zone).load(reports)
        return n
