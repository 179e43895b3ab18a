"""Charts drawn on the server as SVG: no script, nothing for the Content-Security-Policy to allow.

The figures come from services (daemon.services.device_history, the anomaly store); these functions only place
them on a canvas. Each chart is an ``img`` with a title and a description a screen reader speaks, and the
page beside it shows the same numbers as a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from markupsafe import Markup, escape

from daemon.web import i18n

WIDTH: Final = 640
HEIGHT: Final = 180
PAD_LEFT: Final = 74  # room for the value axis' labels
PAD_RIGHT: Final = 10
PAD_TOP: Final = 10
PAD_BOTTOM: Final = 24
DOTS_UP_TO: Final = 60  # more points than this: a line alone (dots would merge into one)


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime | date
    value: int | None  # None: a gap (a bar chart's day with no figure)
    highlight: bool = False  # drawn in the warning colour (a held reading, a suspect point)


@dataclass(frozen=True, slots=True)
class Marker:
    at: datetime | date
    label: str  # what happened there: shown on hover and listed in the description


def _seconds(at: datetime | date) -> float:
    moment = at if isinstance(at, datetime) else datetime(at.year, at.month, at.day, tzinfo=UTC)
    return moment.timestamp()


class _Canvas:
    def __init__(self, points: Sequence[Point], markers: Sequence[Marker], *, floor: int | None = None) -> None:
        moments = [_seconds(p.at) for p in points] + [_seconds(m.at) for m in markers]
        values = [p.value for p in points if p.value is not None] + ([] if floor is None else [floor])
        self.first, self.last = min(moments, default=0.0), max(moments, default=1.0)
        self.low, self.high = min(values, default=0), max(values, default=1)
        if self.last == self.first:
            self.last = self.first + 1
        if self.high == self.low:
            self.high = self.low + 1

    def x(self, at: datetime | date) -> float:
        share = (_seconds(at) - self.first) / (self.last - self.first)
        return round(PAD_LEFT + share * (WIDTH - PAD_LEFT - PAD_RIGHT), 1)

    def y(self, value: int, *, floor: int | None = None) -> float:
        low = self.low if floor is None else floor
        share = (value - low) / (self.high - low)
        return round(HEIGHT - PAD_BOTTOM - share * (HEIGHT - PAD_TOP - PAD_BOTTOM), 1)


def _frame(ident: str, title: str, description: str, body: list[str], canvas: _Canvas, *, floor: int | None) -> Markup:
    low = canvas.low if floor is None else floor
    first = canvas.first
    axis_y = HEIGHT - PAD_BOTTOM
    start = datetime.fromtimestamp(first, UTC).date()
    end = datetime.fromtimestamp(canvas.last, UTC).date()
    top = escape(i18n.number(canvas.high))
    parts = [
        (
            f'<svg class="chart" id="{ident}" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">'
        ),
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(description)}</desc>',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{axis_y}" x2="{WIDTH - PAD_RIGHT}" y2="{axis_y}"/>',
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{axis_y}"/>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{axis_y}" text-anchor="end">{escape(i18n.number(low))}</text>',
        f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 6}">{escape(i18n.day(start))}</text>',
        f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 6}" text-anchor="end">{escape(i18n.day(end))}</text>',
        *body,
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 - every text in it is escaped above


def _markers(canvas: _Canvas, markers: Sequence[Marker]) -> list[str]:
    return [
        f'<line class="marker" x1="{canvas.x(m.at)}" y1="{PAD_TOP}" x2="{canvas.x(m.at)}" y2="{HEIGHT - PAD_BOTTOM}">'
        f"<title>{escape(m.label)}</title></line>"
        for m in markers
    ]


def _described(summary: str, markers: Sequence[Marker]) -> str:
    return " ".join([summary, *(f"{i18n.day(_as_date(m.at))}: {m.label}." for m in markers)])


def _as_date(at: datetime | date) -> date:
    return at.date() if isinstance(at, datetime) else at


def line_chart(ident: str, title: str, summary: str, points: Sequence[Point], markers: Sequence[Marker] = ()) -> Markup:
    """A counter over time: a line through its values, highlighted points as dots, markers as dashed rules."""
    canvas = _Canvas(points, markers)
    shown = [p for p in points if p.value is not None]
    path = " ".join(f"{canvas.x(p.at)},{canvas.y(p.value)}" for p in shown if p.value is not None)
    body = [f'<polyline class="series" points="{path}"/>'] if len(shown) > 1 else []
    body += [
        f'<circle class="{"suspect" if p.highlight else "dot"}" cx="{canvas.x(p.at)}" cy="{canvas.y(p.value)}" '
        f'r="{4 if p.highlight else 2}"/>'
        for p in shown
        if p.value is not None and (p.highlight or len(shown) <= DOTS_UP_TO)
    ]
    return _frame(ident, title, _described(summary, markers), body + _markers(canvas, markers), canvas, floor=None)


def bar_chart(ident: str, title: str, summary: str, points: Sequence[Point], markers: Sequence[Marker] = ()) -> Markup:
    """A figure per day (pages printed) as bars from zero; a day without a figure has no bar."""
    canvas = _Canvas(points, markers, floor=0)
    slot = (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(points), 1)
    width = max(round(slot * 0.8, 1), 1.0)
    body = [
        f'<rect class="bar" x="{round(canvas.x(p.at) - width / 2, 1)}" y="{canvas.y(p.value, floor=0)}" '
        f'width="{width}" height="{round(HEIGHT - PAD_BOTTOM - canvas.y(p.value, floor=0), 1)}"/>'
        for p in points
        if p.value is not None
    ]
    return _frame(ident, title, _described(summary, markers), body + _markers(canvas, markers), canvas, floor=0)
