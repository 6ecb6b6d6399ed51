"""What every endpoint checks of its query parameters the same way (pure; each problem
raises QueryError, answered 400): unknown and repeated names, and the hint for a time whose
`+` arrived as a space."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from streams.tallies.windows import QueryError

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
