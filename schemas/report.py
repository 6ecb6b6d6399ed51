"""The incident report as reporting systems send it (SPEC.md, schema version 1).

Strict by design: unknown fields, naive times, out-of-range values and oversize
strings are errors, never silently fixed. Business checks that need the clock
(`occurred_at` not in the future) read `now` from the validation context so the
same bytes always validate the same way in tests and backtests.

An input has one of two shapes (`report_json_schema` describes both):

* `Report`: a report, with every field SPEC.md requires. `withdrawn` is absent or false.
* `WithdrawnReport`: the source retracts (`source`, `report_id`) as of `revision`. It needs
  only `report_id`, `source`, `revision` (at least 1: higher than the revision it retracts,
  and every report has a revision of at least 0) and `withdrawn: true`; any other field of
  a report may ride along (a source may re-send the report it retracts), and is then
  validated as in a report, but carries no meaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, core_schema

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision

#: How far in the future `occurred_at` may lie, for clock skew between reporters.
MAX_CLOCK_SKEW = timedelta(minutes=5)

#: The largest revision: a signed 64-bit integer, so that any timestamp a source uses as its
#: revision (ACLED's `timestamp`, in seconds; milliseconds or nanoseconds too) fits.
MAX_REVISION = 2**63 - 1

#: The largest `casualties.killed` / `.wounded` of one report. Far above any real report, and
#: low enough that sums over millions of reports stay inside 64 bits (orjson, Kafka payloads)
#: and JavaScript's 2^53 (the web page); unbounded, 2^64 passed here and crashed ingest.
MAX_CASUALTIES = 1_000_000

SCHEMA_ID = "https://ceasefire-monitor/schemas/report-v1.json"

# NaN and Infinity parse as JSON numbers (pydantic, like Python, accepts them) but are
# no coordinate: refused as `finite_number`.
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

# Control characters (C0, DEL, C1) and Unicode White_Space, spelled out rather than as `\s`,
# which differs between the regex engines that read the pattern (pydantic's Rust one,
# Python's for jsonschema, ECMA 262 for JavaScript clients).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
# White_Space beyond ASCII (the rest of it is U+0020 and controls): in an id, none anywhere,
# as "OP7 2026/118" and "OP7\u00a02026/118" look alike but would be two reports.
_WIDE_SPACE = r"\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE = r"\x20" + _WIDE_SPACE
# Invisible characters: every format character (Unicode Cf: zero widths, joiners, direction
# marks and overrides, the soft hyphen, a BOM inside the text, tag characters, and the few
# prepended number signs, which have no place in an id either), and the other characters
# that show nothing: variation selectors, the combining grapheme joiner, Hangul fillers, the
# Braille blank, Mongolian and Khmer ones that Unicode makes default-ignorable. As
# (first, last) code points; a test checks that every Cf of Python's Unicode database is one.
INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x0600, 0x0605),  # Arabic number signs (prepended, Cf)
    (0x061C, 0x061C),  # Arabic letter mark
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero widths, joiners, direction marks
    (0x202A, 0x202E),  # direction embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, isolates, deprecated controls
    (0x2800, 0x2800),  # Braille pattern blank
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # byte order mark / zero width no-break space
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFFB),  # interlinear annotation (and the unassigned before it)
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),  # Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol format controls
    (0xE0001, 0xE0001),  # language tag
    (0xE0020, 0xE007F),  # tag characters
    (0xE0100, 0xE01EF),  # variation selectors supplement
)


def _class_items(ranges: tuple[tuple[int, int], ...]) -> str:
    r"""`ranges` as the inside of a regex character class: `\uXXXX` escapes, which the three
    engines read alike, for the Basic Multilingual Plane; the characters themselves above it
    (pydantic's Rust regex and Python's `re` read them; no escape of theirs is ECMA 262's)."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


_INVISIBLE_BMP = tuple((a, b) for a, b in INVISIBLE_RANGES if b <= 0xFFFF)
_INVISIBLE_ASTRAL = tuple((a, b) for a, b in INVISIBLE_RANGES if a > 0xFFFF)
_INVISIBLE = _class_items(INVISIBLE_RANGES)
#: An identity part: no control character (the key's \x1f separator among them: "a\x1fb" + "c"
#: and "a" + "b\x1fc" would be one key; tabs and newlines too), no invisible character
#: ("op-1" and "op\u200b-1" look alike but would be two reports, counted twice), no
#: whitespace but the space U+0020 (a no-break or an ideographic space looks like it), and
#: none at either end ("op-1 " from a spreadsheet cell would be a second "op-1"). (And in
#: NFC and NFKC, which no regex says: `_check_normalized`.)
IDENTITY_PATTERN = (
    f"^[^{_CONTROL}{_INVISIBLE}{_SPACE}]"
    f"(?:[^{_CONTROL}{_INVISIBLE}{_WIDE_SPACE}]*[^{_CONTROL}{_INVISIBLE}{_SPACE}])?$"
)
#: A party name (`perpetrator`, `target`, `claimant`) or `location.place`: no control
#: character and no invisible one, as in an identity. These names reach incidents
#: (`perpetrator_raw`), CSV exports, the live page and terminals as sent: a NUL or an ANSI
#: escape (ESC) would reach them too, and a right-to-left override shows "\u202enajiabrezA"
#: as "Azerbaijan". Checked by pydantic's Rust regex: no Python call per field.
TEXT_PATTERN = f"^[^{_CONTROL}{_INVISIBLE}]*$"
# In a description (free text, which real text writes with direction marks U+200E/U+200F,
# joiners, soft hyphens: kept), only the controls but tab, line feed and carriage return, and
# the direction embeddings, overrides and isolates, which reorder the text shown after them.
_TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_BIDI_CONTROL = r"\u202a-\u202e\u2066-\u2069"
DESCRIPTION_PATTERN = f"^[^{_TEXT_CONTROL}{_BIDI_CONTROL}]*$"
_CONTROL_CHAR = re.compile(f"[{_CONTROL}]")
_WIDE_SPACE_CHAR = re.compile(f"[{_WIDE_SPACE}]")
_DESCRIPTION_CONTROL_CHAR = re.compile(f"[{_TEXT_CONTROL}]")
_BIDI_CONTROL_CHAR = re.compile(f"[{_BIDI_CONTROL}]")
#: One invisible character (`INVISIBLE_RANGES`).
INVISIBLE_CHAR = re.compile(f"[{_INVISIBLE}]")


def _exported(pattern: str) -> str:
    """`pattern` for the JSON Schema. Its `$` is the end of the text in ECMA 262 (which JSON
    Schema specifies) and in pydantic's Rust regex, but in Python's `re` (the `jsonschema`
    package) also the place before a final newline: the lookahead, which Rust lacks, rules
    that out, so that every engine reads the exported pattern as the validator does."""
    return pattern.removesuffix("$") + r"(?!\n)$"


def _no_astral_invisible() -> str:
    """A lookahead refusing the invisible characters above U+FFFF. ECMA 262 without its `u`
    flag reads such a character as two UTF-16 code units, so that it is a syntax error in a
    class range (`[X-Y]`) there: each is written out as an alternative, which every engine
    (ECMA 262 with or without `u`, Python's `re`) reads as that one character."""
    astral = "|".join(chr(c) for a, b in _INVISIBLE_ASTRAL for c in range(a, b + 1))
    return rf"(?![\s\S]*(?:{astral}))"


def _exported_identity_pattern() -> str:
    """IDENTITY_PATTERN for the JSON Schema: the invisible characters above U+FFFF refused by
    a lookahead (`_no_astral_invisible`)."""
    bmp = _class_items(_INVISIBLE_BMP)
    return _exported(
        f"^{_no_astral_invisible()}[^{_CONTROL}{bmp}{_SPACE}]"
        f"(?:[^{_CONTROL}{bmp}{_WIDE_SPACE}]*[^{_CONTROL}{bmp}{_SPACE}])?$"
    )


def _exported_text_pattern() -> str:
    """TEXT_PATTERN for the JSON Schema, as `_exported_identity_pattern`."""
    bmp = _class_items(_INVISIBLE_BMP)
    return _exported(f"^{_no_astral_invisible()}[^{_CONTROL}{bmp}]*$")


_IDENTITY_SCHEMA = {
    "pattern": _exported_identity_pattern(),
    "description": (
        "no control character, no invisible one (Unicode Cf, variation selectors, fillers), "
        "no whitespace but the space U+0020 and none at either end, and in Unicode "
        "normalization forms C (NFC) and KC (NFKC: no full-width form, ligature or other "
        "compatibility character; Armenian's letter U+0587 aside), which no pattern can "
        "say: the validator refuses a "
        "spelling that is not NFC (`not_nfc`) or not NFKC (`not_nfkc`), both `invalid_value`"
    ),
}
_TEXT_SCHEMA = {
    "pattern": _exported_text_pattern(),
    "description": (
        "no control character and no invisible one (Unicode Cf such as direction overrides "
        "and zero widths, variation selectors, fillers)"
    ),
}
_DESCRIPTION_SCHEMA = {
    "pattern": _exported(DESCRIPTION_PATTERN),
    "description": (
        "free text: no control character but tab, line feed and carriage return, and no "
        "direction embedding, override or isolate (U+202A-U+202E, U+2066-U+2069); the "
        "direction marks U+200E and U+200F are allowed"
    ),
}


#: The names of the control characters, which Unicode gives as aliases only
#: (`unicodedata.name` has none): C0, then DEL, then C1.
_C0_NAMES = (
    "NULL", "START OF HEADING", "START OF TEXT", "END OF TEXT", "END OF TRANSMISSION",
    "ENQUIRY", "ACKNOWLEDGE", "ALERT", "BACKSPACE", "CHARACTER TABULATION", "LINE FEED",
    "LINE TABULATION", "FORM FEED", "CARRIAGE RETURN", "SHIFT OUT", "SHIFT IN",
    "DATA LINK ESCAPE", "DEVICE CONTROL ONE", "DEVICE CONTROL TWO", "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR", "NEGATIVE ACKNOWLEDGE", "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK", "CANCEL", "END OF MEDIUM", "SUBSTITUTE", "ESCAPE",
    "INFORMATION SEPARATOR FOUR", "INFORMATION SEPARATOR THREE",
    "INFORMATION SEPARATOR TWO", "INFORMATION SEPARATOR ONE",
)  # fmt: skip
_C1_NAMES = (
    "PADDING CHARACTER", "HIGH OCTET PRESET", "BREAK PERMITTED HERE", "NO BREAK HERE",
    "INDEX", "NEXT LINE", "START OF SELECTED AREA", "END OF SELECTED AREA",
    "CHARACTER TABULATION SET", "CHARACTER TABULATION WITH JUSTIFICATION",
    "LINE TABULATION SET", "PARTIAL LINE FORWARD", "PARTIAL LINE BACKWARD",
    "REVERSE LINE FEED", "SINGLE SHIFT TWO", "SINGLE SHIFT THREE", "DEVICE CONTROL STRING",
    "PRIVATE USE ONE", "PRIVATE USE TWO", "SET TRANSMIT STATE", "CANCEL CHARACTER",
    "MESSAGE WAITING", "START OF GUARDED AREA", "END OF GUARDED AREA", "START OF STRING",
    "SINGLE GRAPHIC CHARACTER INTRODUCER", "SINGLE CHARACTER INTRODUCER",
    "CONTROL SEQUENCE INTRODUCER", "STRING TERMINATOR", "OPERATING SYSTEM COMMAND",
    "PRIVACY MESSAGE", "APPLICATION PROGRAM COMMAND",
)  # fmt: skip
CONTROL_NAMES: dict[str, str] = {
    **{chr(i): name for i, name in enumerate(_C0_NAMES)},
    "\x7f": "DELETE",
    **{chr(0x80 + i): name for i, name in enumerate(_C1_NAMES)},
}


def char_name(char: str) -> str:
    """`char` for a message: `U+XXXX (ITS NAME)`."""
    name = unicodedata.name(char, "") or CONTROL_NAMES.get(char, "unnamed")
    return f"U+{ord(char):04X} ({name})"


def explain_not_nfc(value: str) -> str:
    """Why `value`, which is not in NFC, is refused: the first character from which on it is
    not, and its NFC spelling."""
    at = next(
        (i for i in range(len(value)) if not unicodedata.is_normalized("NFC", value[: i + 1])),
        0,
    )
    char = value[at]
    nfc = unicodedata.normalize("NFC", value)
    return (
        f"is not in Unicode normalization form C (NFC) from U+{ord(char):04X} "
        f"({unicodedata.name(char, 'unnamed')}) at position {at}: its NFC spelling is "
        f"{nfc[:64]!r}; send that one (one id spelled two ways would count as two reports)"
    )


#: Armenian's ech-yiwn `և` (U+0587) is a letter of the language's spelling (`Երևան`), not a
#: typographic form, though Unicode gives it a compatibility decomposition (`եւ`): an
#: identity may hold it. Checked as if it were a letter without one.
_SPELLING_LETTERS = str.maketrans({"\u0587": "\u0565"})


def nfkc_stable(value: str) -> bool:
    """Whether `value` is in NFKC, the letters of `_SPELLING_LETTERS` aside."""
    return unicodedata.is_normalized("NFKC", value.translate(_SPELLING_LETTERS))


def explain_not_nfkc(value: str) -> str:
    """Why `value`, which is in NFC but not in NFKC, is refused: the first character from
    which on it is not (a full-width letter, a ligature, another compatibility form), and
    its NFKC spelling."""
    at = next((i for i in range(len(value)) if not nfkc_stable(value[: i + 1])), 0)
    nfkc = unicodedata.normalize("NFKC", value)
    return (
        f"is not in Unicode normalization form KC (NFKC) from the compatibility character "
        f"{char_name(value[at])} at position {at}: its NFKC spelling is {nfkc[:64]!r}; send "
        "that one (an id that looks like another would count as another report)"
    )


def _check_normalized(source: str, report_id: str) -> None:
    """`not_nfc` or `not_nfkc` (`invalid_value`), at the field, unless both identity parts
    are in NFC and in NFKC; they are never rewritten. NFKC is the stricter (a text in NFKC is
    in NFC), so a text not in NFC is named `not_nfc` alone. Checked with the whole report
    (`Report._checks`), which costs a Python call anyway, rather than per field: a report's
    hot path pays two `isascii` for it (ASCII is in every normalization form)."""
    if source.isascii() and report_id.isascii():
        return
    errors: list[InitErrorDetails] = []
    for field, value in (("source", source), ("report_id", report_id)):
        if value.isascii() or nfkc_stable(value):
            continue
        if not unicodedata.is_normalized("NFC", value):
            kind, message = "not_nfc", explain_not_nfc(value)
        else:
            kind, message = "not_nfkc", explain_not_nfkc(value)
        error = PydanticCustomError(kind, "{message}", {"field": field, "message": message})
        errors.append(InitErrorDetails(type=error, loc=(field,), input=value))
    if errors:
        # a ValidationError raised in a model's validator keeps its errors' places (`loc`),
        # which a PydanticCustomError, placed at the model, would not
        raise ValidationError.from_exception_data("identity", errors)


Text = Annotated[str, Field(min_length=1)]
ReportId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=IDENTITY_PATTERN,
        json_schema_extra=_IDENTITY_SCHEMA,
    ),
]
SourceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=IDENTITY_PATTERN,
        json_schema_extra=_IDENTITY_SCHEMA,
    ),
]
#: A party code or alias (`perpetrator`, `claimant`), or `civilians` (`target`).
PartyName = Annotated[
    str, Field(max_length=128, pattern=TEXT_PATTERN, json_schema_extra=_TEXT_SCHEMA)
]
#: A gazetteer place name (`location.place`).
PlaceName = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=TEXT_PATTERN, json_schema_extra=_TEXT_SCHEMA),
]
Description = Annotated[
    str,
    Field(max_length=4000, pattern=DESCRIPTION_PATTERN, json_schema_extra=_DESCRIPTION_SCHEMA),
]
#: What the exported schema says of its integers: JSON Schema counts `2.0` as the integer 2,
#: which no keyword can refuse; the validator reads only integers written as such.
INTEGER_NOTE = (
    "an integer written without a fraction or exponent: `2.0` or `2e0` is `invalid_type` "
    "(JSON Schema counts it as an integer; the validator does not)"
)
Revision = Annotated[int, Field(ge=0, le=MAX_REVISION, description=INTEGER_NOTE)]
Casualty = Annotated[int, Field(ge=0, le=MAX_CASUALTIES, description=INTEGER_NOTE)]
#: A strict integer, then 1: `Literal[1]` took `true` and `1.0` for 1. Other integers are
#: `unsupported_version` (schemas/validation.py), other types `invalid_type`.
SchemaVersion = Annotated[
    int,
    Field(ge=1, le=1),
    WithJsonSchema(
        {"type": "integer", "const": 1, "description": f"the only version: 1; {INTEGER_NOTE}"}
    ),
]


#: The earliest time a report may give: the theatre's history since 1900 can be imported,
#: while a year 0001 overflowed the period and UTC arithmetic downstream (an
#: `internal_error`, "a bug", instead of a clear rejection).
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)


def _not_before_1900(value: datetime, info: ValidationInfo) -> datetime:
    if value < EARLIEST_TIME:
        raise PydanticCustomError(
            "time_too_early",
            "{field} {value} is before 1900-01-01",
            {"field": str(info.field_name), "value": value.isoformat()},
        )
    return value


def _not_in_future(value: datetime, info: ValidationInfo) -> datetime:
    _check_not_in_future(value, value, str(info.field_name), info.context)
    return value


def _check_not_in_future(value: datetime, start: datetime, field: str, context: Any) -> None:
    """`future_time` unless `start` (the value, or the start of the period a day-, week- or
    month-precision time stands for) is at most MAX_CLOCK_SKEW ahead of now."""
    if start - _now_from(context) > MAX_CLOCK_SKEW:
        raise PydanticCustomError(
            "future_time",
            "{field} {value} is more than {minutes} minutes in the future",
            {
                "field": field,
                "value": value.isoformat(),
                "minutes": int(MAX_CLOCK_SKEW.total_seconds() // 60),
            },
        )


def period_start(value: datetime, precision: TimePrecision) -> datetime:
    """The first instant of the period a time of `precision` stands for, in the time's own
    UTC offset: its day; the week it may be any day of (the six days before its day, as
    ACLED dates a week-precision event within its week); its month."""
    if precision is TimePrecision.EXACT:
        return value
    day = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if precision is TimePrecision.DAY:
        return day
    if precision is TimePrecision.WEEK:
        return day - timedelta(days=6)
    return day.replace(day=1)


# RFC 3339 `date-time` (section 5.6) with the field ranges RFC 3339 allows; pydantic alone
# also took Unix times ("1620800000"), times without seconds, `+0400`, a space or `_` for
# `T`. Checked in pydantic's Rust regex before its datetime parser: no Python call per
# field. The offset is optional here only so that a naive time is named `missing_timezone`;
# the exported pattern requires it. Second 60 (a leap second) is refused: Python's datetime
# has none.
_DATE_TIME = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
)
# UTC offsets are those in use, -12:00 to +14:00 (RFC 3339's syntax takes any up to
# +-23:59): a wrong one shifts a time by up to a day, and a day-precision time's period
# (`period_start`) with it.
_OFFSET = r"([Zz]|\+(0[0-9]|1[0-3]):[0-5][0-9]|\+14:00|-(0[0-9]|1[01]):[0-5][0-9]|-12:00)"
#: The earliest and the latest UTC offset accepted, in minutes.
OFFSET_RANGE_MINUTES = (-12 * 60, 14 * 60)
TIME_PATTERN = f"{_DATE_TIME}{_OFFSET}?$"
TIME_SCHEMA_PATTERN = _exported(f"{_DATE_TIME}{_OFFSET}$")
#: The form, whatever the ranges: to tell a number out of range from a wrong form.
_TIME_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_TIME_EXAMPLE = "such as 2021-05-12T10:00:00+04:00 or 2021-05-12T06:00:00.5Z"
_STRICT_TIME: TypeAdapter[datetime] = TypeAdapter(datetime, config=ConfigDict(strict=True))


class _Rfc3339:
    """An RFC 3339 date-time in JSON (a `datetime` as itself in Python)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        parsed = core_schema.datetime_schema(tz_constraint="aware", strict=False)
        return core_schema.json_or_python_schema(
            # lax parsing of a string the pattern admitted (strict takes no Python str)
            json_schema=core_schema.chain_schema(
                [core_schema.str_schema(pattern=TIME_PATTERN, strict=True), parsed]
            ),
            python_schema=core_schema.datetime_schema(tz_constraint="aware", strict=True),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "pattern": TIME_SCHEMA_PATTERN}


def offset_in_use(minutes: int) -> bool:
    """Whether a UTC offset of `minutes` is one a place uses (`OFFSET_RANGE_MINUTES`)."""
    low, high = OFFSET_RANGE_MINUTES
    return low <= minutes <= high


def offset_not_in_use(offset: str) -> str:
    """Why a time with the UTC offset `offset` ("+15:00") is refused."""
    return f"UTC offset {offset} is not one in use: offsets run from -12:00 to +14:00"


def explain_time(value: str) -> str:
    """Why `value` is no RFC 3339 date-time (it failed TIME_PATTERN)."""
    shape = _TIME_SHAPE.fullmatch(value)
    if shape:
        if value[17:19] == "60":
            return "leap seconds (second 60) are not supported; give 59"
        offset = shape.group(2)
        if offset is not None and offset not in "Zz":
            minutes = int(offset[1:3]) * 60 + int(offset[4:6])
            if not offset_in_use(-minutes if offset[0] == "-" else minutes):
                return f"{offset_not_in_use(offset)} ({_TIME_EXAMPLE})"
        # The form is right and a number out of range: pydantic's parser says which.
        try:
            _STRICT_TIME.validate_json(f'"{value}"')  # digits and punctuation only
        except ValidationError as err:
            detail = err.errors(include_url=False)[0]["msg"].removeprefix(
                "Input should be a valid datetime, "
            )
            return f"not a valid RFC 3339 date-time: {detail} ({_TIME_EXAMPLE})"
    return (
        f"{value[:40]!r} is not an RFC 3339 date-time: expected YYYY-MM-DDTHH:MM:SS, an "
        f"optional fraction, then Z or +HH:MM / -HH:MM ({_TIME_EXAMPLE})"
    )


#: The format characters (Cf) that are seen, as a sign over the digits after them: refused
#: as the others, named apart.
_PREPENDED_SIGNS = frozenset(
    (*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD)
)


def _explain_invisible(value: str) -> str | None:
    """Why `value` holds an invisible character, when it does (the first one, named)."""
    invisible = INVISIBLE_CHAR.search(value)
    if invisible is None:
        return None
    char = invisible.group()
    kind = "format" if ord(char) in _PREPENDED_SIGNS else "invisible"
    return f"holds the {kind} character {char_name(char)} at position {invisible.start()}"


def explain_identity(value: str) -> str:
    """Why `value` is no `source` / `report_id` (it failed IDENTITY_PATTERN)."""
    control = _CONTROL_CHAR.search(value)
    if control is not None:
        return (
            f"holds the control character {char_name(control.group())} at position "
            f"{control.start()}: control characters are not allowed"
        )
    invisible = _explain_invisible(value)
    if invisible is not None:
        return (
            f"{invisible}: invisible and format characters are not allowed (an id that looks "
            "like another would count as another report)"
        )
    if not value.strip():
        return "is blank: it must hold a character other than whitespace"
    if value[:1].isspace() or value[-1:].isspace():
        end = "starts" if value[:1].isspace() else "ends"
        return (
            f"{end} with whitespace: ids are compared exactly, so {value.strip()[:64]!r} with "
            "spaces around it would count as another report; send it without them"
        )
    wide = _WIDE_SPACE_CHAR.search(value)
    found = f"{char_name(wide.group())} at position {wide.start()}" if wide else ""
    return (
        f"holds the whitespace character {found}: the only whitespace an id may hold is "
        "the space U+0020 (an id that looks like another would count as another report); "
        f"send {_WIDE_SPACE_CHAR.sub(' ', value)[:64]!r}"
    )


def explain_text(value: str) -> str:
    """Why `value` is no party name or place (it failed TEXT_PATTERN)."""
    control = _CONTROL_CHAR.search(value)
    if control is not None:
        return (
            f"holds the control character {char_name(control.group())} at position "
            f"{control.start()}: control characters are not allowed (they would reach "
            "incidents, exports and terminals as sent)"
        )
    return (
        f"{_explain_invisible(value) or 'holds an invisible character'}: invisible and "
        "format characters are not allowed (a direction override or a zero width makes a "
        "name show otherwise than it reads)"
    )


def explain_description(value: str) -> str:
    """Why `value` is no `description` (it failed DESCRIPTION_PATTERN)."""
    control = _DESCRIPTION_CONTROL_CHAR.search(value)
    if control is not None:
        return (
            f"holds the control character {char_name(control.group())} at position "
            f"{control.start()}: control characters other than tab, line feed and carriage "
            "return are not allowed"
        )
    bidi = _BIDI_CONTROL_CHAR.search(value)
    found = f"{char_name(bidi.group())} at position {bidi.start()}" if bidi else ""
    return (
        f"holds the direction control character {found}: direction embeddings, overrides "
        "and isolates (U+202A-U+202E, U+2066-U+2069) are not allowed, as they reorder the "
        "text shown after them (the marks U+200E and U+200F are allowed)"
    )


#: How to explain a pattern mismatch (schemas/validation.py), by the pattern.
PATTERN_EXPLANATIONS: dict[str, Callable[[str], str]] = {
    TIME_PATTERN: explain_time,
    IDENTITY_PATTERN: explain_identity,
    TEXT_PATTERN: explain_text,
    DESCRIPTION_PATTERN: explain_description,
}

#: An RFC 3339 time with an offset, not more than MAX_CLOCK_SKEW ahead of `now`.
ReportTime = Annotated[
    datetime, _Rfc3339(), AfterValidator(_not_before_1900), AfterValidator(_not_in_future)
]
#: `occurred_at` of a report: checked against the future with its `time_precision`
#: (`Report._checks`): a day report of today written at noon is no report
#: from the future at 09:00.
OccurredTime = Annotated[datetime, _Rfc3339(), AfterValidator(_not_before_1900)]


def _is(expected: bool) -> AfterValidator:
    # Literal[False] would take 0 for false (0 == False); a strict bool takes only JSON's.
    def check(value: bool) -> bool:
        if value is not expected:
            raise PydanticCustomError(
                "literal_error", "Input should be {expected}", {"expected": str(expected).lower()}
            )
        return value

    return AfterValidator(check)


#: `withdrawn` of a report (absent or false) and of a withdrawal (true).
NotWithdrawn = Annotated[bool, _is(False), Field(json_schema_extra={"const": False})]
Withdrawn = Annotated[bool, _is(True), Field(json_schema_extra={"const": True})]


_NUMBER = {"type": "number"}


def _location_schema(schema: dict[str, Any]) -> None:
    # The default depends on the other fields, which JSON Schema cannot say as a default.
    precision = schema["properties"]["precision"]
    precision.pop("default", None)
    precision["description"] = (
        "how precisely the place is known; default `point` when lat and lon are given, "
        "`town` with a place name only"
    )
    # What `_point_or_place` checks: lat and lon together (or neither), and a point or a place.
    schema["if"] = {"required": ["lat"], "properties": {"lat": _NUMBER}}
    schema["then"] = {"required": ["lon"], "properties": {"lon": _NUMBER}}
    schema["else"] = {"properties": {"lon": {"type": "null"}}}
    schema["anyOf"] = [
        {"required": ["lat"], "properties": {"lat": _NUMBER}},
        {"required": ["place"], "properties": {"place": {"type": "string"}}},
    ]


class Location(BaseModel):
    """A WGS84 point, a gazetteer place name, or both (the point wins).

    `precision` is always set once validated: as sent, or else `point` with lat/lon and
    `town` with a place name only."""

    model_config = ConfigDict(**_STRICT, json_schema_extra=_location_schema)

    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    place: PlaceName | None = None
    precision: LocationPrecision = LocationPrecision.POINT

    @model_validator(mode="after")
    def _point_or_place(self) -> Self:
        if self.lat is None:
            if self.lon is not None:
                raise PydanticCustomError(
                    "location_incomplete", "lat and lon must be given together"
                )
            if self.place is None:
                raise PydanticCustomError(
                    "location_incomplete", "location needs lat and lon, or a place name"
                )
            if "precision" not in self.model_fields_set:
                object.__setattr__(self, "precision", LocationPrecision.TOWN)
        elif self.lon is None:
            raise PydanticCustomError("location_incomplete", "lat and lon must be given together")
        return self


class Casualties(BaseModel):
    model_config = _STRICT

    killed: Casualty = 0
    wounded: Casualty = 0
    civilian: bool = False


class Report(BaseModel):
    """One incident report. (`source`, `report_id`) identifies it; of its versions, the one
    with the highest `revision` counts."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"title": "Incident report"},
    )

    report_id: ReportId
    source: SourceName
    source_type: SourceType
    occurred_at: OccurredTime
    reported_at: ReportTime | None = None
    location: Location
    category: Category
    perpetrator: PartyName | None = None
    target: PartyName | None = None
    casualties: Casualties | None = None
    description: Description | None = None
    revision: Revision = 0
    withdrawn: NotWithdrawn = False
    claimant: PartyName | None = None
    time_precision: TimePrecision = TimePrecision.EXACT
    schema_version: SchemaVersion = 1

    @model_validator(mode="after")
    def _checks(self, info: ValidationInfo) -> Self:
        _check_normalized(self.source, self.report_id)
        start = period_start(self.occurred_at, self.time_precision)
        _check_not_in_future(self.occurred_at, start, "occurred_at", info.context)
        return self

    @property
    def key(self) -> str:
        """The identity of the report: its message key on the keyed topics."""
        return report_key(self.source, self.report_id)


class WithdrawnReport(BaseModel):
    """The source retracts (`source`, `report_id`): as of `revision`, the report leaves every
    tally and incident. Only the identity, `revision` and `withdrawn: true` are needed."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={"title": "Withdrawal of an incident report"},
    )

    report_id: ReportId
    source: SourceName
    #: At least 1: higher than the revision it withdraws (a report's first is 0).
    revision: Annotated[int, Field(ge=1, le=MAX_REVISION, description=INTEGER_NOTE)]
    withdrawn: Withdrawn
    source_type: SourceType | None = None
    occurred_at: OccurredTime | None = None
    reported_at: ReportTime | None = None
    location: Location | None = None
    category: Category | None = None
    perpetrator: PartyName | None = None
    target: PartyName | None = None
    casualties: Casualties | None = None
    description: Description | None = None
    claimant: PartyName | None = None
    time_precision: TimePrecision | None = None
    schema_version: SchemaVersion = 1

    @model_validator(mode="after")
    def _checks(self, info: ValidationInfo) -> Self:
        _check_normalized(self.source, self.report_id)
        # as in a report: a withdrawal re-sending its day report of today was `future_time`
        if self.occurred_at is not None:
            precision = self.time_precision or TimePrecision.EXACT
            start = period_start(self.occurred_at, precision)
            _check_not_in_future(self.occurred_at, start, "occurred_at", info.context)
        return self

    @property
    def key(self) -> str:
        """The identity of the withdrawn report: its message key on the keyed topics."""
        return report_key(self.source, self.report_id)


#: What a valid input is: a report or a withdrawal.
ReportInput = Report | WithdrawnReport


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of an input: exactly one of the two shapes."""
    schema: dict[str, Any] = TypeAdapter(ReportInput).json_schema()
    shapes = schema.pop("anyOf")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Ceasefire violation incident report, schema version 1",
        "description": (
            "A report of a ceasefire violation, or (with `withdrawn: true`) a source's "
            "withdrawal of one of its reports; (`source`, `report_id`) identifies a report "
            "and the highest `revision` of it counts."
        ),
        "oneOf": shapes,
        **schema,
    }


def report_key(source: str, report_id: str) -> str:
    # A unit separator cannot appear in either part by accident, so the key is unambiguous.
    return f"{source}\x1f{report_id}"


def _now_from(context: Any) -> datetime:
    if isinstance(context, dict) and isinstance(context.get("now"), datetime):
        now: datetime = context["now"]
        return now
    from datetime import UTC

    return datetime.now(UTC)
