"""Inline SVG charts for the HTML reports: no script, no external file, every label escaped.

Two shapes cover what the reports plot: horizontal bars with error bars (a metric per system,
or a paired difference per baseline around zero) and vertical bars over integer positions
(position bias), whose axis has one tick per integer, never 2.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Bar", "hbars", "position_bars"]

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value and optional interval; ``accent`` marks the program."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    accent: bool = False


def _num(x: float) -> str:
    return f"{x:.1f}"


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def hbars(title: str, bars: Sequence[Bar], *, css_class: str = "metric-plot") -> Markup:
    """Horizontal bars with whiskers from ``low`` to ``high``; a zero line when values are
    negative (paired differences)."""
    bars = [b for b in bars if _finite(b.value)]
    width, left, right, row = 360, 96, 56, 20
    height = 26 + row * len(bars) + 18
    points = [0.0] + [b.value for b in bars]
    points += [x for b in bars for x in (b.low, b.high) if _finite(x)]
    lo, hi = min(points), max(points)
    if hi - lo < 1e-12:
        hi = lo + 1.0
    span = width - left - right

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * span

    parts = [
        f'<svg class="{escape(css_class)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>',
    ]
    zero = x(0.0)
    for i, b in enumerate(bars):
        y = 24 + i * row
        start, end = sorted((zero, x(b.value)))
        fill = "#d9480f" if b.accent else "#4c6ef5"
        parts.append(
            f'<text x="{left - 6}" y="{_num(y + 11)}" text-anchor="end">{escape(b.label)}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{_num(start)}" y="{y + 2}" width="{_num(max(end - start, 0.5))}"'
            f' height="{row - 8}" fill="{fill}" opacity="0.8"/>'
        )
        if _finite(b.low) and _finite(b.high):
            a, c, m = x(b.low), x(b.high), y + (row - 4) / 2
            parts.append(
                f'<path class="errorbar" d="M{_num(a)},{_num(m)}H{_num(c)}'
                f'M{_num(a)},{_num(m - 4)}v8M{_num(c)},{_num(m - 4)}v8" stroke="#212529" '
                'fill="none"/>'
            )
        label_x = max(x(b.value), x(b.high) if _finite(b.high) else left) + 5
        parts.append(f'<text x="{_num(label_x)}" y="{_num(y + 11)}">{b.value:.3f}</text>')
    axis_y = 24 + row * len(bars) + 2
    parts.append(
        f'<line x1="{_num(zero)}" x2="{_num(zero)}" y1="20" y2="{axis_y}" stroke="#868e96"/>'
    )
    parts.append(f'<text x="{left}" y="{axis_y + 13}" fill="#868e96">{lo:.3g}</text>')
    parts.append(
        f'<text x="{width - right}" y="{axis_y + 13}" text-anchor="end" fill="#868e96">'
        f"{hi:.3g}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def position_bars(title: str, table: Sequence[dict], *, css_class: str = "position-plot") -> Markup:
    """Hit rate by the positive's position: one bar and one integer tick per position.

    Rows whose ``position`` is a range (``"1-5"``) keep their label; rows need ``hit_rate``.
    """
    rows = [r for r in table if "hit_rate" in r]
    width, left, bottom, top = 560, 40, 34, 22
    height = 190
    span = width - left - 10
    step = span / max(len(rows), 1)
    plot_h = height - top - bottom
    parts = [
        f'<svg class="{escape(css_class)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{_num(y)}" y2="{_num(y)}" stroke="#e9ecef"/>'
            f'<text x="{left - 4}" y="{_num(y + 4)}" text-anchor="end">{tick:.1f}</text>'
        )
    for i, r in enumerate(rows):
        rate = float(r["hit_rate"])
        h = plot_h * max(0.0, min(rate, 1.0))
        bx = left + i * step + step * 0.15
        parts.append(
            f'<rect class="bar" x="{_num(bx)}" y="{_num(top + plot_h - h)}" '
            f'width="{_num(step * 0.7)}" height="{_num(h)}" fill="#4c6ef5">'
            f"<title>position {escape(str(r.get('position')))}: {rate:.3f} over "
            f"{escape(str(r.get('cases', '?')))} cases</title></rect>"
        )
        parts.append(
            f'<text class="tick" x="{_num(bx + step * 0.35)}" y="{height - bottom + 14}" '
            f'text-anchor="middle">{escape(str(r.get("position")))}</text>'
        )
    parts.append(
        f'<text x="{left + span / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="#495057">'
        "position of the positive in the candidate list</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))
