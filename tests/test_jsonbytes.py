"""`schemas.jsonbytes.dumps`: orjson's bytes, held at their length."""

from __future__ import annotations

import tracemalloc

import orjson

from schemas import jsonbytes

DOC = {f"field{i}": "x" * 20 for i in range(25)}  # about 700 bytes, a classified report's size


def held_bytes(make: object) -> tuple[int, int]:
    """(bytes allocated for 1,000 held outputs, their total length)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(1000)]  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, sum(map(len, held))


def test_the_same_bytes_as_orjson() -> None:
    assert jsonbytes.dumps(DOC) == orjson.dumps(DOC)
    assert jsonbytes.dumps({"t": 1.5}, option=orjson.OPT_SORT_KEYS) == b'{"t":1.5}'


def test_held_outputs_cost_about_their_length() -> None:
    allocated, length = held_bytes(lambda: jsonbytes.dumps(DOC))
    assert allocated < 1.3 * length + 100_000  # the list and object headers
