"""The time of day a report's text states, for reports whose time is only a day.

Ministries' statements, agency articles and ACLED's `notes` often say when in the day
something happened ("at around 12:30 p.m. local time", "from 22:00 to 22:20", "on 13
September in the evening", "overnight") while the report's `occurred_at` says only the day
(`time_precision: day`; ACLED has no time field). The linker uses it as evidence when such
a report chooses among the incidents of its day (docs/record.md, "Incidents: the linking
rule"); it never changes which reports link.

A time of day is a span of minutes from the local midnight of the report's day, in the
theatre's time zone: `(start, end)`, `start <= end`; a night reaches back into the evening
before (`start` negative). Clock times win over words: the shortest span that holds every
clock time in the text, if it is shorter than `MAX_CLOCK_SPAN` ("from 23:40 to 00:20" is
the night that ends the day, `(-20, 20)`); else the part of day its words name, if they
name exactly one; else nothing.
"""

# ruff: noqa: RUF001 (the Cyrillic and Armenian words below are meant)
from __future__ import annotations

import itertools
import re

TimeOfDay = tuple[int, int]

#: A text whose clock times are further apart than this states no one time of the event
#: (a statement of a day's events: "from 08:00 ... until 19:40").
MAX_CLOCK_SPAN = 6 * 60

#: Parts of the day, as minutes from local midnight. The night is the one that ends the
#: day: "overnight" in a statement of the morning, "at night" in a row dated by the morning
#: after; "late in the evening" is the one that ends it.
MORNING: TimeOfDay = (5 * 60, 12 * 60)
AFTERNOON: TimeOfDay = (12 * 60, 18 * 60)
EVENING: TimeOfDay = (17 * 60, 23 * 60)
LATE_EVENING: TimeOfDay = (21 * 60, 24 * 60)
NIGHT: TimeOfDay = (-3 * 60, 6 * 60)
NOON: TimeOfDay = (11 * 60, 13 * 60)

# "12:30", "at around 9:05 p.m.", "02:30": hours and minutes with a colon (a dot would read
# dates such as 13.09 as times), an optional a.m./p.m.; "at 9 pm", "until 11 a.m." without
# minutes only after a word that introduces a time, since "2 AM soldiers" counts Armenian
# soldiers. "and" and "to" join counts as well as times ("3 AZ and 2 AM soldiers"): after
# them an upper-case AM or PM without dots is a time only where it ends a range, right
# after another time ("from 10 PM to 2 AM", "between 10 AM and 2 PM"); `clock_times`.
_CLOCK = re.compile(
    r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])(?:\s*([ap])\.?\s?m\b\.?)?"
    r"|(?:\b(at|around|about|approximately|by|from|until|till|to|after|before|since"
    r"|between|and)\s+|[-–]\s*)(1[0-2]|0?[1-9])\s*(([ap])\.?\s?m\b\.?)",
    re.IGNORECASE,
)
#: Words after which a bare hour's "AM" / "PM" (upper case, no dots) may be a party's code.
_JOINING_WORDS = frozenset(("and", "to"))
#: A range's start that is an hour alone, before its "and" / "to": "between 9 and 10 AM".
_RANGE_START = re.compile(r"\b(?:between|from)\s+(?:1[0-2]|0?[1-9])\s*$", re.IGNORECASE)
# The words of the theatre's languages for the parts of the day: English; Russian (the
# peacekeepers' and the Russian defence ministry's bulletins: "утром", "вечером", "ночью",
# "в ночь на"); Azerbaijani ("səhər", "axşam", "gecə"); Armenian ("առավոտյան",
# "երեկոյան", "գիշերը"). Stems, so that the inflected forms match, but not where a stem
# begins another word ("утрата", a loss, is no morning).
_PARTS: tuple[tuple[re.Pattern[str], TimeOfDay], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), span)
    for pattern, span in (
        (r"\blate (?:in the |on the |at )?(?:evening|night)\b|\bпоздно вечером\b", LATE_EVENING),
        (r"\b(?:overnight|night|nightfall|midnight|ночь\w*|ночи|полноч\w*|gecə\w*)\b", NIGHT),
        (r"\bգիշեր\w*", NIGHT),
        (r"\b(?:morning|dawn|daybreak|утро|утра|утром|утренн\w*|рассвет\w*|səhər\w*)\b", MORNING),
        (r"\bառավոտ\w*", MORNING),
        (r"\b(?:noon|midday|полдень|полудн\w*|günorta\w*)\b", NOON),
        (r"\b(?:afternoon|после полудня)\b", AFTERNOON),
        (r"\b(?:evening|dusk|вечер\w*|сумерк\w*|axşam\w*)\b", EVENING),
        (r"\bերեկո\w*", EVENING),
    )
)


def _minutes(hour: int, minute: int, half: str | None) -> int:
    if half is not None:
        hour %= 12
        if half.lower() == "p":
            hour += 12
    return hour * 60 + minute


def clock_times(text: str) -> list[int]:
    """Every clock time the text states, as minutes from midnight, in text order."""
    found = []
    last_end = None  # where the last time found ends
    for m in _CLOCK.finditer(text):
        if m.group(1) is not None:
            hour, minute, half = int(m.group(1)), int(m.group(2)), m.group(3)
            if half is not None and not 1 <= hour <= 12:
                continue  # "14:30 p.m." is no time
        else:
            if _maybe_a_party(m) and not _ends_a_range(text, m.start(), last_end):
                continue  # "3 AZ and 2 AM soldiers": Armenian soldiers, not 02:00
            hour, minute, half = int(m.group(5)), 0, m.group(7)
        found.append(_minutes(hour, minute, half))
        last_end = m.end()
    return found


def _ends_a_range(text: str, start: int, last_end: int | None) -> bool:
    """Whether the "and" / "to" at `start` joins the end of a range to its start: the last
    time found (ending at `last_end`) right before it, or a bare hour after "between" or
    "from" ("between 9 and 10 AM")."""
    if last_end is not None and not text[last_end:start].strip():
        return True
    return _RANGE_START.search(text, max(0, start - 16), start) is not None


def _maybe_a_party(m: re.Match[str]) -> bool:
    """Whether a bare hour's match may be a count of a party's people: an upper-case "AM"
    or "PM" without dots ("AM" is Armenia's code) after "and" or "to"."""
    word, half = m.group(4), m.group(6)
    return word is not None and word.lower() in _JOINING_WORDS and half in ("AM", "PM")


def part_of_day(text: str) -> TimeOfDay | None:
    """The one part of the day the text's words name, None for none or several."""
    parts = {span for pattern, span in _PARTS if pattern.search(text)}
    if LATE_EVENING in parts:  # "late in the evening" also says "evening" and "night"
        parts -= {EVENING, NIGHT}
    if AFTERNOON in parts:  # "после полудня" (after noon) also says noon
        parts.discard(NOON)
    return parts.pop() if len(parts) == 1 else None


def stated_time_of_day(text: str | None) -> TimeOfDay | None:
    """The time of day `text` states (module docstring), None when it states none."""
    if not text:
        return None
    times = clock_times(text)
    if times:
        return clock_span(times)
    return part_of_day(text)


def clock_span(times: list[int]) -> TimeOfDay | None:
    """The shortest span of the day that holds every one of `times` (minutes from
    midnight), None when it is longer than `MAX_CLOCK_SPAN`. A span across midnight is the
    night that ends the day, as for the word "night": its start is negative."""
    ordered = sorted(set(times))
    start, end = ordered[0], ordered[-1]
    if end - start <= MAX_CLOCK_SPAN:
        return (start, end)
    # Across midnight: the span starts after the widest gap between consecutive times.
    _, after = max((b - a, i + 1) for i, (a, b) in enumerate(itertools.pairwise(ordered)))
    start, end = ordered[after] - 1440, ordered[after - 1]
    return (start, end) if end - start <= MAX_CLOCK_SPAN else None


def format_time_of_day(span: TimeOfDay) -> str:
    """`HH:MM-HH:MM`, the form classified documents carry; a start before midnight is
    written as the previous day's clock time with a leading `-` ("-21:00-06:00")."""
    start, end = span
    sign = "-" if start < 0 else ""
    s = start % 1440
    return f"{sign}{s // 60:02d}:{s % 60:02d}-{end // 60:02d}:{end % 60:02d}"


_FORMATTED = re.compile(r"(-?)(\d\d):(\d\d)-(\d\d):(\d\d)")


def parse_time_of_day(value: str) -> TimeOfDay:
    """The span `format_time_of_day` wrote. Raises ValueError."""
    m = _FORMATTED.fullmatch(value)
    if m is None or int(m.group(3)) > 59 or int(m.group(5)) > 59:
        raise ValueError(f"not a time of day: {value!r}")
    start = int(m.group(2)) * 60 + int(m.group(3))
    end = int(m.group(4)) * 60 + int(m.group(5))
    return checked_time_of_day([start - 1440 if m.group(1) else start, end])


def checked_time_of_day(value: object) -> TimeOfDay:
    """A span as messages and changelog rows carry it (`[start, end]`, minutes from the
    local midnight), checked: two integers, `-1440 < start <= end <= 1440`. Raises
    ValueError."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and type(value[0]) is int
        and type(value[1]) is int
        and -1440 < value[0] <= value[1] <= 1440
    ):
        return (value[0], value[1])
    raise ValueError(f"not a time of day: {value!r}")
