"""Party codes from the names reports use. Unmatched names are `unknown`; the
classifier keeps the raw name beside the code."""

from __future__ import annotations

from schemas.codes import Party
from schemas.incident import CIVILIANS
from streams.classify.text import fold

ALIASES: dict[Party, tuple[str, ...]] = {
    Party.AZ: (
        "az",
        "azerbaijan",
        "azerbaijani",
        "azerbaijani armed forces",
        "azerbaijani forces",
        "armed forces of azerbaijan",
        "az mod",
        "azerbaijan mod",
        "afa",
        "azerbaijani army",
    ),
    Party.AM: (
        "am",
        "armenia",
        "armenian armed forces",
        "armed forces of armenia",
        "am mod",
        "armenia mod",
        "armenian army",
        "armenian forces",
    ),
    Party.NK: (
        "nk",
        "artsakh",
        "artsakh defence army",
        "artsakh defense army",
        "nk defense army",
        "nk defence army",
        "defense army",
        "defence army",
        "karabakh armenian forces",
        "local armenian formations",
        "nagorno karabakh defense army",
    ),
    Party.RU_PKF: (
        "ru pkf",
        "rpkf",
        "russian peacekeepers",
        "russian peacekeeping contingent",
        "peacekeepers",
        "15th motorised rifle brigade",
        "15th motorized rifle brigade",
    ),
    Party.TR: ("tr", "turkey", "turkiye", "turkish observers", "turkish armed forces"),
    Party.UNKNOWN: ("unknown", "unidentified", "unidentified persons", "n a", "none"),
}

_LOOKUP: dict[str, Party] = {
    fold(alias): party for party, names in ALIASES.items() for alias in names
}
_CIVILIANS = {"civilians", "civilian", "civilian population", "civilians population"}


def party_code(raw: str | None) -> Party:
    if raw is None:
        return Party.UNKNOWN
    return _LOOKUP.get(fold(raw), Party.UNKNOWN)


def target_code(raw: str | None) -> str:
    if raw is not None and fold(raw) in _CIVILIANS:
        return CIVILIANS
    return party_code(raw).value


def is_known(raw: str | None) -> bool:
    """True when `raw` is empty or names a party (so it need not be kept verbatim)."""
    return raw is None or not raw.strip() or fold(raw) in _LOOKUP or fold(raw) in _CIVILIANS
