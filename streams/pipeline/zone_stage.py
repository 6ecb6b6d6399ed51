"""The zone stage: reports linked into incidents, tallied, published (SPEC.md "Incidents").

Input: `ceasefire.reports.by-zone`, the upserts and removes of the identity stage routed
by zone, so all of a zone's reports meet in one partition, and the version floors this stage
sends itself: a remove for a move to a zone of another partition is followed by a floor to
that zone, and a floor reaching a partition the report has left goes on to where it went
(`IncidentBook.floor`; docs/record.md, "Versions across partitions"). State:
`streams/record/book.py::IncidentBook` per partition in the changelog of the table
`incident-book` (entries per changed report and incident version: it grows with what
changed). A timer closes the days older than the retention (`sweep`,
`streams/record/archive.py`): their reports leave memory, their counts stay.

Every step publishes each changed incident's latest version to `ceasefire.incidents`
(keyed by incident id) and, for the alert stage, the report that opened or joined an open
incident as that incident (`ceasefire.incidents.by-zone`, packed per zone partition); then
writes its entries. A crash in between publishes again (subscribers keep the highest
`version` of an incident id). The partition's `IncidentTally` answers the tallies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from schemas import jsonbytes
from schemas.alert_input import encode_alert_input
from streams import metrics
from streams.pipeline.alert_input_memo import AlertInputMemo
from streams.pipeline.packs import partition_for, send_each, send_packs, unpack
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports, Stage
from streams.pipeline.tables import ZONE_TABLE
from streams.pipeline.zone_messages import Floor, Upsert, floor_message, read_message
from streams.record.alert_view import alert_document, alert_input
from streams.record.archive import UNIT_PART_BYTES
from streams.record.book import Change, IncidentBook
from streams.record.documents import BadDocument
from streams.record.incident import (
    IncidentFields,
    IncidentRecord,
    Status,
    forget_given_incident_ids,
    give_incident_id,
)
from streams.record.linking import LinkRule
from streams.record.model import Ident, ReportVersion
from streams.record.revisions import Outcome
from streams.store.changelog import Recovered
from streams.tallies.state import IncidentTally

log = logging.getLogger(__name__)

#: Most ids kept as never counted (`ZoneStage._never_counted`): about 15 MB.
NEVER_COUNTED_KEPT = 100_000


@dataclass(slots=True)
class ZoneOutput:
    #: (zone, incident id) -> its latest version in this step (insertion order: publish
    #: order). By zone too: a report moved to another zone of the partition leaves its id
    #: withdrawn in the old zone and open in the new one, and both versions count.
    incidents: dict[tuple[str, str], IncidentRecord] = field(default_factory=dict)
    #: partition of each incident (for the tally)
    partition_of: dict[tuple[str, str], int] = field(default_factory=dict)
    #: the upserts of this step, by identity
    upserted: dict[tuple[str, str], Upsert] = field(default_factory=dict)
    entries: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    #: written once `entries` are (`Change.later`)
    later: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    #: per partition, the incidents closed or reopened, in order (for the tally)
    moves: dict[int, list[tuple[str, str, IncidentFields]]] = field(default_factory=dict)
    #: (partition of the book sending it, zone, version floor) for this stage itself
    floors: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    dead: list[DeadRecord] = field(default_factory=list)
    #: murmur2 of incident ids (the identity stage's, with its upserts): their partitions
    key_hashes: dict[bytes, int] = field(default_factory=dict)
    #: outcomes of the re-sends the identity stage left this stage to tell (`recheck`)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    #: ids published for the first time in this step (version 1 among its changes, though
    #: only the latest version is published): an incident opened, or one renamed
    first: set[tuple[str, str]] = field(default_factory=set)

    def add(self, partition: int, change: Change) -> None:
        for incident in change.incidents:
            at = (incident.fields.zone, incident.incident_id)
            if incident.version == 1:
                self.first.add(at)
            self.incidents.pop(at, None)
            self.incidents[at] = incident
            self.partition_of[at] = partition
        # A key written again moves last, as the changelog's recovery reads it: its place
        # is where its final value is written.
        entries = self.entries.setdefault(partition, {})
        for key, value in change.entries:
            entries.pop(key, None)
            entries[key] = value
        if change.later:
            later = self.later.setdefault(partition, {})
            for key, value in change.later:
                later.pop(key, None)
                later[key] = value
        if change.moves:
            self.moves.setdefault(partition, []).extend(change.moves)
        for to, source, report_id, version in change.floors:
            self.floors.append((partition, to.encode(), floor_message(source, report_id, version)))


#: How a retraction starts (the alert stage tells it from an incident by it).
RETRACT_PREFIX = b'{"kind": "retract"'


def retraction(record: IncidentRecord) -> bytes:
    """An incident id that no longer heads an incident: its counts leave the alert state
    (and, merged, its alerts go to the incident it was merged into)."""
    doc = {"kind": "retract", "incident_id": record.incident_id, "zone": record.fields.zone}
    if record.status is Status.MERGED and record.merged_into is not None:
        doc["merged_into"] = record.merged_into  # a key alert stages before it ignore
    raw = json.dumps(doc).encode()
    assert raw.startswith(RETRACT_PREFIX)
    return raw


def alert_inputs_of(
    out: ZoneOutput,
    fields_format: bool = True,
    memo: AlertInputMemo | None = None,
    report_of: Callable[[int, Ident], ReportVersion | None] | None = None,
) -> list[tuple[bytes, bytes]]:
    """What the alert stage hears of a step, from the step's final incident versions (an
    id that opened and was merged within the step never reaches it): each open incident
    that took a report in this step, as that report; each merged or withdrawn id, as a
    retraction; each open incident that changed otherwise (a report withdrawn or moved
    out, a regrouping), as its first report (`report_of`: the current version of a report
    in a partition's book; None: not heard). Not `fields_format`: as the report's whole
    document where its upsert carried it (`CEASEFIRE_INTERNAL_FORMAT=1`). `memo`: keeps
    each input written, for this process's alert stage to read back without a parse."""
    inputs: list[tuple[bytes, bytes]] = []
    upserted = out.upserted
    for at, incident in out.incidents.items():
        zone = incident.fields.zone.encode()
        if incident.status is not Status.OPEN:
            inputs.append((zone, retraction(incident)))
            continue
        made = None
        others = None
        if report_of is not None:
            partition = out.partition_of[at]
            others = partial(report_of, partition)
        # the first of its reports upserted in this step (a loop: a generator per
        # incident cost more than the lookups)
        for source, report_id, _ in incident.fields.reports:
            found = upserted.get((source, report_id))
            if found is not None:
                if fields_format or found.doc is None:
                    made = alert_input(found.version, found.civilian, incident, others)
                else:
                    inputs.append((zone, jsonbytes.dumps(alert_document(found.doc, incident))))
                break
        else:
            if others is not None:
                source, report_id, _ = incident.fields.reports[0]
                first = others((source, report_id))
                if first is not None:
                    made = alert_input(first, first.civilian, incident, others)
        if made is not None:
            raw = encode_alert_input(made)
            if memo is not None:
                memo.put(raw, made)
            inputs.append((zone, raw))
    return inputs


def _moved_in(incident: IncidentRecord, upserted: Mapping[Ident, Upsert]) -> bool:
    """Whether a report of `incident` came in this step from another zone, where its event
    was counted (a revision moved it): the incident it opens here is no new event."""
    for source, report_id, _ in incident.fields.reports:
        found = upserted.get((source, report_id))
        if found is not None and found.moved:
            return True
    return False


class ZoneStage(Stage[ZoneOutput]):
    def __init__(
        self,
        ports: Ports,
        rule: LinkRule,
        alert_inputs: AlertInputMemo | None = None,
    ) -> None:
        """`alert_inputs`: where the alert inputs it writes are kept for this process's
        alert stage (`alert_input_memo.py`); None: nowhere."""
        s = ports.settings
        super().__init__(
            ports, topic=s.zone_reports_topic, table=ZONE_TABLE, agent="link-incidents"
        )
        self.rule = rule
        self.alert_inputs = alert_inputs
        self.books: dict[int, IncidentBook] = {}
        self.tallies: dict[int, IncidentTally] = {}
        #: what a recovery must publish and write before the stage is ready (`settle`)
        self._adopted: ZoneOutput | None = None
        #: ids first published other than open (opened and merged, or withdrawn, within
        #: one step): never counted in `ceasefire_incidents_total`, so counted when they
        #: head an incident again (a regrouping splits one off). This worker's run only:
        #: the counter starts again with the process too. In insertion order, the oldest
        #: forgotten past `NEVER_COUNTED_KEPT` (a backfill of merging reports adds an id
        #: per merge): one forgotten and split off again is missed by the counter only.
        self._never_counted: dict[tuple[str, str], None] = {}

    def restore(self, partitions: dict[int, Recovered]) -> None:
        books: dict[int, IncidentBook] = {}
        tallies: dict[int, IncidentTally] = {}
        adopted = ZoneOutput()
        record_rule = self.ports.settings.internal_format >= 5
        # Below 7, a closed day is one record however large, as older workers read it.
        unit_cap = UNIT_PART_BYTES if self.ports.settings.internal_format >= 7 else sys.maxsize
        for p, rec in partitions.items():
            book = books[p] = IncidentBook(self.rule, record_rule, unit_cap)
            tally = tallies[p] = IncidentTally()
            book.restore(rec.entries, tally.load_closed)
            if book.rule_problem is not None:
                log.error(
                    "partition %d: open incidents regrouped by the current linking rule "
                    "without publishing the difference: %s",
                    p,
                    book.rule_problem,
                )
            for incident in book.incidents():
                tally.apply(incident)
            if book.adopted.later:
                log.warning(
                    "partition %d: a write was torn before it deleted what it replaced; "
                    "deleting %d stale changelog entries before taking input",
                    p,
                    len(book.adopted.later),
                )
            adopted.add(p, book.adopted)
            book.adopted = Change()
        if adopted.incidents:
            log.warning(
                "linking rule changed: publishing %d regrouped incident versions of partitions %s",
                len(adopted.incidents),
                sorted(set(adopted.partition_of.values())),
            )
        self.books, self.tallies = books, tallies
        written = any(adopted.entries.values()) or any(adopted.later.values())
        self._adopted = adopted if written else None
        self._held()

    def unsettled(self) -> bool:
        return self._adopted is not None

    async def settle(self) -> None:
        """Publish the regrouping a change of the linking rule made at the recovery, and
        write the rule (`IncidentBook.adopted`): before the stage is ready, so that no change
        lands on incidents not yet published as they are."""
        out = self._adopted
        if out is None:
            return
        generation = self.generation
        async with self.lock:
            if generation != self.generation:
                return  # revoked or recovered again meanwhile: that recovery adopts
            await self.commit(out, {})
            self._adopted = None
            self.committed(out)

    async def sweep(self) -> None:
        """Close the days older than the retention that nothing changed near lately (a
        timer's step; `IncidentBook.sweep`)."""
        await self.maintain(self._sweep)

    def _sweep(self, out: ZoneOutput) -> bool:
        s = self.ports.settings
        before = time.time() - s.retention_days * 86_400
        idle_since = time.monotonic() - s.close_idle_seconds
        for p, book in self.books.items():
            out.add(p, book.sweep(before, s.close_idle_changes, idle_since))
        return bool(out.entries)

    def new_output(self) -> ZoneOutput:
        return ZoneOutput()

    def process(self, records: Sequence[Record], out: ZoneOutput) -> None:
        clock = time.monotonic()
        # under format 4 the record keeps no civilian flag, under 5 no raw names: its rows
        # are as the workers of that format read
        keep_civilian = self.ports.settings.internal_format >= 5
        keep_raw = self.ports.settings.internal_format >= 6
        forget_given_incident_ids()
        for r in records:
            book = self.books.get(r.partition)
            if book is None:
                continue  # not owned (a stale delivery): the owner applies it
            book.clock = clock
            for raw in unpack(r.value):
                try:
                    msg = read_message(raw, keep_civilian, keep_raw)
                except BadDocument as exc:
                    out.dead.append((r.partition, r.offset, raw, str(exc)))
                    continue
                if isinstance(msg, Upsert):
                    if msg.incident_id is not None and msg.key_hash is not None:
                        give_incident_id(msg.version.ident, msg.incident_id)
                        out.key_hashes[msg.incident_id.encode()] = msg.key_hash
                    change = book.upsert(msg.version)
                    out.upserted[msg.version.ident] = msg
                    if msg.recheck:
                        out.outcomes[
                            Outcome.RECLASSIFIED if change.reclassified else Outcome.DUPLICATE
                        ] += 1
                elif isinstance(msg, Floor):
                    change = book.floor(msg.source, msg.report_id, msg.version)
                else:
                    change = book.remove(msg.source, msg.report_id, msg.revision, msg.to)
                out.add(r.partition, change)

    async def commit(self, out: ZoneOutput, applied: dict[int, int]) -> None:
        ports = self.ports
        s = ports.settings
        generation = self.generation
        if out.dead:
            await ports.dead_letter(s.zone_reports_topic, out.dead, "invalid_value")
            out.dead = []
        producer = await ports.producer()
        sends = []
        if out.incidents:
            documents = [
                (i.incident_id.encode(), jsonbytes.dumps(i.document()))
                for i in out.incidents.values()
            ]
            sends.extend(
                await send_each(
                    producer,
                    s.incidents_topic,
                    documents,
                    await ports.partitions_of(s.incidents_topic),
                    out.key_hashes,
                )
            )
        alert_inputs = alert_inputs_of(
            out, s.internal_format >= 2, self.alert_inputs, self._report_of
        )
        if alert_inputs:
            alert_partitions = await ports.partitions_of(s.zone_packs_topic)
            sends.extend(
                await send_packs(producer, s.zone_packs_topic, alert_inputs, alert_partitions)
            )
        if out.floors:
            zone_partitions = await ports.partitions_of(s.zone_reports_topic)
            # To the zone's partition, by the key the identity stage routes by; none when
            # that is the sender's own: its book moved the report and its versions.
            floors = [
                (to, message)
                for p, to, message in out.floors
                if partition_for(to, zone_partitions) != p
            ]
            sends.extend(await send_packs(producer, s.zone_reports_topic, floors, zone_partitions))
        await asyncio.gather(*sends)
        self.check_owned(generation)  # revoked meanwhile: nothing written (`Revoked`)
        await self.store.write_many({p: list(e.items()) for p, e in out.entries.items()}, applied)
        if out.later:
            self.check_owned(generation)  # (a recovery deletes the copy left: `restore`)
            await self.store.write_many({p: list(e.items()) for p, e in out.later.items()}, {})

    def _report_of(self, partition: int, ident: Ident) -> ReportVersion | None:
        book = self.books.get(partition)
        return None if book is None else book.report(ident)

    def committed(self, out: ZoneOutput) -> None:
        for p, moves in out.moves.items():  # before the versions: a reopen is taken back
            tally = self.tallies.get(p)
            if tally is None:
                continue
            for move, iid, fields in moves:
                try:
                    if move == "close":
                        tally.close(iid)
                    else:
                        tally.reopen(iid, fields)
                except KeyError:  # the tally and the book disagree: a defect, not input
                    log.exception("partition %d: cannot %s incident %s in the tally", p, move, iid)
        baselines = self._baselines(out)  # before any incident of the step is applied
        opened: Counter[tuple[str, str, str, str]] = Counter()  # one label lookup per series
        for at, incident in out.incidents.items():
            tally = self.tallies.get(out.partition_of[at])
            if tally is None:
                continue
            tally.apply(incident)
            f = incident.fields
            if incident.status is not Status.OPEN:
                continue
            baseline = baselines.get(at)
            if baseline is None:  # a new event: opened, its figures all new
                opened[(f.zone, f.attribution, str(f.category), str(f.severity))] += 1
                baseline = (0, 0)
            # counters only grow: they count rises in an incident's figures
            killed, wounded = f.killed - baseline[0], f.wounded - baseline[1]
            if killed > 0:
                metrics.CASUALTIES.labels(f.zone, f.attribution, "killed").inc(killed)
            if wounded > 0:
                metrics.CASUALTIES.labels(f.zone, f.attribution, "wounded").inc(wounded)
        for labels, n in opened.items():
            metrics.INCIDENTS.labels(*labels).inc(n)
        for at, incident in out.incidents.items():
            if incident.status is Status.OPEN:
                self._never_counted.pop(at, None)
            elif at in out.first:
                self._never_counted[at] = None
                if len(self._never_counted) > NEVER_COUNTED_KEPT:
                    del self._never_counted[next(iter(self._never_counted))]
        for outcome, n in out.outcomes.items():
            metrics.REPORT_OUTCOMES.labels(outcome.value).inc(n)
        metrics.DUPLICATES.inc(out.outcomes.get(Outcome.DUPLICATE, 0))
        self._held()

    def _baselines(self, out: ZoneOutput) -> dict[tuple[str, str], tuple[int, int]]:
        """(killed, wounded) the counters already hold of each open incident of the step;
        absent: a new event. An incident was counted before the step if it was open then
        (its figures then), or if an incident counted before was merged into it in the step
        (a rename, when an earlier report joined: the larger of their figures, which are
        never summed), or if it was published before and is back (withdrawn, now
        reinstated: its figures, so that nothing is counted twice), unless its every
        version before was published other than open (`_never_counted`)."""
        before: dict[tuple[str, str], tuple[int, int]] = {}
        into: dict[tuple[str, str], tuple[str, str]] = {}
        for at, incident in out.incidents.items():
            tally = self.tallies.get(out.partition_of[at])
            held = None if tally is None else tally.open.get(incident.incident_id)
            if held is not None:
                before[at] = (held.killed, held.wounded)
            if incident.status is Status.MERGED and incident.merged_into is not None:
                into[at] = (at[0], incident.merged_into)
        for at, target in into.items():  # a chain of merges within the step: to its end
            figures = before.get(at)
            seen = {at}
            while target in into and target not in seen:
                seen.add(target)
                target = into[target]
            if figures is None:  # opened and merged within the step: never counted
                continue
            known = before.get(target, figures)
            before[target] = (max(known[0], figures[0]), max(known[1], figures[1]))
        for at, incident in out.incidents.items():
            if at in before or incident.status is not Status.OPEN:
                continue
            counted = at not in out.first and at not in self._never_counted
            if counted or _moved_in(incident, out.upserted):
                before[at] = (incident.fields.killed, incident.fields.wounded)
        return before

    def _held(self) -> None:
        books = self.books.values()
        metrics.REPORTS_HELD.labels("open").set(sum(len(b) for b in books))
        metrics.REPORTS_HELD.labels("closed").set(sum(b.archive.reports for b in books))
        metrics.REPORTS_CROWDED.set(sum(b.crowded_reports for b in books))

    def partitions_ready(self) -> set[int]:
        return set(self.tallies) if self.ready.is_set() else set()
