"""Named places and their alternate spellings, for reports that give `location.place`.

File format (`data/gazetteer.json`, or the file `CEASEFIRE_GAZETTEER` names):

    {"places": [{"name": "Shusha", "lat": 39.758, "lon": 46.748,
                 "aliases": ["Shushi", "Şuşa", "Шуша"]}, ...]}

Matching ignores case, diacritics, punctuation and spacing (see `text.fold`), so
"ŞUŞA", "shusha" and "Shu-sha" are one name. A spelling may name one place only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.classify.data_files import read_json
from streams.classify.text import fold


class GazetteerError(ValueError):
    """The gazetteer file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lon: float


class Gazetteer:
    """Place names to points. Build with `Gazetteer.load()`."""

    def __init__(self, places: list[tuple[Place, list[str]]]) -> None:
        self.places: tuple[Place, ...] = tuple(p for p, _ in places)
        self._folded: dict[str, Place] = {}
        #: Spellings exactly as written in the file: the common case skips folding.
        self._exact: dict[str, Place] = {}
        for place, aliases in places:
            for spelling in (place.name, *aliases):
                key = fold(spelling)
                if not key:
                    raise GazetteerError(f"{place.name}: spelling {spelling!r} has no letters")
                other = self._folded.get(key)
                if other is not None and other != place:
                    raise GazetteerError(
                        f"spelling {spelling!r} names both {other.name!r} and {place.name!r}"
                    )
                self._folded[key] = place
                self._exact[spelling] = place

    @classmethod
    def load(cls, path: Path | str | None = None) -> Gazetteer:
        """Read a gazetteer file; None reads the shipped one. Raises `GazetteerError`."""
        doc, where = read_json(path, "gazetteer.json", "gazetteer", GazetteerError)
        try:
            return cls(_parse(doc))
        except GazetteerError as exc:
            raise GazetteerError(f"{where}: {exc}") from exc

    def resolve(self, name: str) -> Place | None:
        """The place a name (or alternate spelling) means, or None if unknown."""
        place = self._exact.get(name)
        if place is None:
            place = self._folded.get(fold(name))
        return place

    def __len__(self) -> int:
        return len(self.places)


def _parse(doc: Any) -> list[tuple[Place, list[str]]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("places"), list):
        raise GazetteerError('expected {"places": [...]}')
    out: list[tuple[Place, list[str]]] = []
    for n, entry in enumerate(doc["places"]):
        if not isinstance(entry, dict):
            raise GazetteerError(f"place {n} is not an object")
        fields: dict[str, Any] = entry
        name: Any = fields.get("name")
        lat: Any = fields.get("lat")
        lon: Any = fields.get("lon")
        aliases: Any = fields.get("aliases", [])
        if not isinstance(name, str) or not name.strip():
            raise GazetteerError(f"place {n} has no name")
        if not _number(lat, 90):
            raise GazetteerError(f"place {name!r}: lat must be a number in [-90, 90]")
        if not _number(lon, 180):
            raise GazetteerError(f"place {name!r}: lon must be a number in [-180, 180]")
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise GazetteerError(f"place {name!r}: aliases must be a list of strings")
        out.append((Place(name, float(lat), float(lon)), aliases))
    return out


def _number(value: Any, limit: float) -> bool:
    """A finite JSON number (not a boolean) within [-limit, limit]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and -limit <= value <= limit
