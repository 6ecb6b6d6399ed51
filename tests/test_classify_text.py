"""Folding names for matching ignores invisible characters: "A\\u200bzerbaijan" (a zero width
space inside, as copied from a web page) is Azerbaijan, not an unknown party."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codes import Party
from streams.classify.gazetteer import Gazetteer
from streams.classify.parties import party_code
from streams.classify.text import fold

CF = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\xad", "\u202e", "\U000e0031"]
INVISIBLE += ["\ufe0f", "\u034f", "\u3164"]


@pytest.mark.parametrize("char", INVISIBLE)
def test_an_invisible_character_inside_a_party_name_does_not_hide_it(char: str) -> None:
    assert fold(f"A{char}zerbaijan") == "azerbaijan"
    assert party_code(f"A{char}zerbaijan") is Party.AZ
    assert party_code(f"Armenian{char} Armed Forces") is Party.AM


def test_an_invisible_character_inside_a_place_name_does_not_hide_it() -> None:
    gazetteer = Gazetteer.load()
    assert gazetteer.resolve("Shu\u200bsha") == gazetteer.resolve("Shusha") is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.sampled_from(CF), st.integers(0, 12))
def test_no_format_character_changes_a_fold(name: str, char: str, at: int) -> None:
    assert fold(name[:at] + char + name[at:]) == fold(name)
