"""Charts as server-rendered SVG: no JavaScript, no charting package, a few kilobytes each, and
readable without sight — every chart is an ``<svg role="img">`` with a title and a description
that states its figures, and the page shows the same figures as a table beside it.

Three shapes cover the dashboards of issue 7: :func:`bars` (a value per category: fund spending
by institution level), :func:`hbars` (a share per row, 0–100 %: immunization coverage by
vaccine), :func:`columns` (a value per day, several series stacked: cards issued per day by
city).  Text is escaped; numbers are formatted by the caller's ``fmt``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

#: colours with at least 4.5:1 contrast on white (WCAG AA for the text drawn in them)
PALETTE = ("#1d4ed8", "#b45309", "#047857", "#9d174d", "#4338ca", "#0f766e", "#7c2d12", "#374151")
AXIS = "#4b5563"
GRID = "#e5e7eb"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Point:
    label: str
    value: float


def _plain(value: float) -> str:
    return f"{value:,.0f}"


def _nice_top(value: float) -> float:
    """A round number at or above ``value`` for the top of an axis (1, 2, 2.5, 5 × 10ⁿ)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def _frame(width: int, height: int, title: str, description: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="t d" class="chart" {FONT}>'
        f'<title id="t">{escape(title)}</title><desc id="d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def bars(
    title: str,
    points: Sequence[Point],
    *,
    fmt: Callable[[float], str] = _plain,
    width: int = 480,
    height: int = 240,
) -> str:
    """A vertical bar per category."""
    top = _nice_top(max((p.value for p in points), default=0))
    left, bottom, right, upper = 56, 36, 8, 16
    plot_w, plot_h = width - left - right, height - bottom - upper
    body = [_grid(left, upper, plot_w, plot_h, top, fmt)]
    slot = plot_w / max(len(points), 1)
    for n, point in enumerate(points):
        h = plot_h * (point.value / top) if top else 0
        x = left + n * slot + slot * 0.15
        y = upper + plot_h - h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(point.label)}: {escape(fmt(point.value))}</title></rect>"
            f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle" fill="{AXIS}">'
            f"{escape(point.label)}</text>"
        )
    description = "; ".join(f"{p.label} {fmt(p.value)}" for p in points) or "no data"
    return _frame(width, height, title, description, body)


def hbars(
    title: str, points: Sequence[Point], *, fmt: Callable[[float], str] | None = None, width: int = 480
) -> str:
    """A horizontal bar per row for a share from 0 to 100 (per cent)."""
    fmt = fmt or (lambda v: f"{v:.1f}%")
    row, label_w, right = 22, 150, 56
    height = max(len(points), 1) * row + 8
    plot_w = width - label_w - right
    body = []
    for n, point in enumerate(points):
        share = min(max(point.value, 0.0), 100.0)
        y = 4 + n * row
        body.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" fill="{AXIS}">{escape(point.label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{plot_w}" height="14" fill="{GRID}"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{plot_w * share / 100:.1f}" height="14" fill="{PALETTE[2]}"/>'
            f'<text x="{label_w + plot_w + 6}" y="{y + 14}" fill="{AXIS}">{escape(fmt(point.value))}</text>'
        )
    description = "; ".join(f"{p.label} {fmt(p.value)}" for p in points) or "no data"
    return _frame(width, height, title, description, body)


def columns(
    title: str,
    days: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    fmt: Callable[[float], str] = _plain,
    width: int = 640,
    height: int = 260,
) -> str:
    """A column per day, the series stacked in it (``series[name][i]`` belongs to ``days[i]``),
    with a legend."""
    for name, values in series.items():
        if len(values) != len(days):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(days)} days")
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    top = _nice_top(max(totals, default=0))
    left, bottom, right, upper = 56, 52, 8, 16
    plot_w, plot_h = width - left - right, height - bottom - upper
    body = [_grid(left, upper, plot_w, plot_h, top, fmt)]
    slot = plot_w / max(len(days), 1)
    every = max(1, len(days) // 8)  # at most ~8 day labels
    for i, day in enumerate(days):
        base = float(upper + plot_h)
        for n, (name, values) in enumerate(series.items()):
            h = plot_h * (values[i] / top) if top else 0
            base -= h
            body.append(
                f'<rect x="{left + i * slot + slot * 0.1:.1f}" y="{base:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[n % len(PALETTE)]}"><title>{escape(day)} {escape(name)}: '
                f"{escape(fmt(values[i]))}</title></rect>"
            )
        if i % every == 0:
            body.append(
                f'<text x="{left + i * slot + slot / 2:.1f}" y="{upper + plot_h + 16}" text-anchor="middle" '
                f'fill="{AXIS}">{escape(day)}</text>'
            )
    x = left
    for n, name in enumerate(series):
        body.append(
            f'<rect x="{x}" y="{height - 18}" width="10" height="10" fill="{PALETTE[n % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{height - 9}" fill="{AXIS}">{escape(name)}</text>'
        )
        x += 24 + 13 * len(name)
    description = "; ".join(
        f"{name}: " + ", ".join(f"{day} {fmt(v)}" for day, v in zip(days, values, strict=True) if v)
        for name, values in series.items()
    )
    return _frame(width, height, title, description or "no data", body)


def _grid(left: int, upper: int, plot_w: int, plot_h: int, top: float, fmt: Callable[[float], str]) -> str:
    """Four horizontal grid lines, and the axis; each labelled with its value unless the label
    would repeat the one below it (a count of 1 has no 0.25: its lines read 0 … 1, not 0 0 0 1 1)."""
    parts, below = [], None
    for k in range(5):
        y = upper + plot_h - plot_h * k / 4
        label = fmt(top * k / 4)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID if k else AXIS}"/>'
        )
        if label != below:
            parts.append(
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{AXIS}">{escape(label)}</text>'
            )
        below = label
    return "".join(parts)


__all__ = ["PALETTE", "Point", "bars", "columns", "hbars"]
