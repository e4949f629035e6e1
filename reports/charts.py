"""Server-rendered SVG: the reproducibility chart and the project badges.

Both are built from numbers and our own verdict names only; the one piece of package
text (a badge's label) is XML-escaped. No script, no inline style attribute (the page
CSP forbids those): presentation attributes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from rebuilder.store.web_queries import DayRate, ReleaseTrend

VERDICT_COLOURS = {
    "reproducible": "#2e7d32",
    "equivalent": "#558b2f",
    "mismatch": "#c62828",
    "failed": "#6d4c41",
    "unsupported": "#757575",
    "unknown": "#9e9e9e",
}


@dataclass(frozen=True)
class Bar:
    """One bar of a rate chart: its label, the rate (0..1, None: nothing judged), a count."""

    label: str
    rate: float | None
    total: int


def day_bars(days: list[DayRate]) -> list[Bar]:
    return [Bar(d.day.isoformat(), d.rate, d.total) for d in days]


def release_bars(trend: list[ReleaseTrend]) -> list[Bar]:
    return [Bar(t.version, t.rate, sum(t.counts.values())) for t in trend]


def rate_chart(bars: list[Bar], *, title: str, width: int = 720, height: int = 160) -> str:
    """An SVG bar chart of rates (0..100 %), one bar per entry, with a text alternative."""
    pad_left, pad_bottom, pad_top = 36, 18, 8
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f"aria-label={quoteattr(title)}>",
        f"<title>{escape(title)}</title>",
    ]
    for pct in (0, 50, 100):
        y = pad_top + plot_h * (1 - pct / 100)
        parts.append(
            f'<line x1="{pad_left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{pad_left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
            f'fill="#555">{pct}%</text>'
        )
    if bars:
        step = plot_w / len(bars)
        bar_w = max(1.0, step * 0.8)
        for i, bar in enumerate(bars):
            x = pad_left + i * step + (step - bar_w) / 2
            label = escape(f"{bar.label}: " + _rate_text(bar))
            if bar.rate is None:
                parts.append(
                    f'<rect x="{x:.1f}" y="{pad_top + plot_h - 2:.1f}" width="{bar_w:.1f}" '
                    f'height="2" fill="#bbb"><title>{label}</title></rect>'
                )
                continue
            h = max(1.0, plot_h * bar.rate)
            colour = "#2e7d32" if bar.rate >= 0.9 else "#f9a825" if bar.rate >= 0.5 else "#c62828"
            parts.append(
                f'<rect x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{label}</title></rect>'
            )
        parts.append(
            f'<text x="{pad_left}" y="{height - 4}" font-size="10" fill="#555">'
            f"{escape(bars[0].label)}</text>"
            f'<text x="{width - 4}" y="{height - 4}" font-size="10" fill="#555" '
            f'text-anchor="end">{escape(bars[-1].label)}</text>'
        )
    else:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#555">'
            "no finished rebuilds yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _rate_text(bar: Bar) -> str:
    if bar.rate is None:
        return f"nothing judged ({bar.total} finished)"
    return f"{bar.rate:.0%} verified of {bar.total}"


def badge_status(counts: dict[str, int]) -> str:
    """The one word a project's badge shows, worst news first."""
    for verdict in ("mismatch", "failed"):
        if counts.get(verdict, 0):
            return verdict
    if counts.get("equivalent", 0):
        return "equivalent"
    if counts.get("reproducible", 0):
        return "reproducible"
    if counts.get("unsupported", 0):
        return "unsupported"
    return "unknown"


def badge(label: str, status: str) -> str:
    """A flat two-part SVG badge: ``label`` | ``status``."""
    left_w = 8 + 7 * len(label)
    right_w = 8 + 7 * len(status)
    total = left_w + right_w
    colour = VERDICT_COLOURS.get(status, VERDICT_COLOURS["unknown"])
    text = escape(f"{label}: {status}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f"aria-label={quoteattr(f'{label}: {status}')}>"
        f"<title>{text}</title>"
        f'<rect width="{left_w}" height="20" fill="#555"/>'
        f'<rect x="{left_w}" width="{right_w}" height="20" fill="{colour}"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" '
        'text-anchor="middle">'
        f'<text x="{left_w / 2:.1f}" y="14">{escape(label)}</text>'
        f'<text x="{left_w + right_w / 2:.1f}" y="14">{escape(status)}</text>'
        "</g></svg>"
    )
