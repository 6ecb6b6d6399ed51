"""The bench's table and ratios (`streams/bench.py::render`): medians, and the ratio of each
round, whose (b) and (c) ran minutes apart."""

from __future__ import annotations

import pytest
from rich.console import Console

from streams.bench import StageResult, render

pytestmark = pytest.mark.timeout(10)


def result(name: str, seconds: float) -> StageResult:
    return StageResult(name, 100_000, seconds, 500.0, seconds)


def test_medians_and_the_ratio_of_each_round() -> None:
    console = Console(record=True, width=120)
    render(
        {
            "a": [result("a", 1.0), result("a", 1.0)],
            "b": [result("b", 8.0), result("b", 10.0)],  # 12,500 and 10,000 reports/s
            "c": [result("c", 10.0), result("c", 11.0)],  # 10,000 and 9,091
        },
        console,
    )
    out = console.export_text()
    assert "c/b = 0.848" in out  # 9,545.5 / 11,250
    assert "c/b by round: 0.800, 0.909   (median 0.855;" in out
