"""Input formats for `feed`: each yields (line number, bytes to send).

`jsonl` sends every line exactly as it is. `csv` and `acled` convert rows to report
JSON; a row that cannot be converted is sent as its original text, so the schema
rejects it downstream and it is counted in the dead-letter topic, never dropped.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

FORMATS = ("jsonl", "csv", "acled")

ACLED_CATEGORY = {
    "shelling/artillery/missile attack": "heavy_weapons_fire",
    "armed clash": "small_arms_fire",
    "air/drone strike": "drone_strike",
    "remote explosive/landmine/ied": "mine_incident",
    "attack": "civilian_harm",
    "abduction/forced disappearance": "detention",
    "arrests": "detention",
    "looting/property destruction": "property_destruction",
    "non-state actor overtakes territory": "positional_advance",
    "government regains territory": "positional_advance",
    "non-violent transfer of territory": "positional_advance",
}


def _open(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    return open(path, encoding="utf-8", errors="surrogateescape", newline="")


def read_lines(path: str, fmt: str) -> Iterator[tuple[int, bytes]]:
    if fmt == "jsonl":
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        with stream:
            for n, line in enumerate(stream, start=1):
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield n, line
        return
    convert = _csv_row if fmt == "csv" else _acled_row
    with _open(path) as handle:
        reader = csv.DictReader(handle)
        for n, row in enumerate(reader, start=2):
            try:
                doc = convert(row)
            except (ValueError, KeyError, TypeError):
                buf = io.StringIO()
                csv.writer(buf).writerow(row.values())
                yield n, buf.getvalue().strip().encode("utf-8", "surrogateescape")
                continue
            yield n, json.dumps(doc, ensure_ascii=False).encode()


def _num(text: str) -> float | int:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    """SPEC field names as columns; location as lat/lon/place; casualties as
    killed/wounded/civilian."""
    doc: dict[str, Any] = {}
    location: dict[str, Any] = {}
    casualties: dict[str, Any] = {}
    for name, value in row.items():
        if name is None or value is None or value == "":
            continue
        col = name.strip().removeprefix("location.").removeprefix("casualties.")
        if col in ("lat", "lon"):
            location[col] = _num(value)
        elif col == "place":
            location["place"] = value
        elif col in ("killed", "wounded"):
            casualties[col] = _num(value)
        elif col == "civilian":
            casualties["civilian"] = value.strip().lower() in ("1", "true", "yes")
        elif col == "schema_version":
            doc[col] = _num(value)
        else:
            doc[col] = value
    if location:
        doc["location"] = location
    if casualties:
        doc["casualties"] = casualties
    return doc


def _acled_row(row: dict[str, str]) -> dict[str, Any]:
    """An ACLED export row. Its date has no time: occurred_at is 12:00 UTC that day."""
    sub = row.get("sub_event_type", "").strip().lower()
    kind = row.get("event_type", "").strip().lower()
    category = ACLED_CATEGORY.get(sub) or ACLED_CATEGORY.get(kind) or "other"
    doc: dict[str, Any] = {
        "report_id": row["event_id_cnty"],
        "source": "acled",
        "source_type": "dataset",
        "occurred_at": f"{row['event_date'].strip()}T12:00:00Z",
        "location": {"lat": float(row["latitude"]), "lon": float(row["longitude"])},
        "category": category,
    }
    if row.get("actor1"):
        doc["perpetrator"] = row["actor1"]
    if row.get("actor2"):
        doc["target"] = row["actor2"]
    if row.get("fatalities", "").strip():
        doc["casualties"] = {"killed": int(row["fatalities"])}
    if row.get("notes"):
        doc["description"] = row["notes"][:4000]
    return doc
