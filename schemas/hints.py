"""Did-you-mean hints for a value that is none of a field's codes.

A sender's own vocabulary ("shelling", "UAV", "observation-post") is the usual reason a
report is rejected for its category or source type; the rejection names the code meant, so
the sender can fix the mapping without reading the whole list. A hint is only advice: the
report is still rejected (a code is never guessed into a tally)."""

from __future__ import annotations

import difflib
import re
from enum import StrEnum

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision

#: Words senders use, normalised (`_normal`), for the code they mean, per code set.
_WORDS: dict[type[StrEnum], dict[str, str]] = {
    Category: {
        **dict.fromkeys(
            (
                "shelling",
                "artillery",
                "artillery_fire",
                "mortar",
                "mortars",
                "mortar_fire",
                "howitzer",
                "rocket",
                "rockets",
                "mlrs",
                "grad",
                "tank_fire",
                "heavy_fire",
                "heavy_weapons",
                "large_caliber",
                "large_calibre",
            ),
            Category.HEAVY_WEAPONS_FIRE,
        ),
        **dict.fromkeys(
            (
                "gunfire",
                "shooting",
                "shots",
                "shots_fired",
                "small_arms",
                "sniper",
                "sniper_fire",
                "sniping",
                "machine_gun",
                "automatic_fire",
                "firefight",
                "clash",
                "armed_clash",
                "exchange_of_fire",
                "ceasefire_violation",
            ),
            Category.SMALL_ARMS_FIRE,
        ),
        **dict.fromkeys(
            ("drone", "drones", "uav", "uavs", "airstrike", "air_strike", "drone_attack"),
            Category.DRONE_STRIKE,
        ),
        **dict.fromkeys(
            ("overflight", "airspace", "aircraft", "helicopter"), Category.AIRSPACE_VIOLATION
        ),
        **dict.fromkeys(
            ("advance", "incursion", "infiltration", "territory"), Category.POSITIONAL_ADVANCE
        ),
        **dict.fromkeys(
            ("fortification", "fortifications", "trench", "trenches", "construction", "works"),
            Category.ENGINEERING_WORKS,
        ),
        **dict.fromkeys(
            ("blockade", "roadblock", "road_block", "checkpoint", "obstruction"),
            Category.OBSTRUCTION_OF_MOVEMENT,
        ),
        **dict.fromkeys(("peacekeepers", "attack_on_pkf", "pkf"), Category.ATTACK_ON_PEACEKEEPERS),
        **dict.fromkeys(
            ("civilian", "civilians", "civilian_casualties", "civilian_casualty"),
            Category.CIVILIAN_HARM,
        ),
        **dict.fromkeys(
            ("arrest", "arrests", "abduction", "kidnapping", "detained", "captured"),
            Category.DETENTION,
        ),
        **dict.fromkeys(
            ("destruction", "damage", "property_damage", "looting", "arson"),
            Category.PROPERTY_DESTRUCTION,
        ),
        **dict.fromkeys(
            ("mine", "mines", "landmine", "landmines", "ied", "uxo", "explosion"),
            Category.MINE_INCIDENT,
        ),
    },
    SourceType: {
        **dict.fromkeys(("op", "post", "observer", "observers"), SourceType.OBSERVATION_POST),
        **dict.fromkeys(
            ("jmc", "centre", "center", "monitoring_center"), SourceType.MONITORING_CENTRE
        ),
        **dict.fromkeys(
            ("mod", "ministry", "statement", "official", "government"),
            SourceType.PARTY_STATEMENT,
        ),
        **dict.fromkeys(("news", "press", "agency", "journalist"), SourceType.MEDIA),
        **dict.fromkeys(("hotline", "resident", "witness"), SourceType.CIVILIAN),
        **dict.fromkeys(("acled", "import", "database"), SourceType.DATASET),
        **dict.fromkeys(("ngos", "deminers", "icrc"), SourceType.NGO),
    },
    TimePrecision: {"date": TimePrecision.DAY, "precise": TimePrecision.EXACT},
    LocationPrecision: {
        **dict.fromkeys(("village", "city", "settlement", "place"), LocationPrecision.TOWN),
        **dict.fromkeys(("exact", "gps", "coordinates"), LocationPrecision.POINT),
        **dict.fromkeys(("district", "province", "area"), LocationPrecision.REGION),
    },
}

_SEPARATORS = re.compile(r"[\s\-/.]+")


def _normal(text: str) -> str:
    return _SEPARATORS.sub("_", text.strip().lower()).strip("_")


def did_you_mean(value: str, codes: list[str]) -> str | None:
    """The code of `codes` that `value` most likely means: the same code written otherwise
    ("Small-Arms Fire"), a word senders use for it ("shelling"), or a close spelling; None
    when nothing is close."""
    word = _normal(value)
    if word in codes:
        return word
    for code_set, words in _WORDS.items():
        meant = words.get(word)
        if meant is not None and {c.value for c in code_set} == set(codes):
            return str(meant)
    close = difflib.get_close_matches(word, codes, n=1, cutoff=0.75)
    return close[0] if close else None
