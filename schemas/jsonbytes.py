"""JSON bytes that cost their length.

orjson 3.13's `dumps` returns bytes that keep its whole output buffer: 8 KiB for a 716-byte
document. A step's output holds thousands of them until the broker acknowledges the sends,
and the freed buffers stay with the process: measured, 50,000 held documents of 716 bytes
took 389 MB, copied to their length 37 MB; a worker draining a backlog peaked about 250 MB
higher for it (docs/operations.md, "State held"). The copy costs about 0.2 microseconds.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any, option: int | None = None) -> bytes:
    """`orjson.dumps`, copied to its length (for output that is held, not hashed and
    dropped)."""
    return bytes(memoryview(orjson.dumps(obj, option=option)))
