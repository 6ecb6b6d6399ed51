"""The window gauges from tally rows (`streams/web/fanout.py::window_gauge_values`)."""

from __future__ import annotations

import pytest

from streams import metrics
from streams.tallies.state import Row
from streams.web.fanout import window_gauge_values

pytestmark = pytest.mark.timeout(10)


def test_window_gauges_carry_incidents_casualties_and_the_window_before() -> None:
    row: Row = {
        "zone": "shusha",
        "party": "az",
        "incidents": 3,
        "reports": 5,
        "killed": 2,
        "wounded": 1,
    }
    before: Row = {**row, "incidents": 7}
    values = window_gauge_values(
        {"24h": [row], "all": [{**row, "incidents": 40}]}, {"24h": [before]}
    )
    assert values == {
        (metrics.INCIDENTS_WINDOW, ("shusha", "az", "24h")): 3,
        (metrics.CASUALTIES_WINDOW, ("shusha", "az", "killed", "24h")): 2,
        (metrics.CASUALTIES_WINDOW, ("shusha", "az", "wounded", "24h")): 1,
        (metrics.INCIDENTS_WINDOW, ("shusha", "az", "all")): 40,
        (metrics.CASUALTIES_WINDOW, ("shusha", "az", "killed", "all")): 2,
        (metrics.CASUALTIES_WINDOW, ("shusha", "az", "wounded", "all")): 1,
        (metrics.INCIDENTS_PREVIOUS_WINDOW, ("shusha", "az", "24h")): 7,
    }


def test_a_zone_and_party_in_one_window_only_is_0_in_the_other() -> None:
    """'Now minus the window before' is a figure when either window is empty."""
    row: Row = {"zone": "shusha", "party": "az", "incidents": 3, "reports": 3}
    row.update(killed=1, wounded=0)
    gone: Row = {"zone": "aghdam-district", "party": "am", "incidents": 2, "reports": 2}
    gone.update(killed=0, wounded=0)
    values = window_gauge_values({"24h": [row], "all": [row]}, {"24h": [gone]})
    assert values[(metrics.INCIDENTS_PREVIOUS_WINDOW, ("shusha", "az", "24h"))] == 0
    assert values[(metrics.INCIDENTS_WINDOW, ("aghdam-district", "am", "24h"))] == 0
    assert values[(metrics.CASUALTIES_WINDOW, ("aghdam-district", "am", "killed", "24h"))] == 0
    assert values[(metrics.INCIDENTS_WINDOW, ("shusha", "az", "24h"))] == 3
    assert values[(metrics.INCIDENTS_PREVIOUS_WINDOW, ("aghdam-district", "am", "24h"))] == 2
    # `all` has no window before: no series for it
    assert not any(k[0] is metrics.INCIDENTS_PREVIOUS_WINDOW and k[1][2] == "all" for k in values)
