"""Named places and their alternate spellings, for reports that give `location.place`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streams.classify.text import fold


@dataclass(frozen=True, slots=True)
class Place:
    name: str
    lat: float
    lon: float


class Gazetteer:
    def __init__(self, places: list[tuple[Place, list[str]]]) -> None:
        self._by_name: dict[str, Place] = {}
        for place, aliases in places:
            for spelling in (place.name, *aliases):
                self._by_name[fold(spelling)] = place

    @classmethod
    def load(cls, path: Path | None = None) -> Gazetteer:
        where = str(path) if path else "the shipped gazetteer"
        try:
            if path is None:
                text = resources.files(__package__).joinpath("data/gazetteer.json").read_text()
            else:
                text = Path(path).read_text(encoding="utf-8")
            doc = json.loads(text)
            places = [
                (
                    Place(str(p["name"]), float(p["lat"]), float(p["lon"])),
                    list(p.get("aliases", [])),
                )
                for p in doc["places"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: cannot read gazetteer: {exc}") from exc
        return cls(places)

    def resolve(self, name: str) -> Place | None:
        return self._by_name.get(fold(name))
