"""Normalising names for matching: case-, accent-, punctuation- and spacing-insensitive."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")
# Letters that NFKD does not decompose to ASCII.
_FOLD = str.maketrans({"ə": "a", "ı": "i", "ł": "l", "ø": "o", "ß": "ss"})  # noqa: RUF001


def fold(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text).strip()
