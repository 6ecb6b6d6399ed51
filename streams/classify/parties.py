"""Party codes from the names reports use (SPEC.md, "Parties").

`ALIASES` lists, per canonical code, the names reports use for that party. Matching
folds case, diacritics, punctuation and spacing (`text.fold`), so "AZ  MoD", "az-mod"
and "Az MoD" are one alias, and every code matches itself ("ru-pkf" == "RU PKF").

Rules:

* `None`, an empty or blank name, "unknown", "unidentified" -> `unknown`.
* A name that matches no alias -> `unknown`; the classifier keeps it verbatim
  (`perpetrator_raw`, `target_raw`) so an analyst can still read who was named.
* A target may also be the civilian population -> "civilians" (`CIVILIAN_ALIASES`).

Aliases are matched literally. Party statements of one side often name the other
with a term that is ambiguous ("Armenian forces" in an Azerbaijani statement may mean
the Karabakh formations); such names map to what they literally say, and the
incident's `verification` (`alleged` for party statements) tells the analyst how
much weight the attribution carries. To add an alias, add it here (any spelling;
it is folded) and add a case to tests/test_classify.py.
"""

# The aliases are deliberately written in Azerbaijani, Russian and Armenian letters.
# ruff: noqa: RUF001

from __future__ import annotations

from functools import lru_cache

from schemas.codes import Party
from schemas.incident import CIVILIANS
from streams.classify.text import fold

ALIASES: dict[Party, tuple[str, ...]] = {
    Party.AZ: (
        "az",
        "Azerbaijan",
        "Azerbaijani",
        "Azerbaijani side",
        "Azerbaijani Armed Forces",
        "Azerbaijani forces",
        "Azerbaijani army",
        "Azerbaijani troops",
        "Azerbaijani military",
        "Armed Forces of Azerbaijan",
        "Azerbaijan Armed Forces",
        "AZ MoD",
        "Azerbaijan MoD",
        "Azerbaijani MoD",
        "Ministry of Defence of Azerbaijan",
        "Ministry of Defense of Azerbaijan",
        "AFA",
        "Azərbaycan",
        "Azərbaycan Ordusu",
        "Azərbaycan Silahlı Qüvvələri",
        "Азербайджан",
        "азербайджанская сторона",
        "ВС Азербайджана",
        "Вооруженные силы Азербайджана",
    ),
    Party.AM: (
        "am",
        "Armenia",
        "Armenian Armed Forces",
        "Armenian forces",
        "Armenian army",
        "Armenian troops",
        "Armed Forces of Armenia",
        "Armenia Armed Forces",
        "AM MoD",
        "Armenia MoD",
        "Armenian MoD",
        "Ministry of Defence of Armenia",
        "Ministry of Defense of Armenia",
        "Ermənistan",
        "Ermənistan Silahlı Qüvvələri",
        "Армения",
        "ВС Армении",
        "Вооруженные силы Армении",
        "Հայաստան",
        "ՀՀ ԶՈւ",
    ),
    Party.NK: (
        "nk",
        "Artsakh",
        "Artsakh Defence Army",
        "Artsakh Defense Army",
        "Defence Army",
        "Defense Army",
        "NK Defence Army",
        "NK Defense Army",
        "NKR Defence Army",
        "NKR Defense Army",
        "Nagorno-Karabakh Defence Army",
        "Nagorno-Karabakh Defense Army",
        "Karabakh Armenian forces",
        "Karabakh forces",
        "local Armenian formations",
        "illegal Armenian armed formations",
        "illegal Armenian armed detachments",
        "Армия обороны Арцаха",
        "Армия обороны Нагорного Карабаха",
        "Армия обороны НКР",
        "Արցախ",
        "Պաշտպանության բանակ",
    ),
    Party.RU_PKF: (
        "ru-pkf",
        "RPKF",
        "PKF",
        "peacekeepers",
        "peacekeeping contingent",
        "Russian peacekeepers",
        "Russian peacekeeping contingent",
        "Russian peacekeeping forces",
        "Russian peacekeeping force",
        "Russian PKF",
        "15th Motorised Rifle Brigade",
        "15th Motorized Rifle Brigade",
        "15th Separate Motorised Rifle Brigade",
        "15th Separate Motorized Rifle Brigade",
        "российские миротворцы",
        "миротворцы",
        "российский миротворческий контингент",
        "РМК",
    ),
    Party.TR: (
        "tr",
        "Turkey",
        "Türkiye",
        "Turkish observers",
        "Turkish Armed Forces",
        "Turkish forces",
        "Turkish military",
        "TAF",
        "TSK",
        "Турция",
    ),
    Party.UNKNOWN: (
        "unknown",
        "unidentified",
        "unidentified persons",
        "unidentified forces",
        "unidentified armed men",
        "not attributed",
        "unattributed",
        "n/a",
        "none",
        "неизвестные",
    ),
}

#: Names of the civilian population as a target.
CIVILIAN_ALIASES: tuple[str, ...] = (
    "civilians",
    "civilian",
    "civilian population",
    "civilian residents",
    "local residents",
    "residents",
    "mülki əhali",
    "мирные жители",
    "мирное население",
)

_LOOKUP: dict[str, Party] = {fold(a): party for party, names in ALIASES.items() for a in names}
_CIVILIANS: frozenset[str] = frozenset(fold(a) for a in CIVILIAN_ALIASES)


def _check_aliases() -> None:
    seen: dict[str, Party] = {}
    for party, names in ALIASES.items():
        for alias in names:
            key = fold(alias)
            if not key or seen.setdefault(key, party) is not party or key in _CIVILIANS:
                raise AssertionError(f"party alias {alias!r} is empty or ambiguous")


_check_aliases()


@lru_cache(maxsize=4096)
def _party(raw: str) -> Party:
    return _LOOKUP.get(fold(raw), Party.UNKNOWN)


@lru_cache(maxsize=4096)
def _target(raw: str) -> str:
    key = fold(raw)
    if key in _CIVILIANS:
        return CIVILIANS
    return _LOOKUP.get(key, Party.UNKNOWN).value


def party_code(raw: str | None) -> Party:
    """The party a name means; `unknown` when empty or unmatched."""
    if raw is None:
        return Party.UNKNOWN
    return _party(raw)


def target_code(raw: str | None) -> str:
    """Like `party_code`, but the civilian population is "civilians"."""
    if raw is None:
        return Party.UNKNOWN.value
    return _target(raw)


def kept_raw(code: str, raw: str | None) -> str | None:
    """The name to keep verbatim beside a code: the raw name when the code is `unknown`
    and the report named someone, else None (the code says it all)."""
    if code == Party.UNKNOWN and raw is not None and raw.strip():
        return raw
    return None
