"""Party codes from the names reports use (SPEC.md, "Parties").

`ALIASES` lists, per canonical code, the names reports use for that party. Matching
folds case, diacritics, punctuation and spacing (`text.fold`), so "AZ  MoD", "az-mod"
and "Az MoD" are one alias, and every code matches itself ("ru-pkf" == "RU PKF").

Rules:

* `None`, an empty or blank name, "unknown", "unidentified" -> `unknown`.
* A leading "the" is ignored ("the Azerbaijani side" is "Azerbaijani side").
* A name that matches no alias -> `unknown`; the classifier keeps it verbatim
  (`perpetrator_raw`, `target_raw`) so an analyst can still read who was named.
* A target may also be the civilian population -> "civilians" (`CIVILIAN_ALIASES`, and
  ACLED's "Civilians (Azerbaijan)", "Civilians (Armenia)"... whatever the country).
* A claimant (the party a source speaks for) is matched like a perpetrator; no claimant
  or a blank one -> None (the source speaks for itself).
* ACLED actor names: a regime-period group "(2003-)" or "(1998-2018)" is ignored wherever
  it stands ("Military Forces of Azerbaijan (2003-)" is "Military Forces of Azerbaijan");
  a name that matches nothing then but has words after that group is a unit of the actor
  before it ("Military Forces of Azerbaijan (2003-) State Border Service" -> `az`) unless
  the whole name is an alias of its own ("Military Forces of Russia (2000-) Peacekeeping
  Operation" -> `ru-pkf`, while the bare "Military Forces of Russia (2000-)" is not a
  party of this theatre -> `unknown`, raw kept). docs/parties.md has the whole table.

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

import re
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
        "Ministry of Defence of the Republic of Azerbaijan",
        "Ministry of Defense of the Republic of Azerbaijan",
        "Azerbaijani Ministry of Defence",
        "Azerbaijani Ministry of Defense",
        "Azerbaijan Ministry of Defence",
        "Azerbaijan Ministry of Defense",
        "Azerbaijani Defence Ministry",
        "Azerbaijani Defense Ministry",
        "Azerbaijan Defence Ministry",
        "Azerbaijan Defense Ministry",
        "Azerbaijan's Defence Ministry",
        "Azerbaijan's Defense Ministry",
        "Azerbaijan's Ministry of Defence",
        "Azerbaijan's Ministry of Defense",
        "Defence Ministry of Azerbaijan",
        "Defense Ministry of Azerbaijan",
        "MoD of Azerbaijan",
        "AFA",
        # ACLED actor names (regime periods such as "(2003-)" are ignored, see the rules)
        "Military Forces of Azerbaijan",
        "Police Forces of Azerbaijan",
        "Azərbaycan",
        "Azərbaycan Ordusu",
        "Azərbaycan Silahlı Qüvvələri",
        "Azərbaycan Müdafiə Nazirliyi",
        "Azərbaycan Respublikasının Müdafiə Nazirliyi",
        "Минобороны Азербайджана",
        "Министерство обороны Азербайджана",
        "Азербайджан",
        "азербайджанская сторона",
        "ВС Азербайджана",
        "Вооруженные силы Азербайджана",
    ),
    Party.AM: (
        "am",
        "Armenia",
        "Armenian",
        "Armenian side",
        "Armenian Armed Forces",
        "Armenian forces",
        "Armenian army",
        "Armenian troops",
        "Armenian military",
        "Armed Forces of Armenia",
        "Armenia Armed Forces",
        "AM MoD",
        "Armenia MoD",
        "Armenian MoD",
        "Ministry of Defence of Armenia",
        "Ministry of Defense of Armenia",
        "Ministry of Defence of the Republic of Armenia",
        "Ministry of Defense of the Republic of Armenia",
        "Armenian Ministry of Defence",
        "Armenian Ministry of Defense",
        "Armenia Ministry of Defence",
        "Armenia Ministry of Defense",
        "Armenian Defence Ministry",
        "Armenian Defense Ministry",
        "Armenia Defence Ministry",
        "Armenia Defense Ministry",
        "Armenia's Defence Ministry",
        "Armenia's Defense Ministry",
        "Armenia's Ministry of Defence",
        "Armenia's Ministry of Defense",
        "Defence Ministry of Armenia",
        "Defense Ministry of Armenia",
        "MoD of Armenia",
        "Military Forces of Armenia",
        "Police Forces of Armenia",
        "Ermənistan",
        "Ermənistan Silahlı Qüvvələri",
        "Армения",
        "армянская сторона",
        "ВС Армении",
        "Вооруженные силы Армении",
        "Минобороны Армении",
        "Министерство обороны Армении",
        "Հայաստան",
        "ՀՀ ԶՈւ",
        "ՀՀ ՊՆ",
        "ՀՀ պաշտպանության նախարարություն",
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
        "Artsakh Ministry of Defence",
        "Artsakh Ministry of Defense",
        "Artsakh MoD",
        "Artsakh Defence Ministry",
        "Artsakh Defense Ministry",
        "Artsakh's Defence Ministry",
        "Artsakh's Defense Ministry",
        "Artsakh's Ministry of Defence",
        "Artsakh's Ministry of Defense",
        "Defence Ministry of Artsakh",
        "Defense Ministry of Artsakh",
        "Ministry of Defence of Artsakh",
        "Ministry of Defense of Artsakh",
        "Ministry of Defence of the Republic of Artsakh",
        "Ministry of Defense of the Republic of Artsakh",
        "NKR MoD",
        "NKR Ministry of Defence",
        "NKR Ministry of Defense",
        "NKR",
        "Republic of Artsakh",
        "Nagorno-Karabakh Republic",
        "NKR: Nagorno-Karabakh Republic",
        "Military Forces of Artsakh",
        "Military Forces of the Republic of Artsakh",
        "Military Forces of Nagorno-Karabakh",
        "Military Forces of the Nagorno-Karabakh Republic",
        "Military Forces of NKR",
        "Police Forces of Artsakh",
        "Police Forces of the Republic of Artsakh",
        "Police Forces of Nagorno-Karabakh",
        "Police Forces of the Nagorno-Karabakh Republic",
        "Karabakh Armenian forces",
        "Karabakh forces",
        "local Armenian formations",
        "illegal Armenian armed formations",
        "illegal Armenian armed detachments",
        "Армия обороны Арцаха",
        "Армия обороны Нагорного Карабаха",
        "Армия обороны НКР",
        "Минобороны Арцаха",
        "Минобороны НКР",
        "Министерство обороны Арцаха",
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
        "Russian peacekeeping contingent command",
        "Military Forces of Russia Peacekeeping Operation",
        "Military Forces of Russia Peacekeeping Forces",
        "Military Forces of Russia Peacekeeping Contingent",
        "Military Forces of Russia Peacekeepers",
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
        "Turkish Ministry of National Defence",
        "Turkish Ministry of National Defense",
        "Turkish MoD",
        "MSB",
        "Milli Savunma Bakanlığı",
        "Military Forces of Turkey",
        "Military Forces of Türkiye",
        "Police Forces of Turkey",
        "Police Forces of Türkiye",
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

#: ACLED's regime period of a state actor: "(2003-)", "(1998-2018)", any dash, any spacing.
_PERIOD = re.compile(r"\(\s*\d{4}\s*[-\u2010-\u2015]\s*(?:\d{4}\s*)?\)")
#: ACLED's civilians, by country: "Civilians (Azerbaijan)", "Civilians (International)".
_ACLED_CIVILIANS = re.compile(r"\s*civilians\s*\([^()]*\)\s*", re.IGNORECASE)


def _check_aliases() -> None:
    seen: dict[str, Party] = {}
    for party, names in ALIASES.items():
        for alias in names:
            key = fold(alias)
            if not key or seen.setdefault(key, party) is not party or key in _CIVILIANS:
                raise AssertionError(f"party alias {alias!r} is empty or ambiguous")
            if _PERIOD.search(alias):
                raise AssertionError(f"party alias {alias!r}: periods are ignored, leave it out")


_check_aliases()

#: A leading English article: ignored ("the Azerbaijani side", as statements write it)
_ARTICLE = re.compile(r"\s*the\s+", re.IGNORECASE)


def _names(raw: str) -> tuple[str, ...]:
    """`raw`, and `raw` without its leading article when it has one."""
    article = _ARTICLE.match(raw)
    return (raw, raw[article.end() :]) if article else (raw,)


def _lookup(raw: str) -> Party | None:
    party = _LOOKUP.get(fold(raw))
    if party is not None:
        return party
    period = _PERIOD.search(raw)
    if period is None:
        return None
    # ACLED: "<actor> (<period>)" or "<actor> (<period>) <unit>".
    party = _LOOKUP.get(fold(_PERIOD.sub(" ", raw)))
    if party is not None:
        return party
    return _LOOKUP.get(fold(raw[: period.start()])) if raw[period.end() :].strip() else None


@lru_cache(maxsize=4096)
def _party(raw: str) -> Party:
    return next(filter(None, map(_lookup, _names(raw))), Party.UNKNOWN)


@lru_cache(maxsize=4096)
def _target(raw: str) -> str:
    for name in _names(raw):
        if fold(name) in _CIVILIANS or _ACLED_CIVILIANS.fullmatch(name):
            return CIVILIANS
    return _party(raw).value


def party_code(raw: str | None) -> Party:
    """The party a name means; `unknown` when empty or unmatched."""
    if raw is None:
        return Party.UNKNOWN
    return _party(raw)


def claimant_code(raw: str | None) -> Party | None:
    """The party a source speaks for: None when it names none (absent or blank), else as
    `party_code` (an unmatched name is `unknown`; keep it with `kept_raw`)."""
    if raw is None or not raw.strip():
        return None
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
