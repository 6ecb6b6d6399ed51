"""Normalising names for matching: case-, accent-, punctuation- and spacing-insensitive.

`fold("  XANKƏNDI ") == fold("xankəndi") == "xankandi"`, `fold("AZ  MoD") == "az mod"`.
Letters of every script survive (Cyrillic and Armenian names match themselves); only
diacritics, invisible characters, punctuation and runs of spaces are dropped. Spellings that
differ in their letters (Khankendi, Xankəndi) are separate aliases.
"""

from __future__ import annotations

import re
import unicodedata

from schemas.report import INVISIBLE_CHAR

_SEPARATORS = re.compile(r"[\W_]+")
# Letters that NFKD does not decompose to a base letter plus marks.
_LETTERS = str.maketrans({"ə": "a", "ı": "i", "ł": "l", "ø": "o", "ß": "ss", "đ": "d"})  # noqa: RUF001


def fold(name: str) -> str:
    """The matching key of a name: lower case, no diacritics, words joined by one space."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_LETTERS))
    # invisible characters (every Cf: zero widths, joiners, direction marks; variation
    # selectors, fillers) are dropped, not read as separators: "A\u200bzerbaijan" is Azerbaijan
    if not text.isascii():  # every invisible character is above U+007F
        text = INVISIBLE_CHAR.sub("", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _SEPARATORS.sub(" ", text).strip()
