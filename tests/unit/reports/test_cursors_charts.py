"""Pagination cursors and the SVG charts and badges, without a database."""

from __future__ import annotations

import base64
import json
from datetime import date

import pytest

from rebuilder.store import page_cursors as cursors
from rebuilder.store.page_cursors import BadCursorError
from rebuilder.store.web_queries import DayRate
from reports import charts


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    token = cursors.encode("projects", ("a-b/c?d",))
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert cursors.decode("projects", token, str) == ("a-b/c?d",)
    assert cursors.decode("attempts", cursors.encode("attempts", (42,)), int) == (42,)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps({"a": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, "attempts", "x"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, "attempts", True]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, "attempts", 1, 2]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2, "attempts", 1]).encode()).decode(),
        cursors.encode("projects", ("x",)),  # another list's cursor
        "A" * 600,
    ],
)
def test_foreign_or_malformed_cursors_are_refused(token: str) -> None:
    with pytest.raises(BadCursorError):
        cursors.decode("attempts", token, int)


def test_badge_escapes_and_picks_the_worst_news() -> None:
    assert charts.badge_status({"reproducible": 9, "mismatch": 1, "failed": 2}) == "mismatch"
    assert charts.badge_status({"reproducible": 9, "equivalent": 1}) == "equivalent"
    assert charts.badge_status({"unsupported": 1}) == "unsupported"
    assert charts.badge_status({}) == "unknown"
    svg = charts.badge("<x>&", "mismatch")
    assert "<x>" not in svg and "&lt;x&gt;&amp;" in svg
    assert 'fill="#c62828"' in svg


def test_rate_chart_draws_one_bar_per_day_without_inline_style() -> None:
    days = [
        DayRate(date(2026, 1, 1), {"reproducible": 9, "mismatch": 1}),
        DayRate(date(2026, 1, 2), {"unsupported": 3}),
        DayRate(date(2026, 1, 3), {"failed": 2, "equivalent": 2}),
    ]
    assert [d.rate for d in days] == [0.9, None, 0.5]
    svg = charts.rate_chart(charts.day_bars(days), title='A "title" <b>')
    assert svg.count("<rect") == 3
    assert "90% verified of 10" in svg and "nothing judged (3 finished)" in svg
    assert "style=" not in svg and "<script" not in svg and "<b>" not in svg
    assert "no finished rebuilds yet" in charts.rate_chart([], title="t")
