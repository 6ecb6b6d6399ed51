"""A counted report: the few fields tallies need, compact enough to keep for every report
in retention and to write to the changelog in batches."""

from __future__ import annotations

from typing import NamedTuple


class Counted(NamedTuple):
    key: str  # report identity: source \x1f report_id
    occurred: float  # event time, unix seconds
    zone: str
    party: str
    category: str
    killed: int
    wounded: int


#: Cell of a bucket's totals: (zone, party, category)
Cell = tuple[str, str, str]

FIELD_INDEX = {"zone": 2, "party": 3, "category": 4}
