"""Fatality escalation, the HDX Signals way: is the 30-day fatality sum at its highest?

OCHA's HDX Signals flag a place when the sum of conflict fatalities over the last 30 days
reaches the highest 30-day sum of the trailing one year (or three years), above a minimum.
Here the same test runs over the fatalities of incidents (each incident's `killed`, once,
never summed across the reports of one event), by UTC day of event time:

    S(d)  = fatalities of the `window` days ending with day d (d included)
    peak  = max S(e) for every day e of the `lookback` before d (d excluded)
    fires when S(d) >= max(peak, minimum), and the scope fired no alert within `cooldown`

The trailing period must have been observed: with history only since day o, nothing fires
before day o + lookback (a record over two months of data is no record). A firing alert
resolves on the first day whose sum falls below the peak it beat (the record period has
passed), and a later record fires again only after the cooldown.

Plain data and pure functions: `FatalityLedger` holds one scope's fatal incidents (an
incident's contribution is replaced by its newer version and taken back when it is merged
or withdrawn, so the ledger ends the same whatever the order of versions), and `assess`
answers for one day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

DAY_SECONDS = 86_400


def day_of(ts: float) -> int:
    """The UTC day number (days since 1970-01-01) of a unix time."""
    return int(ts // DAY_SECONDS)


def first_whole_day(since_ms: int | None) -> int | None:
    """The first UTC day observed whole from `since` (ms): its own day when it begins at
    midnight, else the next. A record needs every day its sums cover observed: the day
    observation began at noon held only half its deaths."""
    if since_ms is None:
        return None
    return -int(-since_ms // (DAY_SECONDS * 1000))


@dataclass(slots=True)
class FatalityLedger:
    """The fatal incidents of one scope (a zone, or the theatre), by day of event time."""

    #: incident id -> (day, killed); only incidents with deaths are held
    incidents: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: day -> killed, summed over `incidents`
    daily: dict[int, int] = field(default_factory=dict)

    def put(self, incident_id: str, day: int, killed: int) -> bool:
        """The incident's current version: it replaces what the ledger held of it.
        Returns whether the daily sums changed."""
        old = self.incidents.get(incident_id)
        new = (day, killed) if killed > 0 else None
        if old == new:
            return False
        if old is not None:
            self._add(old[0], -old[1])
            del self.incidents[incident_id]
        if new is not None:
            self.incidents[incident_id] = new
            self._add(day, killed)
        return True

    def forget(self, incident_id: str) -> bool:
        """The incident no longer exists (merged or withdrawn)."""
        return self.put(incident_id, 0, 0)

    def _add(self, day: int, killed: int) -> None:
        total = self.daily.get(day, 0) + killed
        if total:
            self.daily[day] = total
        else:
            self.daily.pop(day, None)

    def prune(self, before_day: int) -> None:
        """Drop what no assessment from now on can look at: days before `before_day`."""
        old = [iid for iid, (day, _) in self.incidents.items() if day < before_day]
        for iid in old:
            self.forget(iid)

    def window_sums(self, first_end: int, last_end: int, window: int) -> list[int]:
        """S(e) for every e in [first_end, last_end]: one pass over the days involved."""
        if last_end < first_end:
            return []
        start = first_end - window + 1
        dense = [self.daily.get(d, 0) for d in range(start, last_end + 1)]
        sums: list[int] = []
        running = sum(dense[:window])
        sums.append(running)
        for i in range(window, len(dense)):
            running += dense[i] - dense[i - window]
            sums.append(running)
        return sums


class Assessment(NamedTuple):
    day: int
    total: int  # S(day)
    peak: int  # the highest S(e) of the lookback before day
    threshold: int  # max(peak, minimum): what S(day) has to reach
    observed: bool  # whether the whole lookback lies within observation

    @property
    def record(self) -> bool:
        return self.observed and self.total > 0 and self.total >= self.threshold


def assess(
    ledger: FatalityLedger,
    day: int,
    *,
    window: int,
    lookback: int,
    minimum: int,
    observed_from: int | None,
) -> Assessment:
    """Whether day `day` holds a record 30-day (`window`) sum over the trailing `lookback`
    days. `observed_from`: the first day observed whole (`first_whole_day`; None: unknown,
    nothing is a record)."""
    sums = ledger.window_sums(day - lookback, day, window)
    total = sums[-1]
    peak = max(sums[:-1], default=0)
    observed = observed_from is not None and observed_from <= day - lookback - window + 1
    return Assessment(day, total, peak, max(peak, minimum), observed)


def still_record(ledger: FatalityLedger, day: int, *, window: int, beaten: int) -> bool:
    """Whether a firing record alert holds on `day`: the sum still reaches the peak it beat."""
    return ledger.window_sums(day, day, window)[0] >= beaten
