"""Chart geometry for server-rendered SVG: plain Python, no framework imports.

A chart here is numbers placed in a fixed viewBox; templates draw them with
``<polyline>``, ``<rect>`` and ``<text>``, so pages need no JavaScript library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 720.0
HEIGHT = 240.0
# Room for the y labels on the left and the x labels underneath.
LEFT, RIGHT, TOP, BOTTOM = 72.0, 12.0, 12.0, 36.0
MAX_X_LABELS = 12


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis label at a position along its axis (viewBox units)."""

    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Point:
    """A data point of a line, in viewBox units."""

    x: float
    y: float
    label: str  # for the <title> tooltip


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart."""

    name: str
    css_class: str
    # Runs of consecutive points; a missing value breaks the line.
    segments: tuple[str, ...]
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar, as an SVG rect."""

    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Everything a template needs to draw one chart."""

    title: str
    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    lines: tuple[Line, ...] = ()
    bars: tuple[Bar, ...] = ()

    @property
    def y_label_x(self) -> float:
        """Where the y tick labels end (they are right-aligned)."""
        return self.plot_left - 6

    @property
    def x_label_y(self) -> float:
        """The baseline of the x tick labels."""
        return self.plot_bottom + 16

    @property
    def empty(self) -> bool:
        """True when there is nothing to draw."""
        return not any(line.points for line in self.lines) and not self.bars


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = math.pow(10.0, math.floor(math.log10(value)))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _y_ticks(top: float, unit: str) -> tuple[Tick, ...]:
    plot_height = HEIGHT - TOP - BOTTOM
    return tuple(
        Tick(HEIGHT - BOTTOM - plot_height * i / 4, f"{_fmt(top * i / 4)}{unit}")
        for i in range(5)
    )


def _x_ticks(labels: Sequence[str], xs: Sequence[float]) -> tuple[Tick, ...]:
    step = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return tuple(Tick(xs[i], labels[i]) for i in range(0, len(labels), step))


def _framed(
    title: str,
    labels: Sequence[str],
    xs: Sequence[float],
    top: float,
    unit: str,
    *,
    lines: tuple[Line, ...] = (),
    bars: tuple[Bar, ...] = (),
) -> Chart:
    """The one plot frame (size, margins, ticks) every chart is drawn in."""
    return Chart(
        title=title,
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=HEIGHT - BOTTOM,
        y_ticks=_y_ticks(top, unit),
        x_ticks=_x_ticks(labels, xs),
        lines=lines,
        bars=bars,
    )


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    unit: str = "",
) -> Chart:
    """Lines over labelled x positions.

    Args:
        title: what the chart shows, read out by screen readers.
        labels: one x label per position (a day, a week).
        series: (name, CSS class, values) per line; a value may be None.
        unit: appended to y tick labels ("%", " min").
    """
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    count = len(labels)
    xs = [
        LEFT + (plot_width * i / (count - 1) if count > 1 else plot_width / 2)
        for i in range(count)
    ]
    peak = max(
        (v for _, _, values in series for v in values if v is not None), default=0.0
    )
    top = nice_ceiling(peak)
    lines = []
    for name, css_class, values in series:
        points: list[Point] = []
        segments: list[str] = []
        run: list[str] = []
        for x, value, label in zip(xs, values, labels, strict=True):
            if value is None:
                if run:
                    segments.append(" ".join(run))
                run = []
                continue
            y = HEIGHT - BOTTOM - plot_height * value / top
            points.append(Point(round(x, 1), round(y, 1), f"{label}: {_fmt(value)}"))
            run.append(f"{x:.1f},{y:.1f}")
        if run:
            segments.append(" ".join(run))
        lines.append(Line(name, css_class, tuple(segments), tuple(points)))
    return _framed(title, labels, xs, top, unit, lines=tuple(lines))


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    unit: str = "",
    top: float | None = None,
) -> Chart:
    """One bar per label; a missing value draws no bar.

    Args:
        title: what the chart shows, read out by screen readers.
        labels: one x label per bar.
        values: one value per bar; None draws none.
        unit: appended to tick and bar labels ("%").
        top: the y axis maximum (100 for percentages); by default a nice
            ceiling of the largest value.
    """
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    count = max(len(labels), 1)
    slot = plot_width / count
    ceiling = top or nice_ceiling(max((v for v in values if v is not None), default=0))
    xs = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    bars = tuple(
        Bar(
            x=round(LEFT + slot * i + slot * 0.15, 1),
            y=round(HEIGHT - BOTTOM - plot_height * value / ceiling, 1),
            width=round(slot * 0.7, 1),
            height=round(plot_height * value / ceiling, 1),
            label=f"{label}: {_fmt(value)}{unit}",
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
        if value is not None
    )
    return _framed(title, labels, xs, ceiling, unit, bars=bars)
