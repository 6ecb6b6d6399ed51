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
