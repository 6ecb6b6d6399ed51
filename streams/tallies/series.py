"""History since the ceasefire: tallies over any range, the previous window, and series.

Pure functions over the `IncidentTally` structures of `streams.tallies.state`, read only
through their meaning there: `hours` (hour of event time -> cell -> totals), `members`
(hour -> incident ids) and `open` (id -> fields). A range is summed from the cells of the
hours it covers whole, and the incidents of a cut hour are scanned one by one, so answers
are exact to the second (to the microsecond for series) like the rolling windows.

A range of years holds tens of thousands of hours (the ceasefire began 2020-11-09T21:00Z:
about 52,000 by 2026), most of them empty: each partition iterates the hours it holds or
the hours of the range, whichever are fewer, never every hour of a long range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter

from streams.tallies.state import (
    BUCKET_SECONDS,
    FIELD_INDEX,
    Cell,
    IncidentTally,
    Row,
    Totals,
    query,
)
from streams.tallies.windows import (
    ALL,
    QueryError,
    check_window,
    grouping,
    seconds_before,
    to_micros,
    window_seconds,
)

FIGURES = ("incidents", "reports", "killed", "wounded")
#: What `compare=previous` adds to a row (SPEC.md names them).
PREVIOUS = tuple(f"previous_{name}" for name in FIGURES)

_HOUR_MICROS = BUCKET_SECONDS * 1_000_000

#: A group of a row: what `itemgetter` takes of a cell (a str for one key).
Group = str | tuple[str, ...]


def _hours_in(part: IncidentTally, first: int, last: int) -> Iterator[int]:
    """The hours in [first, last] that `part` holds, from the shorter of the two lists."""
    if last < first:
        return iter(())
    if last - first < part.hour_count():
        return (h for h in range(first, last + 1) if part.has_hour(h))
    return (h for h in part.held_hours() if first <= h <= last)


def _project(keys: tuple[str, ...]) -> Callable[[Cell], Group]:
    """A cell's group: its fields named by `keys` (itemgetter: a str for one key)."""
    return itemgetter(*(FIELD_INDEX[k] for k in keys))


def _add(acc: dict[Group, Totals], key: Group, totals: Sequence[int]) -> None:
    t = acc.get(key)
    if t is None:
        t = acc[key] = [0, 0, 0, 0]
    for i in range(4):
        t[i] += totals[i]


def _sum_cells(
    acc: dict[Group, Totals],
    cells: Iterable[tuple[Cell, Sequence[int]]],
    project: Callable[[Cell], Group],
) -> None:
    """Add an hour's cells (`IncidentTally.cells_of`) to their groups in `acc`: the hot
    loop of a long range, once per cell held, so unrolled."""
    held = acc.get
    for cell, t in cells:
        group = project(cell)
        a = held(group)
        if a is None:
            acc[group] = list(t)  # a copy: never the tally's own list
        else:
            a[0] += t[0]
            a[1] += t[1]
            a[2] += t[2]
            a[3] += t[3]


def _rows(keys: tuple[str, ...], acc: dict[Group, Totals]) -> list[Row]:
    """Groups as rows, sorted, empty ones left out (as the tallies)."""
    out: list[Row] = []
    for group, t in sorted(acc.items()):
        if any(t):
            named = (group,) if isinstance(group, str) else group
            out.append(
                {**dict(zip(keys, named, strict=True)), **dict(zip(FIGURES, t, strict=True))}
            )
    return out


# -- tallies over a range ---------------------------------------------------------------------
def rows_between(
    partitions: Iterable[IncidentTally], *, start: float, end: float, by: str
) -> list[Row]:
    """Rows of {<by keys>, incidents, reports, killed, wounded} for the open incidents with
    occurred in [start, end), summed over `partitions` (what `state.query` answers for a
    rolling window, over any range)."""
    keys = grouping(by)
    project = _project(keys)
    acc: dict[Group, Totals] = {}
    first = int(start // BUCKET_SECONDS)
    last = int(end // BUCKET_SECONDS)
    for part in partitions:
        for hour in _hours_in(part, first, last):
            if hour * BUCKET_SECONDS >= start and (hour + 1) * BUCKET_SECONDS <= end:
                _sum_cells(acc, part.cells_of(hour), project)
                continue
            for occurred, cell, t in part.edge(hour):
                if start <= occurred < end:
                    _add(acc, project(cell), t)
    return _rows(keys, acc)


def window_start(window: str, as_of: float, *, since: float) -> float:
    """The (inclusive) start of `window` ending at `as_of`: `all` starts at `since` (the
    ceasefire)."""
    if check_window(window) == ALL:
        return since
    return seconds_before(as_of, window_seconds(window))


def tally(
    partitions: Iterable[IncidentTally], *, window: str, by: str, as_of: float, since: float
) -> list[Row]:
    """The tallies of `window` ending at `as_of`: a rolling window, or `all`, from `since`
    (inclusive) to `as_of` (an `as_of` before `since` is an empty range)."""
    if check_window(window) == ALL:
        start = window_start(window, as_of, since=since)
        return rows_between(partitions, start=start, end=as_of, by=by)
    return query(partitions, window=window, by=by, as_of=as_of)


def previous_as_of(window: str, as_of: float) -> float:
    """Where the window just before `window` ending at `as_of` ends (where it starts)."""
    if check_window(window) == ALL:
        raise QueryError(
            "compare=previous needs a rolling window (1h, 24h, 7d or 30d): window=all starts "
            "with the ceasefire, and no period of the ceasefire comes before it"
        )
    return seconds_before(as_of, window_seconds(window))


def compare_rows(
    current: Iterable[Row], previous: Iterable[Row], keys: tuple[str, ...]
) -> list[Row]:
    """Rows of both windows side by side: {<keys>, incidents..., previous_incidents...}; a
    group present in either window is listed (a zone gone quiet shows its drop)."""
    acc: dict[tuple[str, ...], list[int]] = {}
    for rows, offset in ((current, 0), (previous, 4)):
        for r in rows:
            t = acc.setdefault(tuple(str(r[k]) for k in keys), [0] * 8)
            for i, name in enumerate(FIGURES):
                t[offset + i] += int(r[name])
    return [
        {
            **dict(zip(keys, group, strict=True)),
            **dict(zip(FIGURES, t[:4], strict=True)),
            **dict(zip(PREVIOUS, t[4:], strict=True)),
        }
        for group, t in sorted(acc.items())
        if any(t)
    ]


# -- series -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Buckets:
    """`count` consecutive buckets of `width` microseconds from `start` (microseconds since
    the epoch); each holds the incidents with start <= occurred < start + width."""

    start: int
    width: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.width * self.count


def series(partitions: Iterable[IncidentTally], buckets: Buckets, *, by: str) -> list[list[Row]]:
    """The rows of each bucket (as the tallies: {<by keys>, incidents, reports, killed,
    wounded}, empty groups left out), summed over `partitions`."""
    keys = grouping(by)
    if buckets.count <= 0 or buckets.width <= 0:
        return [[] for _ in range(max(buckets.count, 0))]
    start, width, end = buckets.start, buckets.width, buckets.end
    project = _project(keys)
    acc: dict[int, dict[Group, Totals]] = {}
    first = start // _HOUR_MICROS
    last = (end - 1) // _HOUR_MICROS
    # Buckets of whole hours from an hour's start (the usual case) cut no hour.
    aligned = start % _HOUR_MICROS == 0 and width % _HOUR_MICROS == 0
    per_bucket = width // _HOUR_MICROS
    for part in partitions:
        for hour in _hours_in(part, first, last):
            if aligned:
                k = (hour - first) // per_bucket
                _sum_cells(acc.setdefault(k, {}), part.cells_of(hour), project)
                continue
            h0 = hour * _HOUR_MICROS
            k = (h0 - start) // width
            if h0 >= start and h0 + _HOUR_MICROS <= min(end, start + (k + 1) * width):
                _sum_cells(acc.setdefault(k, {}), part.cells_of(hour), project)
                continue
            for occurred, cell, t in part.edge(hour):
                at = to_micros(occurred)
                if start <= at < end:
                    cells = acc.setdefault((at - start) // width, {})
                    _add(cells, project(cell), t)
    return [_rows(keys, acc[k]) if k in acc else [] for k in range(buckets.count)]


def merge_series(
    parts: Iterable[Sequence[Sequence[Row]]], count: int, keys: tuple[str, ...]
) -> list[list[Row]]:
    """Sum the series several workers answered for the same buckets. ValueError when one
    has another number of buckets; LookupError, TypeError or ValueError when a row is not
    shaped as one."""
    by_bucket: list[dict[tuple[str, ...], Totals]] = [{} for _ in range(count)]
    for part in parts:
        if len(part) != count:
            raise ValueError(f"{len(part)} buckets answered for {count}")
        for acc, rows in zip(by_bucket, part, strict=True):
            for r in rows:
                t = acc.setdefault(tuple(str(r[k]) for k in keys), [0, 0, 0, 0])
                for i, name in enumerate(FIGURES):
                    value = r[name]
                    if type(value) is not int:
                        raise TypeError(f"{name} is not a whole number: {value!r}")
                    t[i] += value
    return [
        [
            {**dict(zip(keys, group, strict=True)), **dict(zip(FIGURES, t, strict=True))}
            for group, t in sorted(acc.items())
            if any(t)
        ]
        for acc in by_bucket
    ]
