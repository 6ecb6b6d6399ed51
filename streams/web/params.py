"""Query parameters (pure; each problem raises QueryError, answered 400): what every
endpoint checks the same way (unknown and repeated names, the hint for a time whose `+`
arrived as a space, range bounds), and the tallies' `as_of` and `compare` and the peers'
`scope` and `partitions`."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime

from schemas.report import offset_in_use, offset_not_in_use
from streams.tallies.windows import QueryError

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Epoch seconds as peers pass them (`parse_as_of`, `fanout.exact_seconds`): negative
#: before 1970.
_EPOCH_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
#: Earliest and latest `as_of`: what a datetime can hold (RFC 3339 years 0001-9999), less the
#: last second's fractions, which a float rounds up to the year 10000.
AS_OF_MIN = datetime(1, 1, 1, tzinfo=UTC).timestamp()
AS_OF_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_PARTITION = re.compile(r"[0-9]{1,4}")


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
    _check_offset(name, value, moment)
    return moment


def _check_offset(name: str, value: str, moment: datetime) -> None:
    """Refuse a UTC offset no place uses, as a report's time is refused: most likely a typo
    that would move the bound by hours."""
    offset = moment.utcoffset()
    if not offset_in_use(0 if offset is None else int(offset.total_seconds()) // 60):
        raise QueryError(f"{name} {value!r}: {offset_not_in_use(value[-6:])}")


def parse_as_of(value: str | None) -> float:
    """`as_of` as epoch seconds: an RFC 3339 time with an offset, or epoch seconds (what
    peers pass). Anything a datetime cannot hold (nan, inf, 1e20) is refused."""
    if value is None or value == "":
        return datetime.now(UTC).timestamp()
    # epoch seconds as ASCII digits only: `float` also took "2026" (1970, 33 minutes in),
    # "1_764_417_600", padded or full-width digits, and answered 200 for the wrong time
    seconds = float(value) if _EPOCH_SECONDS.fullmatch(value) else _rfc3339_seconds(value)
    if not (math.isfinite(seconds) and AS_OF_MIN <= seconds <= AS_OF_MAX):
        raise QueryError(
            f"as_of {value!r} is out of range; use an RFC 3339 time from"
            " 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
        )
    return seconds


def _rfc3339_seconds(value: str) -> float:
    try:
        # RFC 3339 allows a lower-case z, which `fromisoformat` does not read
        utc = value[-1:] in ("Z", "z")
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if utc else value)
    except ValueError:
        raise not_a_time(
            "as_of", value, "an RFC 3339 time (e.g. 2021-05-01T04:00:00+04:00) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        if len(value) == 10:  # a date alone: which instant of it, and whose day?
            raise QueryError(
                f"as_of {value!r} is a date; as_of is an instant, the end of the window: "
                f"e.g. {value}T00:00:00+04:00 (the window ends as that day begins in Baku "
                f"and Yerevan) or {value}T00:00:00Z"
            )
        raise QueryError(f"as_of {value!r} needs a UTC offset")
    if not is_rfc3339(value):
        raise not_a_time(
            "as_of", value, "an RFC 3339 time (e.g. 2021-05-01T04:00:00+04:00) or epoch seconds"
        )
    _check_offset("as_of", value, parsed)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise QueryError(f"as_of {value!r} is out of range") from None


def parse_partitions(value: str | None, count: int) -> set[int]:
    """The peer parameter `partitions`: a comma-separated list of partition numbers."""
    parts = (value or "").split(",")
    if not all(_PARTITION.fullmatch(p) for p in parts):
        raise QueryError(f"partitions {value!r} is not a comma-separated list of numbers")
    numbers = {int(p) for p in parts}
    if max(numbers) >= count:
        raise QueryError(f"partitions {value!r}: this cluster has partitions 0 to {count - 1}")
    return numbers


def parse_compare(value: str | None) -> bool:
    """Whether the tallies also carry the window just before (`compare=previous`)."""
    if value is None or value == "":
        return False
    if value == "previous":
        return True
    raise QueryError(f"unknown compare {value[:40]!r}; use compare=previous, or leave it out")


def parse_scope(value: str | None) -> bool:
    """Whether a peer asks for this worker's own partitions only (`scope=local`)."""
    if value is None or value == "cluster":
        return False
    if value == "local":
        return True
    raise QueryError(f"unknown scope {value!r}; use local or cluster")
