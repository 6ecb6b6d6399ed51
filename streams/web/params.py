"""What every endpoint checks of its query parameters the same way (pure; each problem
raises QueryError, answered 400): unknown and repeated names, and the hint for a time whose
`+` arrived as a space."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime

from streams.tallies.windows import QueryError

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def is_rfc3339(value: str) -> bool:
    """An RFC 3339 date-time with its offset (`datetime.fromisoformat` takes more: a dot
    with no digit after it, basic formats without dashes)."""
    return _RFC3339.fullmatch(value) is not None


#: A time of day followed by a space and what reads as a UTC offset without its sign: the
#: `+` of `...T02:33:27+03:00` sent unencoded, which a query string decodes to a space.
_SPACE_FOR_PLUS = re.compile(
    r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)? ([0-9]{2}(?::?[0-9]{2})?)"
)


def check_names(
    pairs: Iterable[tuple[str, str]],
    allowed: Collection[str],
    *,
    repeatable: Collection[str] = (),
    internal: Collection[str] = (),
) -> dict[str, str]:
    """The parameters by name (the first value of a repeatable one), once each is known to
    be in `allowed` or `internal` (what peers add: accepted, not offered in the message)
    and, unless `repeatable`, given once: a second value would otherwise be silently
    ignored."""
    seen: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, value in pairs:
        if name not in allowed and name not in internal:
            use = f"use {', '.join(allowed)}" if allowed else "this endpoint takes none"
            raise QueryError(f"unknown parameter {name[:80]!r}; {use}")
        counts[name] = counts.get(name, 0) + 1
        seen.setdefault(name, value)
    for name, count in counts.items():
        if count > 1 and name not in repeatable:
            raise QueryError(f"parameter {name!r} is given {count} times; give it once")
    return seen


def not_a_time(name: str, value: str, expected: str) -> QueryError:
    """The 400 for a time parameter that cannot be read: `{name} '...' is not {expected}`,
    and when a space stands where an offset's sign would be, that it was likely a `+`."""
    message = f"{name} {value[:80]!r} is not {expected}"
    plus = _SPACE_FOR_PLUS.search(value)
    if plus is not None and plus.end() == len(value):
        message += (
            ": a '+' in a URL must be written %2B "
            f"(the space before {plus.group(1)} was probably a '+')"
        )
    return QueryError(message)


def parse_bound(name: str, value: str) -> datetime:
    """A range bound (`from`, `to`): an RFC 3339 time with an offset, or a date (its UTC
    midnight); QueryError otherwise."""
    if _DATE.fullmatch(value):
        try:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        except ValueError:
            raise QueryError(f"{name} {value!r} is not a date") from None
    if not _RFC3339.fullmatch(value):
        raise not_a_time(
            name,
            value,
            "an RFC 3339 time with an offset or a date (e.g. 2021-05-01, "
            "2021-05-01T00:00:00Z or 2021-05-01T00:00:00+04:00)",
        )
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    text = text[:10] + "T" + text[11:]
    text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)  # fromisoformat reads 6 digits at most
    try:
        moment = datetime.fromisoformat(text)
        moment.astimezone(UTC)  # 0001-01-01T00:00+01:00 is before year 1 in UTC
    except (ValueError, OverflowError):
        years = "in the years 0001 to 9999"
        raise QueryError(f"{name} {value!r} is not a valid time {years}") from None
    return moment
