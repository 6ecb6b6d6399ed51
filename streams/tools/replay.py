"""The latest revision of each report in a file of inputs, for offline replays (`backtest`).

The same rules the worker applies to a stream (SPEC.md `revision`, `withdrawn`), over a
file read in order: of each (`source`, `report_id`) the highest revision counts; a
withdrawal as its latest version removes the report; an equal revision with the same
content is a duplicate, with other content a conflict (the worker dead-letters it as
`revision_conflict`; the version read first stays); a lower revision than one already
read is stale. Two withdrawals at one revision are duplicates whatever else they carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.report import Report, WithdrawnReport
from streams.record.documents import report_digest

Version = Report | WithdrawnReport


@dataclass
class Latest:
    """What `latest_revisions` kept, and how many inputs it set aside and why."""

    reports: list[Report] = field(default_factory=list)  # latest versions, first-read order
    withdrawn: int = 0  # reports whose latest version is a withdrawal
    superseded: int = 0  # versions replaced by a higher revision read later
    stale: int = 0  # versions read after a higher revision of their report
    duplicates: int = 0  # an equal revision with the same content
    conflicts: int = 0  # an equal revision with other content


def _same(a: Version, b: Version) -> bool:
    """The same content, as the worker tells it: by the digest of the report as sent
    (`report_digest`), which leaves out `reported_at` and reads no casualties as zero. The
    models compared whole called such re-sends conflicts, rejected where the worker counts
    them as duplicates."""
    if isinstance(a, WithdrawnReport) and isinstance(b, WithdrawnReport):
        return True
    if isinstance(a, Report) and isinstance(b, Report):
        return report_digest(a) == report_digest(b)
    return False


def latest_revisions(versions: Iterable[Version]) -> Latest:
    """The latest version of every report among `versions` (read in order)."""
    held: dict[tuple[str, str], Version] = {}
    latest = Latest()
    for version in versions:
        ident = (version.source, version.report_id)
        current = held.get(ident)
        if current is None or version.revision > current.revision:
            if current is not None:
                latest.superseded += 1
            held[ident] = version
        elif version.revision < current.revision:
            latest.stale += 1
        elif _same(current, version):
            latest.duplicates += 1
        else:
            latest.conflicts += 1
    for version in held.values():
        if isinstance(version, Report):
            latest.reports.append(version)
        else:
            latest.withdrawn += 1
    return latest
