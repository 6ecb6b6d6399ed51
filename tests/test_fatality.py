"""The HDX-style fatality escalation core (`alerting/fatality.py`): pure, no broker."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.fatality import FatalityLedger, assess, day_of, still_record

pytestmark = pytest.mark.timeout(60)

#: (incident id, day, killed): versions of a few incidents over a few days
versions = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 40), st.integers(0, 9)),
    max_size=60,
)


def brute_sum(daily: dict[int, int], end: int, window: int) -> int:
    return sum(daily.get(d, 0) for d in range(end - window + 1, end + 1))


@given(versions, st.integers(0, 45), st.integers(1, 10), st.integers(1, 30))
@settings(max_examples=300, deadline=None)
def test_assessment_equals_its_definition(
    puts: list[tuple[str, int, int]], day: int, window: int, lookback: int
) -> None:
    ledger = FatalityLedger()
    latest: dict[str, tuple[int, int]] = {}
    for iid, d, killed in puts:
        ledger.put(iid, d, killed)
        latest[iid] = (d, killed)
    daily: dict[int, int] = {}
    for d, killed in latest.values():
        if killed:
            daily[d] = daily.get(d, 0) + killed
    assert ledger.daily == daily  # each incident counted once, at its latest version
    a = assess(ledger, day, window=window, lookback=lookback, minimum=3, observed_from=-100)
    assert a.total == brute_sum(daily, day, window)
    assert a.peak == max(brute_sum(daily, e, window) for e in range(day - lookback, day))
    assert a.record == (a.total >= max(a.peak, 3) and a.total > 0)


@given(versions, st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_the_ledger_ends_the_same_whatever_the_order_of_incidents(
    puts: list[tuple[str, int, int]], rnd: object
) -> None:
    """Each incident's last version in order; incidents shuffled among themselves."""
    last: dict[str, tuple[int, int]] = {}
    for iid, d, killed in puts:
        last[iid] = (d, killed)
    one, two = FatalityLedger(), FatalityLedger()
    for iid, d, killed in puts:
        one.put(iid, d, killed)
    items = list(last.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    for iid, (d, killed) in items:
        two.put(iid, d, killed)
    assert one.daily == two.daily and one.incidents == two.incidents


def test_forget_and_prune_take_contributions_back() -> None:
    ledger = FatalityLedger()
    assert ledger.put("a", 10, 4) and ledger.put("b", 10, 1) and ledger.put("c", 50, 2)
    assert not ledger.put("a", 10, 4)  # the same version changes nothing
    assert ledger.daily == {10: 5, 50: 2}
    assert ledger.forget("b") and not ledger.forget("b")
    assert ledger.put("a", 11, 0)  # revised to no deaths: it leaves the ledger
    assert ledger.daily == {50: 2} and set(ledger.incidents) == {"c"}
    ledger.put("d", 3, 1)
    ledger.prune(before_day=20)
    assert ledger.daily == {50: 2}


def test_a_record_needs_the_lookback_observed_and_the_minimum() -> None:
    ledger = FatalityLedger()
    for day in range(0, 400, 20):
        ledger.put(f"i{day}", day, 2)  # a steady trickle: 2 deaths every 20 days
    ledger.put("surge", 500, 9)
    kw = {"window": 30, "lookback": 365, "minimum": 5}
    hit = assess(ledger, 500, observed_from=0, **kw)
    assert (hit.total, hit.peak, hit.threshold, hit.record) == (9, 4, 5, True)
    assert not assess(ledger, 500, observed_from=200, **kw).record  # lookback not observed
    assert not assess(ledger, 500, observed_from=0, window=30, lookback=365, minimum=10).record
    assert not assess(ledger, 499, observed_from=0, **kw).record  # the day before: 0 deaths
    # The alert holds while the surge is in the window, and not after.
    assert still_record(ledger, 529, window=30, beaten=5)
    assert not still_record(ledger, 530, window=30, beaten=5)


def test_day_of_is_the_utc_day() -> None:
    assert day_of(0) == 0 and day_of(86_399.9) == 0 and day_of(86_400) == 1 and day_of(-1) == -1


def test_a_record_needs_every_day_it_sums_observed_whole() -> None:
    """Observation began at noon: that day held half its deaths, and a rule of a 2-day
    window over a 4-day lookback fired on the fifth day after, half a day before every day
    its sums cover had been watched."""
    from datetime import UTC, datetime

    from alerting.fatality import first_whole_day

    noon = int(datetime(2021, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    midnight = int(datetime(2021, 5, 1, tzinfo=UTC).timestamp() * 1000)
    may_1 = day_of(midnight / 1000)
    assert first_whole_day(noon) == may_1 + 1 and first_whole_day(midnight) == may_1
    assert first_whole_day(None) is None
    ledger = FatalityLedger()
    ledger.put("x", may_1 + 5, 3)
    fired = [
        d
        for d in range(may_1, may_1 + 10)
        if assess(
            ledger, d, window=2, lookback=4, minimum=1, observed_from=first_whole_day(noon)
        ).record
    ]
    # the sums of May 7 cover May 2 to 7: the first whole days; May 6's reached May 1
    assert fired == [may_1 + 6]
