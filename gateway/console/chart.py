"""The overview's chart, drawn on the server as inline SVG: no script, no inline style (the console's
CSP forbids both), colours from the stylesheet by class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 34, 28


@dataclass(frozen=True)
class Series:
    name: str  # already translated; shown in the legend
    css_class: str  # th-s1, th-s2, ... (console.css gives each its colour)
    values: Sequence[int]


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times 10^n that is at least `value` (so the gridlines read well)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """A line per series over the labelled points (hours), with a y axis scaled to the largest value,
    gridlines, every few labels under the x axis, and a legend. Screen readers get the title and a
    description listing each series' total."""
    points = max((len(s.values) for s in series), default=0)
    top_value = _nice_ceiling(max((max(s.values, default=0) for s in series), default=0) or 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (points - 1) if points > 1 else plot_w / 2)

    def y(v: int) -> float:
        return TOP + plot_h - plot_h * v / top_value

    totals = "; ".join(f"{s.name}: {sum(s.values)}" for s in series)
    parts = [
        f'<svg class="th-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(totals)}</desc>',
    ]
    for k in range(5):
        value = top_value * k // 4
        gy = y(value)
        parts.append(f'<line class="th-grid" x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}"/>')
        parts.append(
            f'<text class="th-axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">{value}</text>'
        )
    every = max(1, points // 8)
    for i, label in enumerate(labels[:points]):
        if i % every == 0 or i == points - 1:
            anchor = "end" if i == points - 1 and points > 1 else "middle"  # the last stays inside
            parts.append(
                f'<text class="th-axis" x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                f"{escape(label)}</text>"
            )
    for s in series:
        coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        if coords:
            parts.append(f'<polyline class="th-line {escape(s.css_class)}" fill="none" points="{coords}"/>')
        for i, v in enumerate(s.values):
            label = escape(labels[i] if i < len(labels) else "")
            parts.append(
                f'<circle class="th-dot {escape(s.css_class)}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5">'
                f"<title>{label} {escape(s.name)}: {v}</title></circle>"
            )
    legend_x = LEFT + 8
    for s in series:
        parts.append(
            f'<rect class="th-key {escape(s.css_class)}" x="{legend_x}" y="6" width="10" height="10"/>'
            f'<text class="th-legend" x="{legend_x + 14}" y="15">{escape(s.name)}</text>'
        )
        legend_x += 14 + 8 * len(s.name) + 18
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every interpolated text is escaped above)
