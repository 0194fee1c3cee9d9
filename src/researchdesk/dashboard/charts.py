"""Bar charts drawn on the server as inline SVG: no script, no stylesheet, nothing to fetch.

Values are integer micro-USD; bar lengths are the only place they become fractions, and those
are pixels, never money.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from researchdesk.dashboard.formats import usd

_WIDTH = 720
_HEIGHT = 180
_AXIS = 40
"""Room under the columns for day labels."""
_ROW = 24
_LABEL = 320
"""Room left of the horizontal bars for their labels."""
_VALUE = 90
"""Room right of the horizontal bars for their amounts."""


def columns(points: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """One column per point (e.g. per day), left to right, scaled to the largest."""
    if not points:
        return _empty(title)
    top = max(value for _, value in points) or 1
    step = _WIDTH / len(points)
    every = max(1, round(len(points) / 10))
    parts = [_open(title, _WIDTH, _HEIGHT + _AXIS)]
    for index, (label, value) in enumerate(points):
        height = _HEIGHT * value / top
        x = index * step
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{_HEIGHT - height:.1f}" '
            f'width="{max(step - 2, 1):.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}: {usd(value)}</title></rect>"
        )
        if index % every == 0:
            parts.append(
                f'<text class="tick" x="{max(x + step / 2, 16):.1f}" y="{_HEIGHT + 16}" '
                f'text-anchor="middle">{escape(label[5:] or label)}</text>'
            )
    parts.append(f'<line class="axis" x1="0" y1="{_HEIGHT}" x2="{_WIDTH}" y2="{_HEIGHT}"/>')
    parts.append(f'<text class="tick" x="2" y="12">max {usd(top)}</text>')
    return _close(parts)


def bars(points: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """One horizontal bar per point (e.g. per model or per key), in the order given."""
    if not points:
        return _empty(title)
    top = max(value for _, value in points) or 1
    span = _WIDTH - _LABEL - _VALUE
    parts = [_open(title, _WIDTH, _ROW * len(points) + 4)]
    for index, (label, value) in enumerate(points):
        y = index * _ROW + 2
        shown = label if len(label) <= 48 else label[:47] + "…"
        parts.append(
            f'<text class="label" x="{_LABEL - 6}" y="{y + 15}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
            f'<rect class="bar" x="{_LABEL}" y="{y + 3}" width="{max(span * value / top, 1):.1f}" '
            f'height="{_ROW - 8}"><title>{escape(label)}: {usd(value)}</title></rect>'
            f'<text class="value" x="{_WIDTH - _VALUE + 6}" y="{y + 15}">{usd(value)}</text>'
        )
    return _close(parts)


def budget(spent_micros: int, cap_micros: int) -> Markup:
    """A small bar: what a run has committed against its cap."""
    share = min(spent_micros / cap_micros, 1.0) if cap_micros > 0 else 0.0
    level = "high" if share >= 0.9 else "mid" if share >= 0.6 else "low"
    return Markup(  # noqa: S704 - numbers and fixed words only
        f'<svg class="budget {level}" viewBox="0 0 100 8" preserveAspectRatio="none" '
        f'role="img" aria-label="{share:.0%} of the cap">'
        f'<rect class="track" width="100" height="8"/>'
        f'<rect class="fill" width="{share * 100:.2f}" height="8"/></svg>'
    )


def _open(title: str, width: int, height: int) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def _close(parts: list[str]) -> Markup:
    return Markup("".join([*parts, "</svg>"]))  # noqa: S704 - every text above is escaped


def _empty(title: str) -> Markup:
    return Markup('<p class="empty">No spend recorded for {}.</p>').format(title.lower())
