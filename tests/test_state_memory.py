"""What the zone stage holds per report: one copy of each shared name, and the shortcut
for single-report incidents equal to the general derivation. Pure, milliseconds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from streams.record.changelog import decode_detail, encode_detail
from streams.record.incident import derive, derive_many
from tests.record_helpers import rv

pytestmark = pytest.mark.timeout(60)

PARTIES = ["az", "am", "ru", "unknown", "tr"]


@given(
    source_type=st.sampled_from(list(SourceType)),
    category=st.sampled_from(list(Category)),
    perpetrator=st.sampled_from(PARTIES),
    claimant=st.one_of(st.none(), st.sampled_from(PARTIES[:3])),
    killed=st.integers(0, 50),
    wounded=st.integers(0, 50),
    time_precision=st.sampled_from(list(TimePrecision)),
    location_precision=st.sampled_from(list(LocationPrecision)),
)
def test_one_report_derives_as_the_general_rule_does(**fields: object) -> None:
    r = rv("pkf-op-1", "r1", **fields)  # type: ignore[arg-type]
    assert derive([r]) == derive_many([r])


def test_names_of_reports_decoded_apart_are_one_object() -> None:
    """Each report arrives as its own JSON: its source, zone and party names are interned,
    so a million reports of a few zones hold a few zone strings, not a million."""
    a = rv("pkf-op-1", "r1", zone="shusha", perpetrator="az", claimant="am")
    b = decode_detail(json.dumps(json.loads(encode_detail(rv("pkf-op-1", "r2")))).encode())
    c = decode_detail(encode_detail(rv("pkf-op-1", "r3", perpetrator="az", claimant="am")))
    assert not isinstance(b, int) and not isinstance(c, int)
    assert a.source is b.source is c.source
    assert a.zone is b.zone is c.zone
    assert a.perpetrator is c.perpetrator and a.claimant is c.claimant
    d = rv("pkf-op-1", "r4", target="nk", place="Martuni")
    e = decode_detail(
        json.dumps(json.loads(encode_detail(rv("op", "r5", target="nk", place="Martuni")))).encode()
    )
    assert not isinstance(e, int)
    assert d.target is e.target and d.place is e.place
