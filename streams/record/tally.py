"""Tally cells of incidents, and the deltas that keep them current.

A cell is (hour of the incident's `occurred_at`, zone, attribution, category,
verification) and holds [incidents, reports, killed, wounded]. An open incident adds 1, its
report count and its casualty figures to its own cell, so `reports` are counted under the
attribution and verification of the incident they belong to. A change of an incident is
its old contribution taken back and its new one added: a revised or withdrawn report moves
or empties the cell it was counted in, and the sum of all deltas ever emitted is the tally
of the current incidents.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.record.incident import IncidentFields

HOUR = 3600

#: (hour bucket, zone, attribution, category, verification)
Cell = tuple[int, str, str, str, str]
#: cell -> [incidents, reports, killed, wounded]
Tally = dict[Cell, list[int]]


def cell_of(f: IncidentFields) -> Cell:
    return (
        int(f.occurred // HOUR),
        f.zone,
        f.attribution,
        f.category.value,
        f.verification.value,
    )


def add_incident(tally: Tally, f: IncidentFields, sign: int = 1) -> None:
    """Add (sign 1) or take back (sign -1) an incident's contribution."""
    cell = cell_of(f)
    t = tally.get(cell)
    if t is None:
        t = tally[cell] = [0, 0, 0, 0]
    t[0] += sign
    t[1] += sign * len(f.reports)
    t[2] += sign * f.killed
    t[3] += sign * f.wounded
    if not any(t):
        del tally[cell]


def tally_of(incidents: Iterable[IncidentFields]) -> Tally:
    """The tally of a set of open incidents, from scratch."""
    tally: Tally = {}
    for f in incidents:
        add_incident(tally, f)
    return tally
