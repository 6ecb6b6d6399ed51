"""The splitter of a JSON array into the byte spans of its elements (streams/web/jsonsplit.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.web.jsonsplit import SplitError, TooManyElements, is_array, split_array

pytestmark = pytest.mark.timeout(120)


def pieces(body: bytes) -> list[bytes]:
    return [body[start:end] for start, end in split_array(body)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[]", []),
        (b" \r\n\t[ \n ] \n", []),
        (b"[1]", [b"1"]),
        (b"[ 1 , 2 ,3]", [b"1", b"2", b"3"]),
        (b'["a,b", "]", "[", "}", "{"]', [b'"a,b"', b'"]"', b'"["', b'"}"', b'"{"']),
        (b'["\\"", "\\\\", "\\\\\\"]"]', [b'"\\""', b'"\\\\"', b'"\\\\\\"]"']),
        (b'[{"a": [1, {"b": "],"}]}, [[], {}]]', [b'{"a": [1, {"b": "],"}]}', b"[[], {}]"]),
        (b'[{"k":"\xc3\xa9\xe2\x82\xac"}]', [b'{"k":"\xc3\xa9\xe2\x82\xac"}']),
        (b"[\xff\xfe, 2]", [b"\xff\xfe", b"2"]),  # not UTF-8: the item's parser says so
        (b"[1 2, {oops}]", [b"1 2", b"{oops}"]),  # split, not parsed
        pytest.param(
            b"[" * 50_000 + b"]" * 50_000, [b"[" * 49_999 + b"]" * 49_999], id="50000-deep"
        ),
    ],
)
def test_split(body: bytes, expected: list[bytes]) -> None:
    assert pieces(body) == expected


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b"", 0),
        (b"  ", 2),
        (b"{}", 0),
        (b"[", 1),
        (b"[1", 2),
        (b"[1,", 3),
        (b"[,]", 1),
        (b"[1,,2]", 3),
        (b"[1,]", 3),
        (b"[1] x", 4),
        (b"[1][2]", 3),
        (b"[1}", 2),
        (b"[{]}", 2),
        (b"[[}]", 2),
        (b'["open]', 1),
        (b'["\\"]', 1),
        (b'["a\\', 1),
    ],
)
def test_broken_arrays_are_refused_with_where(body: bytes, position: int) -> None:
    with pytest.raises(SplitError) as err:
        split_array(body)
    assert err.value.position == position


def test_is_array() -> None:
    assert is_array(b"[]") and is_array(b" \n[1")
    assert not is_array(b"") and not is_array(b"{}") and not is_array(b'"["')
    assert not is_array(b"\xef\xbb\xbf[]")  # a byte-order mark is not JSON whitespace


def test_too_many_elements_stops_the_scan() -> None:
    assert len(split_array(b"[" + b",".join([b"1"] * 1000) + b"]", max_elements=1000)) == 1000
    with pytest.raises(TooManyElements):
        # broken after the limit: the count is what the caller hears about
        split_array(b"[" + b",".join([b"1"] * 1001) + b",}", max_elements=1000)


# -- properties ---------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
whitespace = st.text(alphabet=" \t\n\r", max_size=3)


@st.composite
def json_arrays(draw: st.DrawFn) -> tuple[list[Any], bytes]:
    items = draw(st.lists(json_values, max_size=8))
    ensure_ascii = draw(st.booleans())
    indent = draw(st.sampled_from([None, 0, 2, "\t"]))

    def ws() -> str:
        return draw(whitespace)

    texts = [json.dumps(item, ensure_ascii=ensure_ascii, indent=indent) for item in items]
    inner = ",".join(ws() + text + ws() for text in texts) if texts else ws()
    return items, (ws() + "[" + inner + "]" + ws()).encode("utf-8", "surrogatepass")


@given(json_arrays())
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_spans_of_any_json_array_parse_back_to_its_items(
    case: tuple[list[Any], bytes],
) -> None:
    items, body = case
    spans = split_array(body)
    assert [json.loads(body[start:end]) for start, end in spans] == items
    for start, end in spans:
        assert body[start : start + 1] not in (b" ", b"\t", b"\n", b"\r")
        assert body[end - 1 : end] not in (b" ", b"\t", b"\n", b"\r")


@given(st.text(alphabet='[]{}",:\\ 01ab\n\t\u00e9', max_size=40))
@example('["\\\\"]')
@example('[{"a":"\\\\\\""}]')
@settings(max_examples=1000, deadline=None)
def test_any_text_is_split_or_refused_and_parses_agree(text: str) -> None:
    body = text.encode()
    try:
        spans = split_array(body)
    except SplitError:
        spans = None
    try:
        doc = json.loads(text)
    except ValueError:
        return  # not JSON: splitting may succeed (items are rejected one by one) or not
    if isinstance(doc, list):
        assert spans is not None, "a valid JSON array was refused"
        assert [json.loads(body[s:e]) for s, e in spans] == doc
    else:
        assert spans is None


@given(st.binary(max_size=64))
@settings(max_examples=500, deadline=None)
def test_any_bytes_are_split_or_refused_never_an_other_error(body: bytes) -> None:
    body = b"[" + body
    try:
        spans = split_array(body)
    except SplitError as exc:
        assert 0 <= exc.position <= len(body)
        return
    previous_end = 1
    for start, end in spans:  # in order, disjoint, inside the brackets, never empty
        assert previous_end <= start < end < len(body)
        previous_end = end


def test_time_is_linear_in_the_body() -> None:
    """Pathological shapes (tiny nested containers, strings of escapes) at 1x and 8x:
    a linear scan takes about 8 times as long, a quadratic one 64 times."""

    def bodies(n: int) -> list[bytes]:
        return [
            b"[[" + b",".join([b"[]"] * n) + b"]]",
            b'[["' + b'","'.join([b'\\"x'] * n) + b'"]]',
            b"[" * n + b"]" * n,
            b'["' + b"\\n" * n + b'"]',
        ]

    def best_of_three(body: bytes) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            split_array(body)
            times.append(time.perf_counter() - started)
        return min(times)

    for small, large in zip(bodies(20_000), bodies(160_000), strict=True):
        ratio = best_of_three(large) / max(best_of_three(small), 1e-6)
        assert ratio < 24, (large[:8], ratio)
    worst = b"[[" + b",".join([b"[]"] * 350_000) + b"]]"  # about 1 MiB, the default limit
    started = time.perf_counter()
    split_array(worst)
    assert time.perf_counter() - started < 3
