"""The analyst dashboard's figures: corrected ones on the window gauges, the ones left on
the counters (which only add) said to be as first reported; every custom variable's
value gives each panel that uses it a series (the comparison with the window before had
none for `all`). Pure: the generated JSON; `tests/test_deploy_prometheus.py` runs the
queries on a real Prometheus."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deploy.grafana.build import dashboard_json

pytestmark = pytest.mark.timeout(60)

#: Series that only add: a revision or withdrawal never takes anything off them.
COUNTERS = re.compile(r"ceasefire_(incidents|casualties)_total|ceasefire:(incidents|casualties)")


def _panels(name: str) -> list[dict[str, Any]]:
    data = dashboard_json(name)
    out = []
    for panel in data["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


def _variables(name: str) -> dict[str, list[str]]:
    return {
        v["name"]: [o["value"] for o in v.get("options", [])] or v.get("query", "").split(",")
        for v in dashboard_json(name)["templating"]["list"]
        if v["type"] == "custom"
    }


def test_panels_on_counters_say_their_figures_are_as_first_reported() -> None:
    """ "Casualties in the time range" summed increase() of the casualties counter: a report
    revised from 3 killed to 0 still showed 3, beside "Since the ceasefire" showing 0."""
    for panel in _panels("analyst"):
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if COUNTERS.search(exprs):
            assert "as first reported" in panel["title"], panel["title"]
            assert "corrections and withdrawals are not subtracted" in panel["description"]


def test_casualty_figures_are_the_corrected_tallies() -> None:
    casualties = [p for p in _panels("analyst") if p["title"].startswith("Casualties in the")]
    assert len(casualties) == 3
    for panel in casualties:
        for target in panel["targets"]:
            assert "ceasefire_casualties_window" in target["expr"]
            assert "increase(" not in target["expr"]


def test_the_comparison_with_the_window_before_never_asks_for_all() -> None:
    """`ceasefire_incidents_previous_window` has 1h, 24h, 7d and 30d: with `$window` = all
    the row "Last all against the window before" showed No data."""
    variables = _variables("analyst")
    assert "all" in variables["window"]
    assert variables["compare"] == ["1h", "24h", "7d", "30d"]
    previous = [
        p for p in _panels("analyst") if any("previous_window" in t["expr"] for t in p["targets"])
    ]
    assert previous
    for panel in previous:
        assert "$window" not in panel["title"]
        for target in panel["targets"]:
            assert "$window" not in target["expr"] and "$compare" in target["expr"]
