# ruff: noqa: RUF001 (Armenian, Azerbaijani, Cyrillic and Hebrew texts are meant)
"""What the security review found reaching the monitor as sent, refused now (schemas/report.py):

* identities that look alike but differ: white space other than the ASCII space U+0020 inside
  `report_id` / `source` (`"OP7 2026/118"` and `"OP7\\u00a02026/118"` were two reports), and
  spellings not in Unicode NFKC (full-width letters, ligatures, other compatibility forms);
* control and format characters in the free-text party fields and the place (a NUL or an
  ANSI escape reached CSV exports and terminals; `"\\u202enajiabrezA"` showed as
  "Azerbaijan"), and controls and direction overrides in a description.

And what looks like them but is real text stays valid: Armenian and Azerbaijani names,
descriptions with tabs, newlines and direction marks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import report as schema
from schemas.codes import RejectReason
from schemas.report import INVISIBLE_CHAR, Report, WithdrawnReport, nfkc_stable
from schemas.validation import Rejection
from tests.test_validation import report
from tests.test_validation_strict import agrees, check, rejected, withdrawal
from tests.test_web_api import Harness, serve
from tests.test_web_api import report as api_report

pytestmark = pytest.mark.timeout(120)  # hypothesis runs included

IDENTITIES = ["report_id", "source"]

#: White space beyond ASCII: Unicode's White_Space but U+0020 and the controls.
WIDE_SPACES = [
    "\u00a0",  # no-break space: a spreadsheet's copy
    "\u1680",
    "\u2000",
    "\u2002",  # en space
    "\u2003",  # em space
    "\u2007",  # figure space
    "\u2009",  # thin space
    "\u200a",
    "\u202f",  # narrow no-break space
    "\u205f",
    "\u3000",  # ideographic space
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
]


#: The Unicode name aliases of the control characters the tests use (they have no name).
ALIASES = {
    "\x00": "NULL",
    "\x01": "START OF HEADING",
    "\x07": "ALERT",
    "\x08": "BACKSPACE",
    "\t": "CHARACTER TABULATION",
    "\n": "LINE FEED",
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x1f": "INFORMATION SEPARATOR ONE",
    "\x7f": "DELETE",
    "\x80": "PADDING CHARACTER",
    "\x85": "NEXT LINE",
    "\x9b": "CONTROL SEQUENCE INTRODUCER",
}


def _named(char: str) -> str:
    """How a message names `char`: `U+XXXX (ITS NAME)`, a control by its alias."""
    return f"U+{ord(char):04X} ({unicodedata.name(char, '') or ALIASES[char]})"


# -- identities: the only white space is U+0020 ----------------------------------------------
def test_the_spreadsheet_copy_of_an_id_is_not_a_second_report() -> None:
    # the review's case: both were accepted, and one report counted twice
    kept = check(report(report_id="OP7 2026/118"))
    assert isinstance(kept, Report) and kept.report_id == "OP7 2026/118"
    r = rejected(report(report_id="OP7\u00a02026/118"), RejectReason.INVALID_VALUE, "report_id")
    assert [e.type for e in r.errors] == ["string_pattern_mismatch"], r.errors
    assert "U+00A0 (NO-BREAK SPACE) at position 3" in r.message, r.message
    assert "'OP7 2026/118'" in r.message, r.message  # what to send instead


@pytest.mark.parametrize("field", IDENTITIES)
@pytest.mark.parametrize("char", WIDE_SPACES)
def test_white_space_other_than_the_space_inside_an_id_is_refused(field: str, char: str) -> None:
    value = f"OP7{char}2026/118"
    for doc in (report(**{field: value}), withdrawal(**{field: value})):
        r = rejected(doc, RejectReason.INVALID_VALUE, field)
        assert f"{_named(char)} at position 3" in r.message, r.message
        assert "whitespace" in r.message and "U+0020" in r.message, r.message
    agrees(report(**{field: value}))


@pytest.mark.parametrize("field", IDENTITIES)
@pytest.mark.parametrize("char", ["\t", "\n", "\r", "\x0b", "\x0c", "\x85"])
def test_tabs_and_line_breaks_inside_an_id_are_refused_as_controls(field: str, char: str) -> None:
    value = f"OP7{char}2026"
    for doc in (report(**{field: value}), withdrawal(**{field: value})):
        r = rejected(doc, RejectReason.INVALID_VALUE, field)
        assert f"control character {_named(char)} at position 3" in r.message, r.message
    agrees(report(**{field: value}))


# -- identities: in NFKC ---------------------------------------------------------------------
NOT_NFKC = [
    # (value, first character not in NFKC, its position, the NFKC spelling)
    ("\uff2f\uff307-118", "\uff2f", 0, "OP7-118"),  # full-width letters
    ("op-\uff11\uff12", "\uff11", 3, "op-12"),  # full-width digits
    ("\ufb01re-1", "\ufb01", 0, "fire-1"),  # ligature
    ("r\u00b2", "\u00b2", 1, "r2"),  # superscript
    ("\u2460-7", "\u2460", 0, "1-7"),  # circled digit
    ("op-\u2163", "\u2163", 3, "op-IV"),  # Roman numeral
    ("ca\u017ftle", "\u017f", 2, "castle"),  # long s
    ("op\u2024x", "\u2024", 2, "op.x"),  # one dot leader
]


@pytest.mark.parametrize("field", IDENTITIES)
@pytest.mark.parametrize(("value", "char", "at", "nfkc"), NOT_NFKC)
def test_an_id_not_in_nfkc_is_refused_saying_its_nfkc_spelling(
    field: str, value: str, char: str, at: int, nfkc: str
) -> None:
    assert unicodedata.is_normalized("NFC", value) and unicodedata.normalize("NFKC", value) == nfkc
    for doc in (report(**{field: value}), withdrawal(**{field: value})):
        r = rejected(doc, RejectReason.INVALID_VALUE, field)
        assert [(e.field, e.type) for e in r.errors] == [(field, "not_nfkc")], r.errors
        assert "not in Unicode normalization form KC (NFKC)" in r.message, r.message
        assert f"{_named(char)} at position {at}" in r.message, r.message
        assert repr(nfkc) in r.message, r.message
    kept = check(report(**{field: nfkc}))
    assert isinstance(kept, Report) and getattr(kept, field) == nfkc
    agrees(report(**{field: value}))


def test_an_id_not_in_nfc_is_named_not_nfc_alone() -> None:
    # NFKC is the stricter form: a spelling in neither is named by the NFC rule, as before
    for value in ("cafe\u0301-1", "\ufb01e\u0301"):
        r = rejected(report(report_id=value), RejectReason.INVALID_VALUE, "report_id")
        assert [e.type for e in r.errors] == ["not_nfc"], r.errors


def test_both_identity_parts_not_in_nfkc_are_named() -> None:
    r = rejected(report(source="\uff21\uff3a", report_id="\ufb01re-1"), RejectReason.INVALID_VALUE)
    assert [(e.field, e.type) for e in r.errors] == [
        ("source", "not_nfkc"),
        ("report_id", "not_nfkc"),
    ], r.errors
    assert r.message.startswith("source: ") and "; report_id: " in r.message, r.message


LOOK_ALIKE_IDS = [
    "OP7 2026/118",
    "Ստեփանակերտ-118",  # Armenian
    "Պաշտպանության նախարարություն",
    "Երևան-3",  # Armenian spelling: ech-yiwn U+0587 is a letter, kept though not NFKC
    "Şuşa/2026-7",  # Azerbaijani
    "Xankəndi 12",
    "Ağdam İ-3 ı",
    "МО АР 7",  # Cyrillic
    "café-1",  # in NFC
    "a b c",
]


@pytest.mark.parametrize("value", LOOK_ALIKE_IDS)
def test_armenian_and_azerbaijani_ids_stay_valid_as_sent(value: str) -> None:
    assert nfkc_stable(value)
    kept = check(report(source=value[:64], report_id=value))
    assert isinstance(kept, Report), kept
    assert (kept.source, kept.report_id) == (value[:64], value)
    gone = check(withdrawal(source=value[:64], report_id=value))
    assert isinstance(gone, WithdrawnReport), gone
    assert gone.key == kept.key
    agrees(report(source=value[:64], report_id=value))


_WIDE = set(WIDE_SPACES) | {"\x85"}
_ID_CHARS = (
    st.characters(exclude_categories=["Cs"])
    | st.sampled_from([*WIDE_SPACES, " ", "\uff21", "\ufb01", "\u00b2", "\u0587", "\u2163"])
    | st.sampled_from(["a", "7", "-", "Ş", "ə", "Ս", "տ"])
)


@settings(max_examples=400, deadline=2000)
@given(st.text(_ID_CHARS, min_size=1, max_size=10))
def test_an_accepted_id_is_nfkc_and_has_no_white_space_but_the_space(value: str) -> None:
    result = check(report(report_id=value))
    plain = (
        nfkc_stable(value)
        and not any(unicodedata.category(c) == "Cc" for c in value)
        and not INVISIBLE_CHAR.search(value)
        and not any(c.isspace() and c != " " for c in value)
        and value.strip() == value != ""
    )
    if isinstance(result, Report):
        assert result.report_id == value  # as sent, never rewritten
        assert nfkc_stable(value)
        assert not _WIDE & set(value)
    assert isinstance(result, Report) == plain, (value, result)
    agrees(report(report_id=value))


# -- party names and places: no control, no format character ---------------------------------
FREE_TEXT = ["perpetrator", "target", "claimant", "location.place"]
CONTROLS = [
    "\x00",
    "\x07",
    "\x08",
    "\t",
    "\n",
    "\r",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9b",
]
FORMATS = [
    "\u202a",  # left-to-right embedding
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override
    "\u2066",  # isolates
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200b",  # zero width space, joiners
    "\u200c",
    "\u200d",
    "\u200e",  # direction marks: in a name, invisible all the same
    "\u200f",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\U000e0041",  # tag letter A
]


def _with(field: str, value: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = report() if base is None else base
    if field == "location.place":
        return {**doc, "location": {"place": value}}
    return {**doc, field: value}


@pytest.mark.parametrize("field", FREE_TEXT)
@pytest.mark.parametrize("char", CONTROLS + FORMATS)
def test_controls_and_format_characters_in_a_name_are_refused(field: str, char: str) -> None:
    value = f"AZ{char}red"
    kind = "control" if unicodedata.category(char) == "Cc" else "invisible"
    for doc in (_with(field, value), _with(field, value, withdrawal())):
        r = rejected(doc, RejectReason.INVALID_VALUE, field)
        assert [e.type for e in r.errors] == ["string_pattern_mismatch"], r.errors
        assert f"the {kind} character {_named(char)} at position 2" in r.message, r.message
    agrees(_with(field, value))


def test_the_reviewed_names_are_refused() -> None:
    # shown as "Azerbaijan" on the live page
    r = rejected(report(perpetrator="\u202enajiabrezA"), RejectReason.INVALID_VALUE, "perpetrator")
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 0" in r.message, r.message
    # a NUL and an ANSI escape into CSV exports and terminals
    for field in ("perpetrator", "target", "claimant"):
        r = rejected(report(**{field: "\u202eAZ\u0000\u001b[31mred"}), RejectReason.INVALID_VALUE)
        assert r.errors[0].field == field and "U+0000 (NULL)" in r.message, r.message
    r = rejected(report(target="AZ\x1b[31m"), RejectReason.INVALID_VALUE, "target")
    assert "U+001B (ESCAPE) at position 2" in r.message, r.message


LOOK_ALIKE_NAMES = [
    "Şuşa",
    "Ստեփանակերտ",
    "Xankəndi",
    "Ağdərə",
    "Степанакерт",
    "Armenian Armed Forces",
    "AZ MoD",
    "civilians",
    "Military Forces of Azerbaijan (2003-)",
    "Shusha\u00a0town",  # white space other than U+0020 is no rule for names
    "",  # an empty party name was, and is, valid
]


@pytest.mark.parametrize("field", FREE_TEXT)
@pytest.mark.parametrize("value", LOOK_ALIKE_NAMES)
def test_armenian_and_azerbaijani_names_and_places_stay_valid(field: str, value: str) -> None:
    if field == "location.place" and not value:
        return  # a place is at least one character
    kept = check(_with(field, value))
    assert isinstance(kept, Report), kept
    got = kept.location.place if field == "location.place" else getattr(kept, field)
    assert got == value
    assert isinstance(check(_with(field, value, withdrawal())), WithdrawnReport)
    agrees(_with(field, value))


@settings(max_examples=300, deadline=2000)
@given(
    st.sampled_from(FREE_TEXT),
    st.text(
        st.characters(exclude_categories=["Cs"]) | st.sampled_from(CONTROLS + FORMATS),
        min_size=1,
        max_size=12,
    ),
)
def test_a_name_is_accepted_exactly_when_it_holds_no_control_or_invisible_character(
    field: str, value: str
) -> None:
    result = check(_with(field, value))
    clean = not any(unicodedata.category(c) in ("Cc", "Cf") for c in value)
    clean = clean and not INVISIBLE_CHAR.search(value)
    assert isinstance(result, Report) == clean, (value, result)
    if not clean:
        assert isinstance(result, Rejection) and result.reason is RejectReason.INVALID_VALUE
        assert result.errors[0].field == field, result
    agrees(_with(field, value))


# -- descriptions: free text, but no other control and no direction override -----------------
DESCRIPTION_REFUSED = [
    "\x00",
    "\x01",
    "\x08",
    "\x0b",  # vertical tab
    "\x0c",  # form feed
    "\x1b",
    "\x1f",
    "\x7f",
    "\x80",
    "\x85",
    "\x9b",  # C1 control sequence introducer
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


@pytest.mark.parametrize("char", DESCRIPTION_REFUSED)
def test_controls_and_direction_overrides_in_a_description_are_refused(char: str) -> None:
    value = f"Shelling at dusk.{char} Two houses hit."
    kind = "control" if unicodedata.category(char) == "Cc" else "direction control"
    for doc in (report(description=value), withdrawal(description=value)):
        r = rejected(doc, RejectReason.INVALID_VALUE, "description")
        assert f"the {kind} character {_named(char)} at position 17" in r.message, r.message
    agrees(report(description=value))


DESCRIPTIONS_KEPT = [
    "Shelling at dusk.\nTwo houses hit.",
    "time\tplace\tkilled\r\n18:40\tŞuşa\t0\r\n",
    "\u200fמקור\u200e: JMC",  # direction marks, as real text writes them
    "Ստեփանակերտ, Şuşa, Xankəndi: gülləbaran edildi.\n",
    "zero\u200bwidth, soft\u00adhyphen, joiner \U0001f468\u200d\U0001f469, BOM \ufeff",
    "line\u2028separator and a no-break\u00a0space",
    "x" * 3990 + "\n\t\r" * 3 + "y",
]


@pytest.mark.parametrize("value", DESCRIPTIONS_KEPT)
def test_descriptions_with_newlines_tabs_and_direction_marks_stay_valid(value: str) -> None:
    kept = check(report(description=value))
    assert isinstance(kept, Report) and kept.description == value, kept
    assert isinstance(check(withdrawal(description=value)), WithdrawnReport)
    agrees(report(description=value))


@settings(max_examples=300, deadline=2000)
@given(
    st.text(
        st.characters(exclude_categories=["Cs"]) | st.sampled_from(DESCRIPTION_REFUSED + FORMATS),
        max_size=20,
    )
)
def test_a_description_is_refused_exactly_for_controls_and_direction_overrides(value: str) -> None:
    result = check(report(description=value))
    refused = any(
        (unicodedata.category(c) == "Cc" and c not in "\t\n\r")
        or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069
        for c in value
    )
    assert isinstance(result, Rejection) == refused, (value, result)
    agrees(report(description=value))


# -- messages ---------------------------------------------------------------------------------
def test_every_control_character_is_named_by_its_unicode_alias() -> None:
    for char, name in ALIASES.items():
        assert unicodedata.lookup(name) == char, (hex(ord(char)), name)
    controls = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"]
    assert sorted(schema.CONTROL_NAMES) == controls
    for char, name in schema.CONTROL_NAMES.items():
        assert unicodedata.lookup(name) == char, (hex(ord(char)), name)
        assert schema.char_name(char) == f"U+{ord(char):04X} ({name})"


# -- the HTTP API: the review's requests ------------------------------------------------------
@pytest.fixture
async def api() -> AsyncIterator[Harness]:
    async for harness in serve():
        yield harness


async def test_the_api_takes_one_of_two_look_alike_ids_and_refuses_the_rest(api: Harness) -> None:
    batch = [
        api_report(report_id="OP7 2026/118"),
        api_report(report_id="OP7\u00a02026/118"),
        api_report(report_id="\uff2f\uff307 2026/118"),
        api_report(perpetrator="\u202enajiabrezA"),
        api_report(perpetrator="\u202eAZ\u0000\u001b[31mred"),
        api_report(location={"place": "\u202eahsuhS"}),
        api_report(description="fire\x1b[2J"),
    ]
    status, body = await api.post(batch)
    assert status == 202, body
    assert [a["index"] for a in body["accepted"]] == [0], body
    rejected = body["rejected"]
    assert [r["index"] for r in rejected] == [1, 2, 3, 4, 5, 6], body
    assert {r["reason"] for r in rejected} == {"invalid_value"}, body
    fields = [[e["field"] for e in r["errors"]] for r in rejected]
    assert fields == [
        ["report_id"],
        ["report_id"],
        ["perpetrator"],
        ["perpetrator"],
        ["location.place"],
        ["description"],
    ], body
    assert len(api.producer.on("ceasefire.reports")) == 1
    assert len(api.producer.dead_letters()) == 6
