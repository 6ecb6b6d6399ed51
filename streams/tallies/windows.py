"""The rolling windows and groupings the tallies answer for."""

from __future__ import annotations

import math
from typing import Final

WINDOWS: Final[dict[str, int]] = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
#: Since the start of the ceasefire (a setting), not a rolling window: kept out of WINDOWS,
#: which the window gauge iterates.
ALL: Final = "all"
#: Every window the tallies answer for.
TALLY_WINDOWS: Final[tuple[str, ...]] = (*WINDOWS, ALL)
#: Bucket lengths of a series (`GET /api/v1/series`).
INTERVALS: Final[dict[str, int]] = {"1d": 86_400, "1h": 3600}

#: Allowed `by` groupings, and the incident fields each one keeps (`party` is the
#: incident's attribution, which adds `contested` to the party codes).
GROUPINGS: Final[dict[str, tuple[str, ...]]] = {
    "zone": ("zone",),
    "party": ("party",),
    "category": ("category",),
    "verification": ("verification",),
    "zone,party": ("zone", "party"),
}


class QueryError(ValueError):
    """A tally query asked for a window or grouping that does not exist."""


def window_seconds(window: str) -> int:
    try:
        return WINDOWS[window]
    except KeyError:
        raise QueryError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}") from None


def check_window(window: str) -> str:
    """`window` if the tallies answer for it (a rolling window or `all`)."""
    if window not in TALLY_WINDOWS:
        raise QueryError(f"unknown window {window!r}; use one of {', '.join(TALLY_WINDOWS)}")
    return window


def interval_seconds(interval: str) -> int:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise QueryError(
            f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}"
        ) from None


def grouping(by: str) -> tuple[str, ...]:
    normalized = ",".join(part.strip() for part in by.split(","))
    try:
        return GROUPINGS[normalized]
    except KeyError:
        raise QueryError(f"unknown grouping {by!r}; use one of {', '.join(GROUPINGS)}") from None


def to_micros(seconds: float) -> int:
    """Event time in whole microseconds, as an incident's document writes `occurred_at`
    (CPython's datetime.fromtimestamp rounds the fraction half to even, as round does)."""
    fraction, whole = math.modf(seconds)
    return int(whole) * 1_000_000 + round(fraction * 1e6)


def seconds_before(as_of: float, seconds: int) -> float:
    """`as_of` less `seconds`, as the float an incident at that microsecond holds: float
    subtraction may land a fraction of a microsecond off it (before 2004-01-10, where a
    float's step grows past the whole microseconds), and lose an incident at a window's
    inclusive start."""
    return (to_micros(as_of) - seconds * 1_000_000) / 1_000_000
