"""Chart geometry: values land where the axis says they are."""

from __future__ import annotations

import pytest

from worklist.reports import charts


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 1.0),
        (0.7, 1.0),
        (1, 1.0),
        (1.2, 2.0),
        (180, 200.0),
        (222, 250.0),
        (999, 1000.0),
    ],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert charts.nice_ceiling(value) == expected


def test_line_points_sit_on_the_y_scale_and_gaps_break_the_line() -> None:
    chart = charts.line_chart(
        "t", ["a", "b", "c", "d"], [("m", "median", [0, 100, None, 50])]
    )
    line = chart.lines[0]
    assert len(line.segments) == 2 and len(line.points) == 3
    bottom, top = chart.plot_bottom, chart.plot_top
    assert [p.y for p in line.points] == [bottom, top, (bottom + top) / 2]
    assert chart.y_ticks[-1].label == "100"
    assert line.points[0].x == chart.plot_left and line.points[-1].x == chart.plot_right


def test_bar_heights_are_proportional_to_the_fixed_top() -> None:
    chart = charts.bar_chart(
        "t", ["w1", "w2", "w3"], [50.0, None, 100.0], unit="%", top=100
    )
    assert len(chart.bars) == 2
    full = chart.plot_bottom - chart.plot_top
    assert [b.height for b in chart.bars] == [
        pytest.approx(full / 2),
        pytest.approx(full),
    ]
    assert chart.bars[0].label == "w1: 50%"
    assert not chart.empty
    assert charts.bar_chart("t", [], []).empty
