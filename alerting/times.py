"""Event times as the alert engine keeps them: integer milliseconds since the epoch (exact,
where a float of seconds is not), and back to timezone-aware datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError(f"time {dt.isoformat()} must be timezone-aware")
    return (dt - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)
