"""A value that is none of a field's codes: the rejection names the code the sender most
likely meant (`schemas/hints.py`), and the report is still rejected."""

from __future__ import annotations

from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codes import Category, LocationPrecision, RejectReason, SourceType, TimePrecision
from schemas.hints import did_you_mean
from schemas.validation import MAX_ERROR_CHARS
from tests.test_validation import rejected, report

CATEGORIES = [c.value for c in Category]
SOURCE_TYPES = [s.value for s in SourceType]


@pytest.mark.parametrize(
    ("field", "value", "meant"),
    [
        ("category", "shelling", "heavy_weapons_fire"),
        ("category", "Mortar fire", "heavy_weapons_fire"),
        ("category", "Small-Arms Fire", "small_arms_fire"),
        ("category", "UAV", "drone_strike"),
        ("category", "landmine", "mine_incident"),
        ("category", "drone_strik", "drone_strike"),
        ("source_type", "observation-post", "observation_post"),
        ("source_type", "JMC", "monitoring_centre"),
        ("source_type", "ministry", "party_statement"),
        ("source_type", "acled", "dataset"),
    ],
)
def test_a_rejection_names_the_code_meant(field: str, value: str, meant: str) -> None:
    r = rejected(report(**{field: value}))
    assert r.reason is RejectReason.INVALID_VALUE
    (error,) = r.errors
    assert error.field == field
    assert error.message.startswith(f"did you mean '{meant}'? The codes: ")
    assert len(error.message) <= MAX_ERROR_CHARS  # the whole list still fits, not cut
    assert not error.message.endswith("…")


def test_the_precisions_too() -> None:
    r = rejected(report(time_precision="date"))
    assert r.errors[0].message.startswith("did you mean 'day'?")
    r = rejected(report(location={"lat": 39.758, "lon": 46.748, "precision": "village"}))
    assert r.errors[0].field == "location.precision"
    assert r.errors[0].message.startswith("did you mean 'town'?")


def test_nothing_close_keeps_the_plain_list() -> None:
    r = rejected(report(category="zzz"))
    assert r.errors[0].message.startswith("Input should be 'small_arms_fire'")


def test_a_word_is_meant_for_its_own_field_only() -> None:
    # "civilian" is a source type; as a category it means civilian_harm
    assert did_you_mean("civilian", SOURCE_TYPES) == "civilian"
    assert did_you_mean("civilian", CATEGORIES) == "civilian_harm"
    assert did_you_mean("shelling", SOURCE_TYPES) is None


@given(
    st.text(max_size=60), st.sampled_from([Category, SourceType, TimePrecision, LocationPrecision])
)
def test_a_hint_is_always_one_of_the_codes(value: str, codes: type[StrEnum]) -> None:
    values = [c.value for c in codes]
    meant = did_you_mean(value, values)
    assert meant is None or meant in values
