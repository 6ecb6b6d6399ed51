"""Events ACLED deleted: rows of the previous export that the new one no longer has.

ACLED deletes events between exports (duplicates merged, events found not to meet its
definitions) and says so nowhere in the new export: the event is simply absent, and an
absent row changes nothing here. `feed NEW --format acled --withdraw-missing-from PREVIOUS`
withdraws them (docs/operations.md, "History: a backfill").

An export is often a slice (a date range, some countries), so only an event within the new
export's dates and countries is taken for deleted; one outside them is kept and counted.
A new export holding under half of the previous one's events within its own slice is
refused: more likely a partial download than that many deletions.

Each withdrawal's revision is one above the event's `timestamp` in the previous export:
it retracts the version that export held, and nothing ACLED stamped later. An event taken
for deleted that ACLED only moved (its date corrected into another slice, stamped before
this feed ran) comes back when that slice is fed; a withdrawal at the feed's clock made it
stale for good.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date

from streams.tools.formats import ACLED_SOURCE, acled_event_days

#: The ISO country letters that begin an `event_id_cnty` (`AZE1234`, `ARM56`).
_COUNTRY = re.compile(r"[A-Za-z]+")
#: A new export with fewer of the previous one's events than this share of them, within
#: its own dates and countries, is refused.
MIN_KEPT_SHARE = 0.5


class PartialExport(ValueError):
    """The new export looks partial: nothing is withdrawn (one line)."""


@dataclass
class Deletions:
    #: event ids to withdraw, in the previous export's order, each once
    ids: list[str] = field(default_factory=list)
    #: each of them -> its highest revision (`timestamp`) in the previous export, None when
    #: none of its rows there has one that is a whole number
    revisions: dict[str, int | None] = field(default_factory=dict)
    #: absent from the new export but outside its dates or countries: kept
    outside: int = 0
    #: the new export's first and last event day, and its countries
    first_day: date | None = None
    last_day: date | None = None
    countries: tuple[str, ...] = ()

    def said(self, previous: str, new: str) -> str:
        span = f"{self.first_day} to {self.last_day}, {', '.join(self.countries)}"
        kept = f"; {self.outside:,} more absent outside those kept" if self.outside else ""
        events = "1 event of" if len(self.ids) == 1 else f"{len(self.ids):,} events of"
        are = "is" if len(self.ids) == 1 else "are"
        return (
            f"{events} {previous} {are} absent from {new} within its dates and countries "
            f"({span}){kept}"
        )


def country(event_id: str) -> str:
    m = _COUNTRY.match(event_id)
    return m.group().upper() if m else ""


def deletions(previous: str, new: str) -> Deletions:
    """The events of `previous` that `new` deleted (both ACLED exports, paths)."""
    unreadable: list[tuple[int, str]] = []
    new_days: dict[str, date | None] = {
        event_id: day for event_id, day, _ in acled_event_days(new, unreadable)
    }
    if unreadable:
        # a row not read may hold any event: none can be said to be absent
        line, why = unreadable[0]
        raise PartialExport(
            f"{len(unreadable):,} rows of {new} could not be read (line {line}: {why}), so "
            "which events it holds is not known: nothing withdrawn"
        )
    days = [d for d in new_days.values() if d is not None]
    if not days:
        raise PartialExport(f"{new} has no event with a readable event_date: nothing withdrawn")
    first, last = min(days), max(days)
    found = Deletions(
        first_day=first,
        last_day=last,
        countries=tuple(sorted({country(e) for e in new_days})),
    )
    within = kept = 0
    # an event listed twice (ACLED's own duplicate rows) is one event: counted, and
    # withdrawn, once, above its highest revision; where it stands: its first row's date
    events: dict[str, tuple[date | None, int | None]] = {}
    for event_id, day, revision in acled_event_days(previous):
        held = events.get(event_id)
        if held is None:
            events[event_id] = (day, revision)
        elif revision is not None and (held[1] is None or revision > held[1]):
            events[event_id] = (held[0], revision)
    for event_id, (day, revision) in events.items():
        inside = day is not None and first <= day <= last and country(event_id) in found.countries
        present = event_id in new_days
        if inside:
            within += 1
            kept += present
        if present:
            continue
        if inside:
            found.ids.append(event_id)
            found.revisions[event_id] = revision
        else:
            found.outside += 1
    if within and kept < MIN_KEPT_SHARE * within:
        raise PartialExport(
            f"{new} holds {kept:,} of the {within:,} events {previous} has within its dates "
            f"and countries: more likely a partial export than {within - kept:,} deletions; "
            "nothing withdrawn (to withdraw events all the same, feed JSONL withdrawals: "
            "docs/operations.md, 'History: a backfill')"
        )
    return found


def withdrawal_lines(found: Deletions, now: int) -> list[bytes]:
    """A JSONL withdrawal per event of `found`, one above its revision in the previous
    export (at `now`, the feed's clock, for one whose revision there is no number)."""
    return [
        json.dumps(
            {
                "source": ACLED_SOURCE,
                "report_id": event_id,
                "revision": now if (held := found.revisions.get(event_id)) is None else held + 1,
                "withdrawn": True,
            },
            separators=(",", ":"),
        ).encode()
        for event_id in found.ids
    ]
