"""The record: which version of each report counts, which reports are one incident, and
what every change does to incidents and tallies (issue 10; docs/record.md).

Pure and deterministic, over plain data (`model.py`); the stage feeds it and persists its
changelog entries.

| module | responsibility |
|---|---|
| `model` | report versions, withdrawals, identity and content digests |
| `documents` | classified documents (the keyed topic's) as versions; their digests |
| `revisions` | revision state per identity, kept for good (packed) |
| `linking` | the pair rule and the canonical grouping of a zone's reports |
| `incident` | an incident's fields from its reports |
| `tally` | tally cells and deltas |
| `book` | incidents of a set of zones: publishing, versions, replay safety |
| `changelog` | changelog entries of the book |
| `record` | revision state and book composed, one call per report |
"""

from streams.record.book import Change, IncidentBook
from streams.record.incident import IncidentFields, IncidentRecord, Status, derive
from streams.record.linking import LinkRule, ZoneLinker, canonical_groups
from streams.record.model import (
    ReportVersion,
    Version,
    Withdrawal,
    content_digest,
    identity_key,
)
from streams.record.record import Batch, Record, Step
from streams.record.revisions import Decision, IdentityState, Outcome
from streams.record.tally import Cell, Tally, tally_of

__all__ = [
    "Batch",
    "Cell",
    "Change",
    "Decision",
    "IdentityState",
    "IncidentBook",
    "IncidentFields",
    "IncidentRecord",
    "LinkRule",
    "Outcome",
    "Record",
    "ReportVersion",
    "Status",
    "Step",
    "Tally",
    "Version",
    "Withdrawal",
    "ZoneLinker",
    "canonical_groups",
    "content_digest",
    "derive",
    "identity_key",
    "tally_of",
]
