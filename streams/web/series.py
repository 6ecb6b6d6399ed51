"""`GET /api/v1/series`: parameters, the JSON document and its CSV (pure).

Buckets are `interval` long (`1d`, `1h`) and start at `from`, in `from`'s UTC offset: by
default at the start of the ceasefire (00:00 Moscow time, 2020-11-09T21:00:00Z), so daily
buckets are the ceasefire's own days, labelled `...T00:00:00+03:00`; `from=2021-05-01`
(a date is UTC midnight) gives UTC days, `from=2021-05-01T00:00:00+04:00` Baku days. A
bucket holds the incidents with start <= occurred_at < end, as `from`/`to` of the incidents
list, so a series and an incidents export of the same range hold the same incidents. `to`
(default now) is rounded up to the end of its bucket, and the answer says where it ends.
At most `MAX_BUCKETS` buckets: six years of days are about 2,200; hours go back 416 days.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.tallies.series import FIGURES, Buckets
from streams.tallies.state import Row
from streams.tallies.windows import QueryError, grouping, interval_seconds
from streams.web.params import parse_bound

MAX_BUCKETS = 10_000
#: How far back an hourly series without `from` goes.
HOURLY_DEFAULT_SPAN = timedelta(days=7)
PARAMETERS = ("by", "interval", "from", "to", "format")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    by: str
    interval: str
    start: datetime  # aware: its offset labels the buckets
    count: int

    @property
    def keys(self) -> tuple[str, ...]:
        return grouping(self.by)

    @property
    def width(self) -> timedelta:
        return timedelta(seconds=interval_seconds(self.interval))

    @property
    def end(self) -> datetime:
        return self.start + self.width * self.count

    def buckets(self) -> Buckets:
        return Buckets(_micros(self.start), self.width // _MICRO, self.count)

    def params(self) -> dict[str, str]:
        """The query as parameters a peer parses back to the same buckets."""
        return {
            "by": self.by,
            "interval": self.interval,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
        }


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICRO


def parse_series(
    pairs: Iterable[tuple[str, str]],
    *,
    since: datetime,
    now: datetime,
    extra: Collection[str] = (),
) -> SeriesQuery:
    """The series query from its parameters. `since` is the default `from` (the start of
    the ceasefire), `now` the default `to`; `extra` are parameters the caller reads."""
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS and name not in extra:
            raise QueryError(f"unknown parameter {name!r}; use {', '.join(PARAMETERS)}")
        if name in seen:
            raise QueryError(f"parameter {name!r} is given twice; give it once")
        seen[name] = value
    by = seen.get("by") or "zone"
    grouping(by)
    interval = seen.get("interval") or "1d"
    width = timedelta(seconds=interval_seconds(interval))
    end = parse_bound("to", seen["to"]) if seen.get("to") else now
    if seen.get("from"):
        start = parse_bound("from", seen["from"])
    elif interval == "1d" or end - HOURLY_DEFAULT_SPAN <= since:
        start = since
    else:
        # Hourly since the ceasefire is years of buckets, over the limit: the last week's,
        # on the ceasefire's grid of whole hours, answers the plain `interval=1h`.
        start = since + width * ((end - HOURLY_DEFAULT_SPAN - since) // width)
    if end <= start:
        raise QueryError(
            f"to ({end.isoformat()}) is not after from ({start.isoformat()}); a series "
            "holds from (inclusive) to (exclusive)"
        )
    count = -((start - end) // width)  # rounded up: the last bucket is whole
    if count > MAX_BUCKETS:
        raise QueryError(
            f"from {start.isoformat()} to {end.isoformat()} is {count} buckets of {interval}; "
            f"at most {MAX_BUCKETS}: give a later from or an earlier to"
            + ("" if interval == "1d" else ", or interval=1d"),
        )
    query = SeriesQuery(by, interval, start, count)
    try:
        query.end.astimezone(UTC)
    except OverflowError:
        raise QueryError(f"the last bucket of {interval} ends after the year 9999") from None
    return query


def document(query: SeriesQuery, rows: Iterable[list[Row]]) -> dict[str, Any]:
    """The answer: every bucket from `from` to `to`, each with its rows (the tallies' rows;
    a bucket without incidents has none)."""
    width = query.width
    return {
        "by": list(query.keys),
        "interval": query.interval,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "buckets": [
            {
                "start": (query.start + width * k).isoformat(),
                "end": (query.start + width * (k + 1)).isoformat(),
                "rows": bucket,
            }
            for k, bucket in enumerate(rows)
        ],
    }


def read_buckets(body: Any, query: SeriesQuery) -> list[list[Row]]:
    """A peer's answer, each bucket's rows; ValueError when it is not one for `query`."""
    if not isinstance(body, dict) or not isinstance(body["buckets"], list):
        raise ValueError("not a series document")
    buckets = body["buckets"]
    if len(buckets) != query.count:
        raise ValueError(f"{len(buckets)} buckets for {query.count}")
    out: list[list[Row]] = []
    for b in buckets:
        rows = b["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("rows is not a list of objects")
        out.append(rows)
    return out


def csv_columns(keys: Iterable[str]) -> tuple[str, ...]:
    return ("start", "end", *keys, *FIGURES)


def to_csv(doc: Mapping[str, Any], *, header: bool = True) -> str:
    """One line per bucket and group with incidents (RFC 4180, CRLF): `start`, `end`, the
    `by` keys, then the figures. Buckets without incidents have no line (the JSON lists
    them); the codes in it are closed vocabularies, nothing a spreadsheet runs."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    keys = list(doc["by"])
    if header:
        writer.writerow(csv_columns(keys))
    for bucket in doc["buckets"]:
        for row in bucket["rows"]:
            figures = (row[f] for f in FIGURES)
            writer.writerow([bucket["start"], bucket["end"], *(row[k] for k in keys), *figures])
    return buf.getvalue()
