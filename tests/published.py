"""The tally a subscriber of published incident versions keeps (the zone stage's
`IncidentTally`), in the from-scratch form `IncidentBook.tally()` gives, for comparing."""

from __future__ import annotations

from collections.abc import Iterable

from streams.record.incident import IncidentRecord
from streams.record.tally import Tally
from streams.tallies.state import IncidentTally


def cells(tally: IncidentTally) -> Tally:
    return {(hour, *cell): list(t) for hour, cell, t in tally.cell_items()}


def feed(tally: IncidentTally, records: Iterable[IncidentRecord]) -> Tally:
    """Apply published versions; the change of the cells they made."""
    before = cells(tally)
    for record in records:
        tally.apply(record)
    after = cells(tally)
    delta: Tally = {}
    for cell in before.keys() | after.keys():
        old, new = before.get(cell, [0, 0, 0, 0]), after.get(cell, [0, 0, 0, 0])
        d = [n - o for n, o in zip(new, old, strict=True)]
        if any(d):
            delta[cell] = d
    return delta
