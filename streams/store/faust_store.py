"""A Faust table store that keeps nothing and has nothing to recover.

The stages' Faust tables name the changelog topics and carry partition ownership (the
assignor places a table's partitions with its stage's and publishes who owns what, which
the API's fan-out reads). Their state is ours (`streams/store/changelog.py`). With Faust's
memory store every changelog was read twice on every assignment, once by Faust into an
unread copy in memory, once by us; this store reports every partition as already read, so
Faust's recovery reads nothing and keeps nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores import STORES
from faust.stores.memory import Store

#: Beyond any offset: Faust compares it with the changelog's end and finds nothing to read
#: (its consistency check, which would call this an error, is off in the worker's app).
_BEYOND = 2**62

SCHEME = "ceasefire-nothing"


class NothingStore(Store):  # type: ignore[misc,type-arg]
    def persisted_offset(self, tp: Any) -> int:
        return _BEYOND

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        return None


def register() -> str:
    """Make the store known to Faust; returns the URL to pass as a table's `store`."""
    STORES.aliases[SCHEME] = f"{__name__}:NothingStore"
    return f"{SCHEME}://"
