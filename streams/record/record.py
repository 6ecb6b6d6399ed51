"""The record of one partition: revision state and incidents together, one call per report.

`Record.apply` takes versions in arrival order and returns, per version, everything the
stage needs: the outcome (for metrics and the `revision_conflict` dead letter), the incident
versions to publish and the changelog entries. This composition suits a
stage that sees every version of a report and every report of a zone in one place. Where
the input is keyed by identity and incidents by zone, the two halves run apart: the identity
stage keeps `IdentityState` and forwards accepted versions (and, for withdrawals and zone
moves, `Decision.zone_before`) to the zone stage, which keeps an `IncidentBook`; see
docs/record.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from streams.record.book import Change, IncidentBook
from streams.record.changelog import Entry
from streams.record.incident import IncidentFields, IncidentRecord
from streams.record.linking import LinkRule
from streams.record.model import ReportVersion, Version
from streams.record.revisions import ENTRY_PREFIX, IdentityState, Outcome
from streams.record.tally import Tally

_UPSERT = frozenset({Outcome.NEW, Outcome.REVISED, Outcome.REINSTATED, Outcome.RECLASSIFIED})


@dataclass(slots=True)
class Step:
    outcome: Outcome
    #: the revision applied before this version (None for a first version)
    previous_revision: int | None
    incidents: list[IncidentRecord] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    #: closed incidents reopened by this version (`Change.moves`)
    moves: list[tuple[str, str, IncidentFields]] = field(default_factory=list)


class Record:
    def __init__(self, rule: LinkRule | None = None) -> None:
        self.identities = IdentityState()
        self.book = IncidentBook(rule)

    def apply(self, version: Version) -> Step:
        decision = self.identities.apply(version)
        step = Step(decision.outcome, decision.previous_revision)
        if decision.entry is not None:
            step.entries.append(decision.entry)
        change: Change | None = None
        if decision.outcome in _UPSERT and isinstance(version, ReportVersion):
            change = self.book.upsert(version)
        elif decision.outcome is Outcome.WITHDRAWN:
            change = self.book.remove(version.source, version.report_id, version.revision)
        if change is not None:
            step.incidents = change.incidents
            step.moves = change.moves
            step.entries.extend(change.entries)
            step.entries.extend(change.later)
        return step

    def incidents(self) -> Iterator[IncidentRecord]:
        return self.book.incidents()

    def reports(self) -> Iterator[ReportVersion]:
        return self.book.reports()

    def tally(self) -> Tally:
        return self.book.tally()

    def restore(self, entries: Iterable[Entry]) -> int:
        """Rebuild from changelog entries in the order written (or compacted)."""
        identity: list[tuple[bytes, bytes]] = []
        book: list[Entry] = []
        for key, value in entries:
            if not key.startswith(ENTRY_PREFIX):
                book.append((key, value))
            elif value is not None:
                identity.append((key, value))
        return self.identities.restore(identity) + self.book.restore(book)


@dataclass(slots=True)
class Batch:
    """Steps of one batch folded for one round of writes: the latest version of each
    incident (earlier versions of the batch are skipped: subscribers read versions as
    "at least"), the latest changelog value of each key, and the count of each outcome."""

    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    entries: dict[bytes, bytes | None] = field(default_factory=dict)
    outcomes: dict[Outcome, int] = field(default_factory=dict)

    def add(self, step: Step) -> None:
        for inc in step.incidents:
            self.incidents.pop(inc.incident_id, None)  # re-insert: publish in last-change order
            self.incidents[inc.incident_id] = inc
        for key, value in step.entries:
            self.entries[key] = value
        self.outcomes[step.outcome] = self.outcomes.get(step.outcome, 0) + 1
