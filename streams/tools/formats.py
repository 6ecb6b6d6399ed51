"""Input formats for `feed`: each yields (line number, bytes to send).

* `jsonl`: every non-blank line is sent exactly as it is, byte for byte (only the line
  terminator is removed), malformed or not: the worker decides, and dead-letters what
  it rejects.
* `csv`: a header row with the report's field names (SPEC.md); `lat`/`lon`/`place`/
  `precision` (or `location.lat`, `location.lon`, `location.place`,
  `location.precision`) build `location`, `killed`/`wounded`/`civilian` (or
  `casualties.killed`...) build `casualties`; `revision` is a number and `withdrawn` a
  boolean; empty cells are left out; any other column becomes a field of the same name,
  so an unknown column is rejected downstream rather than silently dropped.
* `acled`: an ACLED export (event_id_cnty, event_date, event_type, sub_event_type,
  actor1, actor2, admin1..3, location, latitude, longitude, geo_precision,
  time_precision, fatalities, notes, source, timestamp, and optionally
  civilian_targeting). See `acled_report` for the mapping.

In `csv`, a cell that is not the number or boolean its column needs (`lat` = "north",
`killed` = "many", "3.5") is kept as the string it is: the schema then rejects the row as
`invalid_type` and names the field, as it would for the same mistake in JSON. A whole
number written with a decimal point (`killed`, `wounded`, `revision`, `schema_version` =
"3.0", as pandas writes a column of whole numbers that has a blank cell) is the whole
number it is, in both CSV formats (`_spreadsheet_whole`).
A row that cannot be converted at all (more cells than the header has, bytes that are
not UTF-8; in `acled` also a number or date that is not one, or a required column
missing) is sent as its original CSV text: the schema rejects it downstream
(`invalid_json`, `invalid_encoding`) and it is counted in the dead-letter topic; the
feed's summary gives the conversion's reason (`read_lines`' `unconverted`: a date that is
none says which forms are read, `ACLED_DATES_READ`; bytes that are not UTF-8 name the first
column holding them and the likely cause, a legacy code page, `NOT_UTF8`), and the feed
sends it beside the row for the dead letter (`schemas.dead_letter.UNCONVERTED_HEADER`); a
bad cell is quoted by its first `SHOWN_CELL_CHARS` characters only. A malformed
record (a quote left open to the end of the file, or closing in the wrong place) is such
a row too, made of its first physical line; reading resumes at the next line. No row is
ever dropped.

Line numbers are the physical line on which a line or CSV record starts (1-based; the
CSV header is line 1 or later). The header must name the columns a row cannot do without
(`report_id` and `source`; ACLED's `event_id_cnty` and `event_date`): a first row that
does not (JSON lines fed as CSV, a CSV file without its header row) stops the feed at once
with one line (`HeaderError`), before anything is sent; so does a file whose line endings
are CR alone (old Mac OS), which reads as one line, and the error says so (in JSON lines
too, at its first line: `_check_jsonl_endings`); and in every
format a UTF-16 or UTF-32 file (Windows' "Unicode" text: a byte order mark, or NUL bytes in
its first line), whose lines were sent as junk and whose CSV header was said to name no
column it names: the error says how to convert it (`iconv -f utf-16 -t utf-8`).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import IO, Any

import orjson

from schemas.codes import Party
from schemas.incident import CIVILIANS
from streams.classify.parties import target_code

FORMATS = ("jsonl", "csv", "acled")

#: ACLED sub-event types (lower case) to category codes. `Attack` is decided by its
#: target (see `acled_category`); anything not listed here is `other`.
ACLED_CATEGORY: dict[str, str] = {
    "armed clash": "small_arms_fire",
    "grenade": "small_arms_fire",
    "shelling/artillery/missile attack": "heavy_weapons_fire",
    "air/drone strike": "drone_strike",
    "remote explosive/landmine/ied": "mine_incident",
    "abduction/forced disappearance": "detention",
    "arrests": "detention",
    "looting/property destruction": "property_destruction",
    "sexual violence": "civilian_harm",
    "government regains territory": "positional_advance",
    "non-state actor overtakes territory": "positional_advance",
    "headquarters or base established": "engineering_works",
    # "non-violent transfer of territory" (the districts returned under the statement)
    # is not a violation: it stays `other`, like "disrupted weapons use", protests...
}
#: Sub-event types that are violence against someone (a peacekeeping target makes them
#: `attack_on_peacekeepers`).
_ACLED_VIOLENT = {
    "armed clash",
    "grenade",
    "shelling/artillery/missile attack",
    "air/drone strike",
    "remote explosive/landmine/ied",
    "attack",
}
#: (also as a spreadsheet rewrites them: "12-Nov-2021", "2021/11/12"; never d/m/y or m/d/y,
#: which cannot be told apart)
ACLED_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d-%B-%Y", "%d %b %Y", "%d-%b-%Y", "%Y/%m/%d")
#: What an `event_date` that is none is told: the forms `ACLED_DATE_FORMATS` reads.
ACLED_DATES_READ = (
    "read are YYYY-MM-DD, YYYY/MM/DD, 12 Nov 2021, 12-November-2021; not d/m/Y or m/d/Y (ambiguous)"
)
#: The `source` of every ACLED row: with `event_id_cnty` it identifies the event for good.
ACLED_SOURCE = "acled"
#: ACLED `time_precision` -> `time_precision`. ACLED always gives a day, so a row without
#: one is `day` too.
ACLED_TIME_PRECISION = {"1": "day", "2": "week", "3": "month"}
#: ACLED `geo_precision` -> `location.precision`.
ACLED_GEO_PRECISION = {"1": "point", "2": "town", "3": "region"}


#: Bytes read from a file at a time.
READ_BUFFER = 1 << 20


class Unconvertible(ValueError):
    """A CSV row that cannot be turned into a report object."""


#: Most characters of a bad cell that a conversion's message quotes. A cell can hold up to
#: the csv module's field limit (128 Ki characters): quoted whole, the reason sent beside the
#: row (`UNCONVERTED_HEADER`) pushed the record over the producer's request limit.
SHOWN_CELL_CHARS = 40


def quoted(cell: str) -> str:
    """`cell` as a message quotes it: `repr`, cut to `SHOWN_CELL_CHARS` and marked when cut."""
    if len(cell) <= SHOWN_CELL_CHARS:
        return repr(cell)
    return f"{cell[:SHOWN_CELL_CHARS]!r}… ({len(cell):,} characters)"


class HeaderError(ValueError):
    """The first row of a CSV file is no header of its format (the file is of another
    format, or has no header row): every row would be misread, the first one lost."""


#: Columns a header must name, by format: without them no row converts.
REQUIRED_COLUMNS = {"csv": ("report_id", "source"), "acled": ("event_id_cnty", "event_date")}


# -- reading ----------------------------------------------------------------------
@contextmanager
def _binary(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer  # never closed: it is not ours
        return
    # A large buffer: each read releases the GIL, and taking it back from the producer's
    # busy I/O thread can cost a switch interval (5 ms) per read.
    with open(path, "rb", buffering=READ_BUFFER) as handle:
        yield handle


class ByteMeter:
    """How many bytes of the input `read_lines` has read so far: the feed's progress, taken
    in the one pass that sends (counting rows first would read the file twice)."""

    __slots__ = ("read",)

    def __init__(self) -> None:
        self.read = 0


def _metered(stream: Iterable[bytes], meter: ByteMeter | None) -> Iterator[bytes]:
    if meter is None:
        yield from stream
        return
    for line in stream:
        meter.read += len(line)
        yield line


def read_lines(
    path: str,
    fmt: str,
    meter: ByteMeter | None = None,
    unconverted: dict[int, str] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes to send) for every line or row of `path` ("-": stdin).
    `meter`, when given, follows the bytes read. `unconverted`, when given, gets the line
    number of each CSV row sent as its original text, and why, before that row is yielded
    (the schema would only call it `invalid_json`)."""
    if fmt == "jsonl":
        yield from _jsonl(path, meter)
    elif fmt == "csv":
        yield from _csv(path, fmt, csv_report, meter, unconverted)
    elif fmt == "acled":
        yield from _csv(path, fmt, acled_report, meter, unconverted)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def acled_event_days(
    path: str, unreadable: list[tuple[int, str]] | None = None
) -> Iterator[tuple[str, date | None, int | None]]:
    """(`event_id_cnty`, its `event_date` or None when that is no date, its revision: the
    `timestamp`, 0 when there is none, None when it is no whole number) for every row of an
    ACLED export that has an id: which events it holds (`acled_deletions.py`). A row not
    read (malformed, not UTF-8) goes to `unreadable` as (line, why)."""

    def event(row: dict[str, str]) -> dict[str, Any]:
        event_id = row["event_id_cnty"].strip()
        if not event_id:
            return {"id": None}  # no event's row: the feed dead-letters it
        try:
            day: str | None = _acled_date(row["event_date"]).isoformat()
        except ValueError:
            day = None
        revision = acled_revision(row)  # as the feed sends it: no timestamp is revision 0
        whole = 0 if revision is None else revision if isinstance(revision, int) else None
        return {"id": event_id, "day": day, "revision": whole}

    unconverted: dict[int, str] = {}
    for line_no, data in _csv(path, "acled", event, unconverted=unconverted):
        why = unconverted.pop(line_no, None)
        if why is not None:
            if unreadable is not None:
                unreadable.append((line_no, why))
        elif (doc := json.loads(data))["id"] is not None:
            day = None if doc["day"] is None else date.fromisoformat(doc["day"])
            yield doc["id"], day, doc["revision"]


def _jsonl(path: str, meter: ByteMeter | None = None) -> Iterator[tuple[int, bytes]]:
    with _binary(path) as stream:
        for n, line in enumerate(_metered(stream, meter), start=1):
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            if n == 1:  # an editor's UTF-8 BOM belongs to the file, not to its first report
                _check_encoding(path, line)
                line = line.removeprefix(b"\xef\xbb\xbf")
                _check_jsonl_endings(path, line)
            if line.strip():
                yield n, line


class _Doomed(Exception):
    """A record that will fail as a malformed one before it did (see `_csv_records`)."""


class _Tap:
    """Feeds decoded lines to the csv reader while keeping their original bytes and line
    numbers. Lines handed back (`again`) are fed first, in order."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self.again: list[tuple[int, bytes]] = []  # the next one last
        self.taken: list[bytes] = []  # the physical lines of the record being read
        self.start = 0  # the line number of taken[0]
        self.next_no = 1  # the line number of the next line of the stream
        self.exhausted = False
        #: A record still open when it asks for a line up to this one is doomed (see
        #: `_csv_records`).
        self.doomed_through = 0

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> str:
        if self.again:
            line_no, line = self.again.pop()
        else:
            try:
                line = next(self._lines)
            except StopIteration:
                self.exhausted = True
                raise
            line_no = self.next_no
            self.next_no += 1
            if line_no == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a spreadsheet's UTF-8 BOM
        if not self.taken:
            self.start = line_no
        elif line_no <= self.doomed_through:
            self.again.append((line_no, line))
            raise _Doomed
        self.taken.append(line)
        return line.decode("utf-8", errors="surrogateescape")


def _csv_records(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes, list[str], str | None]]:
    """(start line, original bytes, cells, None) per CSV record, quoted newlines included;
    (line, its bytes, [], why) for a malformed record (an unclosed quote, a quote closing in
    the wrong place): that record is its first physical line alone, and reading resumes at
    the next, so that one stray quote does not swallow the rest of the file.

    Linear: a malformed record spanning lines k..e was inside a quoted field at every line
    break up to e, and the csv reader's state there is that field's, whatever came before.
    So a record read again from k+1 on that is still open when it needs a line up to e
    would end the same way: it is malformed at once (`_Doomed`), not read up to e again.
    (Not after a field over the size limit: a field begun later is shorter.) The spans of
    such records do not overlap: one that begins within another's is doomed."""
    tap = _Tap(stream)
    reader = csv.reader(tap, strict=True)
    doom = ""  # why the doomed records fail
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _Doomed:
            why = doom
        except csv.Error as exc:
            why = "unclosed quote" if tap.exhausted else str(exc)
            tap.exhausted = False  # this record's end of file; its lines are read again
            if len(tap.taken) > 1 and "field limit" not in why:
                # past any earlier one's lines: a record read again from within those lines
                # that needs a second one was doomed at once
                doom = why
                tap.doomed_through = tap.start + len(tap.taken) - 1
        else:
            raw = b"".join(tap.taken).rstrip(b"\r\n")
            tap.taken.clear()
            yield tap.start, raw, cells, None
            continue
        if not tap.taken:  # raised before reading a line: nothing more to read
            return
        start, first, rest = tap.start, tap.taken[0], tap.taken[1:]
        tap.taken.clear()
        tap.again.extend(zip(range(start + len(rest), start, -1), reversed(rest), strict=True))
        reader = csv.reader(tap, strict=True)  # a reader that raised is not reliable
        if why == "unclosed quote":
            problem = f"unclosed quote in row at line {start}"
        elif "field limit" in why and rest:  # a quoted field ran on over many lines
            problem = f"unclosed quote in row at line {start}? ({why})"
        else:
            problem = f"malformed CSV in row at line {start}: {why}"
        yield start, first.rstrip(b"\r\n"), [], problem


def _row(header: list[str], cells: list[str]) -> dict[str, str]:
    if len(cells) > len(header):
        raise Unconvertible(f"{len(cells)} cells, the header has {len(header)}")
    row = dict(zip(header, cells, strict=False))
    for missing in header[len(cells) :]:
        row[missing] = ""
    return row


#: What a row with bytes that are not UTF-8 is said to be, and the likely cause: a file
#: saved in a legacy code page (Excel's "ANSI" CSV: Windows-1252, or -1254 for Turkish and
#: Azerbaijani letters). Short: the summary shows 200 characters of a reason, the dead
#: letter 300; the feed warns once with the whole command (`NOT_UTF8_HINT`).
NOT_UTF8 = "bytes that are not UTF-8"
#: How to convert such a file, `{file}` its name.
NOT_UTF8_HINT = (
    "the file is not UTF-8: probably a legacy code page such as Windows-1252 or "
    'Windows-1254 (Excel\'s "ANSI" CSV); convert it and feed the converted file, e.g. '
    "`iconv -f WINDOWS-1254 -t UTF-8 {file} > {file}.utf8` (WINDOWS-1252 for Western "
    "European text)"
)
#: The characters `surrogateescape` decodes a byte that is not UTF-8 to.
_ESCAPED = re.compile("[\udc80-\udcff]")


def _why(exc: Exception) -> str:
    """What a failed conversion says of the row."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]} column"
    if isinstance(exc, UnicodeError):
        return NOT_UTF8
    return str(exc)


def _not_utf8(header: list[str], cells: list[str]) -> str:
    """Why a row holding bytes that are not UTF-8 is not converted: the first column
    that holds them and the first such byte, and the likely cause."""
    where = ""
    for n, cell in enumerate(cells):
        escaped = _ESCAPED.search(cell)
        if escaped is not None:
            column = header[n] if n < len(header) else f"{n + 1}"
            column = _ESCAPED.sub("?", column)
            byte = ord(escaped.group()) - 0xDC00
            where = f" in column {column} (0x{byte:02X})"
            break
    return (
        f"{NOT_UTF8}{where}: a legacy code page such as Windows-1252/1254? "
        "Convert the file to UTF-8 (e.g. with iconv)"
    )


def _csv(
    path: str,
    fmt: str,
    convert: Callable[[dict[str, str]], dict[str, Any]],
    meter: ByteMeter | None = None,
    unconverted: dict[int, str] | None = None,
) -> Iterator[tuple[int, bytes]]:
    with _binary(path) as stream:
        header: list[str] | None = None
        for line_no, raw, cells, malformed in _csv_records(_metered(stream, meter)):
            if malformed is not None and header is None:
                _check_header(path, fmt, line_no, [raw.decode("utf-8", "replace").strip()], raw)
            if malformed is not None:
                why = malformed
            elif not cells or all(not c.strip() for c in cells):
                continue  # blank line
            elif header is None:
                header = [c.strip() for c in cells]
                _check_header(path, fmt, line_no, header, raw)
                continue
            else:
                try:
                    data = _json(convert(_row(header, cells)))
                except (ValueError, KeyError, TypeError, UnicodeError, OverflowError) as exc:
                    why = _not_utf8(header, cells) if isinstance(exc, UnicodeError) else _why(exc)
                else:
                    yield line_no, data
                    continue
            if unconverted is not None:
                unconverted[line_no] = why
            yield line_no, raw


def check_header(path: str, fmt: str) -> None:
    """Raise HeaderError now if the file's first record is no header of `fmt`, or the file
    is UTF-16 or UTF-32 (`_check_encoding`; before a broker is asked for anything): reading
    its first row checks it, as any read does; stdin is checked as it is read. JSON lines
    are checked as they are read (the file is read once): a UTF-16 file at its first line,
    before anything is sent."""
    if fmt == "jsonl" or path == "-":
        return
    for _ in read_lines(path, fmt):
        break


#: A carriage return that ends no CRLF.
_BARE_CR = re.compile(rb"\r(?!\n)")
#: Byte order marks of the encodings no input format reads, longest first: (mark, name,
#: what `iconv -f` calls it).
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32", "utf-32"),
    (b"\x00\x00\xfe\xff", "UTF-32", "utf-32"),
    (b"\xff\xfe", "UTF-16", "utf-16"),
    (b"\xfe\xff", "UTF-16", "utf-16"),
)


def _wide_encoding(first: bytes) -> tuple[str, str, str] | None:
    """(encoding, what `iconv -f` calls it, how it shows) if the first line of a file,
    `first`, is UTF-16 or UTF-32 (its byte order mark, or NUL bytes, which no UTF-8 text
    of a report holds: every ASCII character of a UTF-16 text is one); else None."""
    for mark, name, iconv in _WIDE_BOMS:
        if first.startswith(mark):
            return name, iconv, f"begins with a {name} byte order mark"
    if b"\x00" not in first:
        return None
    shows = "holds NUL bytes"
    if first[1:4] == b"\x00\x00\x00":
        return "UTF-32", "utf-32le", shows
    if first[:3] == b"\x00\x00\x00":
        return "UTF-32", "utf-32be", shows
    if first[1:2] == b"\x00":
        return "UTF-16", "utf-16le", shows
    if first[:1] == b"\x00":
        return "UTF-16", "utf-16be", shows
    return "UTF-16", "utf-16", shows


def _check_encoding(path: str, first: bytes) -> None:
    """Raise HeaderError if the file whose first line is `first` is UTF-16 or UTF-32 (as
    Windows tools save "Unicode" text): its lines were sent as junk, and a CSV header was
    said to name no column it names."""
    wide = _wide_encoding(first)
    if wide is None:
        return
    name, iconv, shows = wide
    where = "standard input" if path == "-" else path
    raise HeaderError(
        f"{where}: line 1 {shows}: the file is {name} text, and input files are read as "
        f"UTF-8; convert it (e.g. `iconv -f {iconv} -t utf-8 < FILE > FILE.utf8`) and use "
        "the converted file"
    )


def _cr_only(where: str, line_no: int) -> HeaderError:
    """The error of a file whose line endings are CR alone, read as one line."""
    return HeaderError(
        f"{where}: line {line_no} holds carriage returns without a line feed: the file's "
        "line endings are CR only, which are not read as line breaks; convert them to "
        "LF or CRLF (e.g. `tr '\\r' '\\n' < FILE > FILE.lf`) and feed it again"
    )


def _check_jsonl_endings(path: str, first: bytes) -> None:
    """Raise HeaderError if the first line of a JSON lines file, `first`, is many lines
    that end in CR alone: it was sent as one line, rejected as `too_large` or
    `invalid_json` without a word of why. A bare CR is only whitespace within JSON (a
    string holds none), so a line is CR-separated reports when what comes before its
    first bare CR is a whole JSON value and more follows; a report pretty-printed with CR
    line breaks is not (its first part is "{")."""
    bare = _BARE_CR.search(first)
    if bare is None or not first[bare.end() :].strip():
        return
    try:
        json.loads(first[: bare.start()])
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return
    raise _cr_only("standard input" if path == "-" else path, 1)


def _check_header(
    path: str, fmt: str, line_no: int, header: list[str], record: bytes = b""
) -> None:
    """Raise HeaderError if `header` (its CSV text `record`) is no header of `fmt`."""
    if line_no == 1:
        _check_encoding(path, record)
    named = {c.removeprefix("\ufeff") for c in header}  # as the rows read them
    where = "standard input" if path == "-" else path
    if _BARE_CR.search(record):
        # Lines end in CR alone (old Mac OS software): the file reads as one line, and the
        # missing-column error that followed named the very columns it said were missing.
        raise _cr_only(where, line_no)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:  # a row would keep the last cell of each: the others dropped unsaid
        raise HeaderError(
            f"{where}: line {line_no} names the column(s) {', '.join(repeated)} more than once"
        )
    if fmt == "csv":
        # Two columns of one field (`lat` and `location.lat`), or a whole object beside its
        # parts (`casualties` and `killed`): one cell silently replaced the other.
        fields = [_csv_field(c) for c in named]
        twice = sorted({f for f in fields if fields.count(f) > 1})
        whole = sorted(
            name
            for name, parts in (("location", _LOCATION_CELLS), ("casualties", _CASUALTY_CELLS))
            if name in named and parts & set(fields)
        )
        if twice or whole:
            said = [
                f"{f} (as {' and '.join(sorted(c for c in named if _csv_field(c) == f))})"
                for f in twice
            ]
            said += [f"{w} beside the columns of its parts" for w in whole]
            raise HeaderError(
                f"{where}: line {line_no} names a field in more than one column: "
                f"{'; '.join(said)}; keep one"
            )
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in named]
    if missing:
        first = ",".join(header)
        first = first if len(first) <= 60 else first[:59] + "…"
        raise HeaderError(
            f"{where}: line {line_no} ({first!r}) is "
            f"not a header of the {fmt} format: it names no {' or '.join(missing)} column. "
            "The first line of the file must name its columns"
            + ("; JSON lines are --format jsonl" if first.startswith("{") else "")
        )


def _json(doc: dict[str, Any]) -> bytes:
    """UTF-8 JSON of a converted row. orjson is a fifth of the json module's cost; what it
    refuses (an integer over 64 bits) goes through the json module, so that such a row is
    still sent as JSON and rejected by the schema for its field, as before."""
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


# -- csv --------------------------------------------------------------------------
#: A decimal number as a cell writes it: ASCII digits, a sign, a point, an exponent (`float`
#: also reads "1_0" as 10, "nan", "infinity" and the digits of other scripts).
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _float(text: str) -> float:
    cell = text.strip()
    if _DECIMAL.fullmatch(cell) is None:
        raise Unconvertible(f"not a number: {quoted(text)}")
    value = float(cell)
    if not math.isfinite(value):
        raise Unconvertible(f"not a finite number: {quoted(text)}")
    return value


#: A whole number as a cell writes it: ASCII digits, a sign at most (`int` also reads
#: "1_0" as 10, and the digits of other scripts).
_WHOLE = re.compile(r"[-+]?[0-9]+")
_WHOLE_AS_DECIMAL = re.compile(r"([-+]?[0-9]+)\.0+")


def _int(text: str) -> int:
    cell = text.strip()
    if _WHOLE.fullmatch(cell) is None:
        raise ValueError(f"not a whole number: {quoted(text)}")
    return int(cell)


def _spreadsheet_whole(cell: str) -> str:
    """A whole number a spreadsheet or pandas wrote with a decimal point ("2.0",
    "1636800000.0": pandas writes a column of whole numbers so when one of its cells is
    blank), as the number it is; any other cell as it is ("3.5" stays "3.5")."""
    whole = _WHOLE_AS_DECIMAL.fullmatch(cell)
    return cell if whole is None else whole.group(1)


def _whole(text: str) -> int:
    """A whole-number cell: "3", or "3.0" as a spreadsheet writes it; anything else ("3.5",
    "three") raises ValueError."""
    return _int(_spreadsheet_whole(text.strip()))


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _bool(text: str) -> bool:
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise Unconvertible(f"not a boolean: {quoted(text)}")


def _or_text(convert: Callable[[str], Any], text: str) -> Any:
    """The converted cell, or the cell's text when it does not convert (the schema names
    the field and the reason then; the row's CSV text would be only `invalid_json`)."""
    try:
        return convert(text)
    except ValueError:  # Unconvertible included
        return text


#: The cells of a CSV row that make `location` and `casualties`.
_LOCATION_CELLS = frozenset(("lat", "lon", "place", "precision"))
_CASUALTY_CELLS = frozenset(("killed", "wounded", "civilian"))


def _csv_field(name: str) -> str:
    """The field a CSV column names: `location.lat` and `lat` are one."""
    return name.removeprefix("location.").removeprefix("casualties.")


def csv_report(row: dict[str, str]) -> dict[str, Any]:
    """A report object from a CSV row whose columns are the report's field names."""
    doc: dict[str, Any] = {}
    location: dict[str, Any] = {}
    casualties: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or value == "":
            continue
        col = _csv_field(name)
        if col in ("lat", "lon"):
            location[col] = _or_text(_float, value)
        elif col in ("place", "precision"):
            location[col] = value
        elif col in ("killed", "wounded"):
            casualties[col] = _or_text(_whole, value)
        elif col == "civilian":
            casualties["civilian"] = _or_text(_bool, value)
        elif col in ("schema_version", "revision"):
            doc[col] = _or_text(_whole, value)
        elif col == "withdrawn":
            doc[col] = _or_text(_bool, value)
        else:
            doc[name] = value  # unknown columns too: the schema names them
    if location:
        doc["location"] = location
    if casualties:
        doc["casualties"] = casualties
    return doc


# -- acled ------------------------------------------------------------------------
def _acled_date(text: str) -> date:
    text = text.strip()
    for fmt in ACLED_DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise Unconvertible(f"event_date {quoted(text)} is not a date: {ACLED_DATES_READ}")


@lru_cache(maxsize=8192)
def _acled_noon(text: str) -> tuple[datetime, str]:
    """`event_date` at 12:00 UTC, and as RFC 3339. Cached: `strptime` was a tenth of a row's
    conversion, and a history has a few thousand distinct days."""
    day = _acled_date(text)
    occurred = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return occurred, occurred.isoformat().replace("+00:00", "Z")


def _acled_float(row: dict[str, str], column: str) -> float:
    cell = row[column]
    try:
        return _float(cell)
    except ValueError:
        raise Unconvertible(f"{column} {quoted(cell)} is not a number") from None


#: ACLED's one value of `civilian_targeting` (lower case); the column is empty otherwise.
ACLED_CIVILIAN_TARGETING = "civilian targeting"


def _civilians_targeted(row: dict[str, str]) -> bool:
    # ACLED's own value only: a "No", "FALSE" or "0" someone wrote in is no targeting
    return (
        row.get("civilian_targeting", "").strip().lower() == ACLED_CIVILIAN_TARGETING
        or row.get("event_type", "").strip().lower() == "violence against civilians"
        or target_code(row.get("actor2", "")) == CIVILIANS
    )


def acled_revision(row: dict[str, str]) -> int | str | None:
    """An ACLED row's revision, its `timestamp`: a whole number (also as a spreadsheet writes
    it, `1637107200.0`), the cell's text when it is none (the schema then rejects the row
    naming `revision`), None when the cell is empty (the report's default revision, 0)."""
    stamp = _spreadsheet_whole(row.get("timestamp", "").strip())
    return _or_text(_int, stamp) if stamp else None


def acled_sides(row: dict[str, str]) -> tuple[str, str]:
    """(perpetrator, target) of an ACLED row: `actor1`, `actor2`, except in an armed clash
    with the peacekeeping contingent as `actor1`. ACLED lists a clash's two sides in no
    order that means who attacked; the contingent's mandate is not to fight, so a clash
    with it is an attack on it whichever side ACLED wrote first (the category, the target
    and the perpetrator alike)."""
    actor1, actor2 = row.get("actor1", "").strip(), row.get("actor2", "").strip()
    if (
        row.get("sub_event_type", "").strip().lower() == "armed clash"
        and target_code(actor1) == Party.RU_PKF
        and target_code(actor2) != Party.RU_PKF
    ):
        return actor2, actor1
    return actor1, actor2


def _peacekeepers_targeted(row: dict[str, str]) -> bool:
    # The same aliases as the classifier's: the category and the target party agree.
    return target_code(acled_sides(row)[1]) == Party.RU_PKF


def acled_category(row: dict[str, str]) -> str:
    """The category of an ACLED event, from its sub-event type and its target."""
    sub = row.get("sub_event_type", "").strip().lower()
    if sub in _ACLED_VIOLENT and _peacekeepers_targeted(row):
        return "attack_on_peacekeepers"
    if sub == "attack":
        return "civilian_harm" if _civilians_targeted(row) else "other"
    return ACLED_CATEGORY.get(sub, "other")


def _acled_code(row: dict[str, str], column: str, codes: dict[str, str]) -> str | None:
    """The code of an ACLED precision cell; None when empty; the cell's text when it is no
    code ACLED uses (the schema then rejects the row and names the field)."""
    cell = row.get(column, "").strip()
    if not cell:
        return None
    return codes.get(cell.removesuffix(".0"), cell)


def acled_report(row: dict[str, str]) -> dict[str, Any]:
    """A report object from an ACLED export row.

    * Identity: `source` = `acled` (the dataset), `report_id` = `event_id_cnty`, which ACLED
      keeps across re-exports; `source_type` = `dataset`. ACLED's own `source` column
      names the media it coded the event from: it is no identity, and goes into the
      description.
    * `revision` = `timestamp` (ACLED's last-modified time, Unix seconds): a re-export
      that corrects an event has a newer one, so it replaces the earlier version. A cell
      that is no number is sent as it is (the schema rejects the row, naming `revision`).
    * `occurred_at` = `event_date` at 12:00 UTC: ACLED records days, not times, and
      noon keeps the event on its own day in any timezone of the theatre.
      `time_precision` = ACLED's 1/2/3 -> `day`/`week`/`month` (`day` when absent).
    * `reported_at` = `timestamp` when it is not before `occurred_at`.
    * `location` = `latitude`/`longitude`, `location.precision` = ACLED's `geo_precision`
      1/2/3 -> `point`/`town`/`region` (ACLED's place names go into the description,
      not `location.place`: the gazetteer would reject the villages it does not know).
    * `category` from `sub_event_type` (`ACLED_CATEGORY`); `Attack` is `civilian_harm`
      when civilians were targeted (`civilian_targeting` = ACLED's "Civilian targeting",
      any other value is not; event type "Violence against civilians"; or `actor2` names
      civilians), any violent sub-event against the Russian contingent is
      `attack_on_peacekeepers`; anything else is `other`.
    * `perpetrator` = `actor1`, `target` = `actor2`, as ACLED names them (cut to 128
      characters): ACLED's actor names are party aliases ("Military Forces of Azerbaijan
      (2003-)" -> `az`, "Civilians (Armenia)" -> `civilians`; docs/parties.md).
    * `fatalities` > 0 -> `casualties.killed` (and `civilian` when civilians were
      targeted): ACLED's figure is already the lowest the sources support.
    * `description` = `notes`, then the place names and ACLED's own `source`, cut to
      4,000 characters.
    """
    event_id = row["event_id_cnty"].strip()
    if not event_id:
        raise Unconvertible("no event_id_cnty")
    occurred, occurred_text = _acled_noon(row["event_date"])
    doc: dict[str, Any] = {
        "report_id": event_id,
        "source": ACLED_SOURCE,
        "source_type": "dataset",
        "occurred_at": occurred_text,
        "time_precision": _acled_code(row, "time_precision", ACLED_TIME_PRECISION) or "day",
    }
    revision = acled_revision(row)
    if revision is not None:
        doc["revision"] = revision
    if isinstance(revision, int) and revision >= 0:
        try:
            reported = datetime.fromtimestamp(revision, UTC)
        except (OverflowError, ValueError, OSError):
            pass  # the revision is kept; no such upload time
        else:
            if reported >= occurred:
                doc["reported_at"] = reported.isoformat().replace("+00:00", "Z")
    location: dict[str, Any] = {
        "lat": _acled_float(row, "latitude"),
        "lon": _acled_float(row, "longitude"),
    }
    geo = _acled_code(row, "geo_precision", ACLED_GEO_PRECISION)
    if geo is not None:
        location["precision"] = geo
    doc["location"] = location
    doc["category"] = acled_category(row)
    perpetrator, target = acled_sides(row)
    if perpetrator:
        doc["perpetrator"] = perpetrator[:128]
    if target:
        doc["target"] = target[:128]
    fatalities = _spreadsheet_whole(row.get("fatalities", "").strip())
    if fatalities:
        try:
            killed = _int(fatalities)
        except ValueError:
            raise Unconvertible(f"fatalities {quoted(fatalities)} is not a whole number") from None
        if killed < 0:
            raise Unconvertible(f"fatalities {killed} is negative")
        if killed:
            doc["casualties"] = {"killed": killed}
            if _civilians_targeted(row):
                doc["casualties"]["civilian"] = True
    places = [row.get(k, "").strip() for k in ("location", "admin3", "admin2", "admin1")]
    where = ", ".join(dict.fromkeys(p for p in places if p))
    parts = [row.get("notes", "").strip()]
    if where:
        parts.append(f"[{where}]")
    if row.get("source", "").strip():
        parts.append(f"(ACLED source: {row['source'].strip()})")
    description = " ".join(p for p in parts if p)
    if description:
        doc["description"] = description[:4000]
    return doc
