"""Normalising names for matching: case-, accent-, punctuation- and spacing-insensitive.

`fold("  XANKƏNDI ") == fold("xankəndi") == "xankandi"`, `fold("AZ  MoD") == "az mod"`.
Letters of every script survive (Cyrillic and Armenian names match themselves); only
diacritics, punctuation and runs of spaces are dropped. Spellings that differ in their
letters (Khankendi, Xankəndi) are separate aliases.
"""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\W_]+")
# Letters that NFKD does not decompose to a base letter plus marks.
_LETTERS = str.maketrans({"ə": "a", "ı": "i", "ł": "l", "ø": "o", "ß": "ss", "đ": "d"})  # noqa: RUF001


def fold(name: str) -> str:
    """The matching key of a name: lower case, no diacritics, words joined by one space."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_LETTERS))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", text).strip()
