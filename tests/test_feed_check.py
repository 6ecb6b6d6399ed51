"""The feed's check counts each line once: a rejected line whose identity cannot be a message
key (a lone surrogate escape) is one rejection, not also an `internal_error`; and a look-alike
identity is no second report."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.tools.feed import FeedSummary, LineChecker

BASE = (
    '{"report_id":%s,"source":%s,"source_type":"media",'
    '"occurred_at":"2023-12-01T10:00:00Z","location":{"lat":39.8,"lon":46.75},"category":"other"}'
)


def line(report_id: str = '"r1"', source: str = '"op-1"') -> bytes:
    return (BASE % (report_id, source)).encode()


def test_a_lone_surrogate_in_the_source_is_counted_once() -> None:
    summary = FeedSummary()
    checker = LineChecker(summary)
    assert checker.check(1, line(source='"op-\\ud800"')) is None
    assert summary.lines == 1
    assert summary.rejected == {"invalid_encoding": 1}, summary.rejected
    assert summary.rejected_total == 1
    assert [reason for _, reason, _ in summary.examples] == ["invalid_encoding"]


@settings(max_examples=200, deadline=2000)
@given(
    st.sampled_from(["report_id", "source"]),
    st.integers(0xD800, 0xDFFF),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=4),
)
def test_any_lone_surrogate_line_is_one_rejection(field: str, code: int, text: str) -> None:
    value = json.dumps(text)[:-1] + f'\\u{code:04x}"'
    summary = FeedSummary()
    LineChecker(summary).check(1, line(**{field: value}))
    assert summary.rejected_total == 1 and "internal_error" not in summary.rejected, summary


def test_a_look_alike_identity_is_not_counted_as_a_second_report() -> None:
    summary = FeedSummary()
    checker = LineChecker(summary)
    checker.check(1, line())
    for n, suffix in enumerate(("\\udb40\\udc31", "\\ufe0f", "\\u3164"), start=2):
        checker.check(n, line(report_id=f'"r1{suffix}"'))
    assert summary.accepted == 1, summary
    assert summary.rejected == {"invalid_value": 3}, summary.rejected
