"""Split a JSON array into the byte spans of its top-level elements, without parsing them.

The HTTP API validates each report of a batch from the bytes the client sent, so that a
rejected item reaches the dead-letter topic exactly as it was sent (not re-serialised),
and one malformed item does not sink its neighbours. This module only finds where each
element begins and ends: it tracks strings (with their escapes) and bracket nesting, and
leaves everything else to the report validator, which parses each span on its own.

One pass over the body, with regular expressions jumping over the bytes that cannot
change the structure: linear in the size of the body, whatever it holds. Nesting is
tracked with a list, not recursion, so any depth is fine. UTF-8 never uses bytes below
0x80 inside a multi-byte character, so scanning bytes for ASCII punctuation is safe even
when the body is not valid UTF-8 (the validator reports that per item).
"""

from __future__ import annotations

import re

_QUOTE, _COMMA = ord('"'), ord(",")
_OPEN_ARRAY, _CLOSE_ARRAY = ord("["), ord("]")
_OPEN_OBJECT, _CLOSE_OBJECT = ord("{"), ord("}")
_CLOSER = {_OPEN_ARRAY: _CLOSE_ARRAY, _OPEN_OBJECT: _CLOSE_OBJECT}
_WHITESPACE = b" \t\n\r"  # JSON's insignificant whitespace (RFC 8259), nothing more

# Outside strings only these bytes matter; between top-level elements a comma does too.
_STRUCTURE_TOP = re.compile(rb'[\[\]{}",]')
_STRUCTURE_NESTED = re.compile(rb'[\[\]{}"]')
# The rest of a string after its opening quote: runs of plain bytes or escape pairs, then
# the closing quote. Possessive quantifiers: no backtracking, so linear in the string.
_STRING_REST = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_WHITESPACE = re.compile(rb"[^ \t\n\r]")


class SplitError(ValueError):
    """The body starts as an array but its structure is broken (so no element can be
    trusted to begin or end where it seems to)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at byte {position}")
        self.position = position


class TooManyElements(ValueError):
    """The array has more elements than the caller accepts (found before scanning on)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} elements")
        self.limit = limit


def is_array(body: bytes) -> bool:
    """Whether the first significant byte of `body` opens a JSON array."""
    m = _NOT_WHITESPACE.search(body)
    return m is not None and body[m.start()] == _OPEN_ARRAY


def split_array(body: bytes, *, max_elements: int | None = None) -> list[tuple[int, int]]:
    """The `(start, end)` byte offsets of each top-level element of the JSON array in
    `body`, without surrounding whitespace: `body[start:end]` is the element as sent.

    Raises `SplitError` when the body is not a well-bracketed array: a string or bracket
    left open, a closing bracket of the wrong kind, an empty element (`[1,,2]`, `[1,]`),
    or anything but whitespace after the closing bracket. Elements are not parsed: `[1 2]`
    is one element, `1 2`, which its own parser then rejects. Raises `TooManyElements` as
    soon as the array has more than `max_elements`, so a flood of tiny elements is not
    scanned to its end.
    """
    first = _NOT_WHITESPACE.search(body)
    if first is None or body[first.start()] != _OPEN_ARRAY:
        raise SplitError("not a JSON array", first.start() if first else len(body))
    spans: list[tuple[int, int]] = []
    expected_closers: list[int] = []  # of the containers open inside the current element
    element_begin = pos = first.end()
    while True:
        structure = _STRUCTURE_NESTED if expected_closers else _STRUCTURE_TOP
        m = structure.search(body, pos)
        if m is None:
            raise SplitError("the array is not closed", len(body))
        at = m.start()
        byte = body[at]
        pos = at + 1
        if byte == _QUOTE:
            rest = _STRING_REST.match(body, pos)
            if rest is None:
                raise SplitError("a string is not closed", at)
            pos = rest.end()
        elif byte in _CLOSER:
            expected_closers.append(_CLOSER[byte])
        elif expected_closers and byte in (_CLOSE_ARRAY, _CLOSE_OBJECT):
            if expected_closers.pop() != byte:
                raise SplitError(f"unexpected {chr(byte)!r}", at)
        elif byte in (_CLOSE_ARRAY, _COMMA):
            span = _trimmed(body, element_begin, at)
            if span is not None:
                spans.append(span)
                if max_elements is not None and len(spans) > max_elements:
                    raise TooManyElements(max_elements)
            elif byte == _COMMA or spans:  # `[,` `[1,,` or `[1,]`; only `[]` may be empty
                raise SplitError("empty array element", at)
            if byte == _CLOSE_ARRAY:
                trailing = _NOT_WHITESPACE.search(body, pos)
                if trailing is not None:
                    raise SplitError("data after the array", trailing.start())
                return spans
            element_begin = pos
        else:  # a `}` at the top level of the array
            raise SplitError(f"unexpected {chr(byte)!r}", at)


def _trimmed(body: bytes, begin: int, end: int) -> tuple[int, int] | None:
    """`body[begin:end]` without surrounding whitespace, as offsets; None if only whitespace."""
    m = _NOT_WHITESPACE.search(body, begin, end)
    if m is None:
        return None
    end_ = end
    while body[end_ - 1] in _WHITESPACE:
        end_ -= 1
    return m.start(), end_
