"""Event times as the alert engine keeps them: integer milliseconds since the epoch (exact,
where a float of seconds is not), and back to timezone-aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_DAY_MS = 86_400_000
#: How long the period of each time precision (SPEC.md `time_precision`) is, in ms: the
#: event happened somewhere in it. A month is taken at its longest, so that a window the
#: rules count in is never shorter than the month it would claim to place an event in.
PRECISION_MS = {"exact": 0, "day": _DAY_MS, "week": 7 * _DAY_MS, "month": 31 * _DAY_MS}
#: The longest of those periods: a window at least this long counts every incident.
LONGEST_PRECISION_MS = max(PRECISION_MS.values())


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"time {dt.isoformat()} must be timezone-aware")
    return (dt - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)
