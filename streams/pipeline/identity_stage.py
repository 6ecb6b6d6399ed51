"""The identity stage: which version of each report counts (SPEC.md `revision`, `withdrawn`).

Input: `ceasefire.reports.accepted`, keyed by report identity, so every version of a report
meets in one partition. State: `streams/record/revisions.py::IdentityState` per partition,
kept for good (a re-import of years of history never counts twice), in the changelog of
the table `identity-state`.

Per version: `new`, `revised`, `reinstated` go on to the zone stage as an upsert in the
report's zone (and a remove in its former zone, naming the new one, when it moved);
`withdrawn` as a remove; `duplicate` and `stale` are counted; `conflict` is dead-lettered
(`revision_conflict`).
Forwarded messages are acknowledged before the identity entries are written: a crash in
between forwards them again, which the zone stage absorbs (a version it holds changes
nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson

from schemas.codes import RejectReason
from schemas.incident import incident_id_for
from schemas.report import report_key
from streams import metrics
from streams.pipeline.packs import murmur2, send_packs, unpack
from streams.pipeline.progress import Record
from streams.pipeline.stage import DeadRecord, Ports, Stage
from streams.pipeline.tables import IDENTITY_TABLE
from streams.pipeline.zone_messages import (
    document_upsert_message,
    remove_message,
    upsert_message,
)
from streams.record.documents import BadDocument, legacy_digest, sent_digest_of, version_of
from streams.record.model import ReportVersion
from streams.record.revisions import IdentityState, Outcome, conflict_message
from streams.store.changelog import Recovered

log = logging.getLogger(__name__)

#: Identity entries restored between two turns of the event loop (about 0.4 s).
RESTORE_STEP = 50_000


@dataclass(slots=True)
class IdentityOutput:
    #: (zone, message) for the zone stage, in order
    forward: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: partition -> key -> value (the latest per key)
    entries: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    dead: list[tuple[DeadRecord, str]] = field(default_factory=list)
    #: revision conflicts: where ingest read the report (`Incident.input`; None: not
    #: known), and the dead record of its classified document here
    #: read it), the record, and the report's key (its dead letter's)
    conflicts: list[tuple[tuple[int, int] | None, DeadRecord, bytes]] = field(default_factory=list)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    #: new reports, for the per-report metrics: (source type, occurred, received), epoch s
    accepted: list[tuple[str, float, float]] = field(default_factory=list)


class IdentityStage(Stage[IdentityOutput]):
    def __init__(self, ports: Ports, changelog_app_id: str | None = None) -> None:
        s = ports.settings
        super().__init__(
            ports,
            topic=s.keyed_topic,
            table=IDENTITY_TABLE,
            agent="apply-revisions",
            changelog_app_id=changelog_app_id,
        )
        self.states: dict[int, IdentityState] = {}
        #: upserts by field (`CEASEFIRE_INTERNAL_FORMAT`), or whole documents
        self.fields_format = s.internal_format >= 2
        #: identity entries keep the digest of the report as sent (format 3), or the
        #: classified document's, which workers before it read
        self.sent_digests = s.internal_format >= 3
        #: and a check of the classification beside it (format 5), so that a re-send the
        #: classifier now makes another document of is taken as a reclassification
        self.reclassify = s.internal_format >= 5

    def restore(self, partitions: dict[int, Recovered]) -> None:
        for _ in self._restoring(partitions):
            pass

    async def restore_yielding(self, partitions: dict[int, Recovered]) -> None:
        # Identities are kept for good: 3,000,000 took 34 s to restore in one go, while the
        # worker kills an identity process silent for 30 s, so recovery never ended.
        for _ in self._restoring(partitions):
            await asyncio.sleep(0)

    def _restoring(self, partitions: dict[int, Recovered]) -> Iterator[None]:
        """Restores the partitions' states, pausing after every RESTORE_STEP entries."""
        states: dict[int, IdentityState] = {}
        for p, rec in partitions.items():
            state = states[p] = IdentityState()
            entries = rec.entries
            for at in range(0, len(entries), RESTORE_STEP):
                state.restore(entries[at : at + RESTORE_STEP])
                yield
        self.states = states

    def identities(self) -> int:
        return sum(len(s) for s in self.states.values())

    def new_output(self) -> IdentityOutput:
        return IdentityOutput()

    def process(self, records: Sequence[Record], out: IdentityOutput) -> None:
        # arrival time -> epoch seconds: within a step most reports share theirs (a
        # backlog's records were stamped by the millisecond), so each is parsed once
        arrivals: dict[str, float] = {}
        for r in records:
            state = self.states.get(r.partition)
            if state is None:
                continue  # not owned (a stale delivery): the owner applies it
            for raw in unpack(r.value):
                try:
                    doc = orjson.loads(raw)
                    if not isinstance(doc, dict):
                        raise BadDocument("not a JSON object")
                    version = version_of(doc)
                    sent = sent_digest_of(doc)
                except (BadDocument, ValueError) as exc:
                    out.dead.append(((r.partition, r.offset, raw, str(exc)), "invalid_value"))
                    continue
                decision = state.apply(
                    version,
                    partial(legacy_digest, doc),
                    sent if self.sent_digests else None,
                    self.reclassify,
                )
                if not decision.recheck:  # else the zone stage tells and counts it
                    out.outcomes[decision.outcome] += 1
                if decision.entry is not None:
                    key, value = decision.entry
                    out.entries.setdefault(r.partition, {})[key] = value
                if decision.outcome is Outcome.CONFLICT:
                    message = conflict_message(version.source, version.report_id, version.revision)
                    key = report_key(version.source, version.report_id).encode()
                    dead = (r.partition, r.offset, raw, message)
                    out.conflicts.append((_origin(doc), dead, key))
                    continue
                if not (decision.outcome.changes_state or decision.recheck):
                    continue
                before = decision.zone_before
                if isinstance(version, ReportVersion):
                    iid = incident_id_for(version.source, version.report_id)
                    out.forward.append(
                        (
                            version.zone.encode(),
                            upsert_message(
                                version,
                                doc.get("civilian") is True,
                                iid,
                                murmur2(iid.encode()),
                                decision.recheck,
                                moved=before is not None and before != version.zone,
                            )
                            if self.fields_format
                            else document_upsert_message(
                                raw, version.digest, iid, murmur2(iid.encode())
                            ),
                        )
                    )
                    if before is not None and before != version.zone:
                        # naming the new zone: the old one's partition sends it a version
                        # floor for the report's incident id (docs/record.md, "Versions
                        # across partitions")
                        out.forward.append(
                            (
                                before.encode(),
                                remove_message(
                                    version.source,
                                    version.report_id,
                                    version.revision,
                                    to=version.zone,
                                ),
                            )
                        )
                    received = doc.get("received_at")
                    # A report's first counted version: new, or reinstated from a
                    # withdrawal that came first (it held no zone, so no version was counted).
                    first = decision.outcome is Outcome.NEW or (
                        decision.outcome is Outcome.REINSTATED and before is None
                    )
                    if first and isinstance(received, str):
                        arrived = arrivals.get(received)
                        if arrived is None:
                            # Only the event-lag metric reads it, after the state changed:
                            # a time that does not parse (another writer's) must not fail
                            # the step, whose retry would then find its reports known.
                            try:
                                arrived = datetime.fromisoformat(received).timestamp()
                            except ValueError:
                                log.warning(
                                    "a report with an unreadable received_at %r: not in the "
                                    "event-lag metric",
                                    received[:40],
                                )
                                continue
                            arrivals[received] = arrived
                        out.accepted.append(
                            (
                                str(version.source_type),
                                version.occurred,  # parsed once, by version_of
                                arrived,
                            )
                        )
                elif before is not None:  # a withdrawal of a live report
                    out.forward.append(
                        (
                            before.encode(),
                            remove_message(version.source, version.report_id, version.revision),
                        )
                    )

    async def commit(self, out: IdentityOutput, applied: dict[int, int]) -> None:
        ports = self.ports
        s = ports.settings
        generation = self.generation
        # Each batch leaves the output once acknowledged: a retry after a later failure must
        # not send it (nor count it) twice.
        for reason in sorted({reason for _, reason in out.dead}):
            await ports.dead_letter(
                s.keyed_topic, [d for d, r in out.dead if r == reason], str(reason)
            )
            out.dead[:] = [(d, r) for d, r in out.dead if r != reason]
        if out.conflicts:
            await self._dead_letter_conflicts(out.conflicts)
        self.check_owned(generation)  # revoked meanwhile: nothing forwarded (`Revoked`)
        if out.forward:
            producer = await ports.producer()
            zone_partitions = await ports.partitions_of(s.zone_reports_topic)
            await asyncio.gather(
                *await send_packs(producer, s.zone_reports_topic, out.forward, zone_partitions)
            )
        self.check_owned(generation)
        await self.store.write_many({p: list(e.items()) for p, e in out.entries.items()}, applied)

    async def _dead_letter_conflicts(
        self, conflicts: list[tuple[tuple[int, int] | None, DeadRecord, bytes]]
    ) -> None:
        """A conflict's dead letter holds the report as its source sent it, where ingest
        read it (SPEC.md: the original bytes and their topic, partition and offset), read
        back from the input topic; a report not read back (deleted by retention, a document
        of an ingest before `input`, the read failed) has its classified document here.
        Conflicts leave `conflicts` as their dead letters are acknowledged."""
        ports = self.ports
        s = ports.settings
        wanted = {origin for origin, _, _ in conflicts if origin is not None}
        sent: dict[tuple[int, int], bytes] = {}
        unread = "this worker does not read reports back"
        if wanted and ports.read_input is not None:
            try:
                sent = await ports.read_input(wanted)
                unread = f"it is no longer on {s.reports_topic}"
            except Exception as exc:  # a Kafka or timeout error: the dead letter all the same
                log.warning("reading %d conflicting reports back failed: %s", len(wanted), exc)
                unread = f"reading it back from {s.reports_topic} failed: {exc}"
        as_sent: list[DeadRecord] = []
        classified: list[DeadRecord] = []
        sent_keys: list[bytes | None] = []
        classified_keys: list[bytes | None] = []
        left = []  # the conflicts of `classified`
        for conflict in conflicts:
            origin, (partition, offset, raw, message), key = conflict
            original = sent.get(origin) if origin is not None else None
            if origin is not None and original is not None:
                as_sent.append((origin[0], origin[1], original, message))
                sent_keys.append(key)
                continue
            left.append(conflict)
            why = "its document does not say where ingest read it" if origin is None else unread
            note = f"{message} (this is its classified document, not the report as sent: {why})"
            classified.append((partition, offset, raw, note))
            classified_keys.append(key)
        reason = RejectReason.REVISION_CONFLICT
        if as_sent:
            await ports.dead_letter(s.reports_topic, as_sent, reason, sent_keys)
            conflicts[:] = left
        if classified:
            await ports.dead_letter(s.keyed_topic, classified, reason, classified_keys)
        conflicts.clear()

    def committed(self, out: IdentityOutput) -> None:
        now = time.time()
        for outcome, n in out.outcomes.items():
            metrics.REPORT_OUTCOMES.labels(outcome.value).inc(n)
        metrics.DUPLICATES.inc(out.outcomes.get(Outcome.DUPLICATE, 0))
        # Labelled series once per step, not per report (a label lookup costs a lock).
        counts: Counter[str] = Counter()
        last: dict[str, float] = {}
        processing = metrics.PROCESSING_SECONDS.observe
        event_lag = metrics.EVENT_LAG_SECONDS.observe
        for source_type, occurred, received in out.accepted:
            counts[source_type] += 1
            last[source_type] = received
            processing(max(now - received, 0.0))
            event_lag(max(received - occurred, 0.0))
        for source_type, n in counts.items():
            metrics.REPORTS.labels(source_type).inc(n)
        for source_type, received in last.items():
            metrics.LAST_REPORT_TIMESTAMP.labels(source_type).set(received)


def _origin(doc: dict[str, object]) -> tuple[int, int] | None:
    """Where ingest read the report (`Incident.input`), when the document says so."""
    at = doc.get("input")
    if isinstance(at, list) and len(at) == 2 and all(type(x) is int and x >= 0 for x in at):
        return at[0], at[1]
    return None
