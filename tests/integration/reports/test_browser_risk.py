"""The risk ranking on the status page in a real headless Chromium: mismatches to review
come first in "New mismatches", the home list filters by risk through its form, and the
file page leads with the diagnosis (escaped) before anything else."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.reports.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _unavailable,
    base_url,
)
from tests.support.postgres import database_url
from tests.support.webdata import (
    BENIGN,
    RISKY,
    Fixture,
    add_risk_mismatches,
    schema_with_data,
)

__all__ = ["base_url", "database_url"]


@pytest.fixture(scope="module")
def web_data(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    for data in schema_with_data(database_url, tmp_path_factory.mktemp("data") / "blobs"):
        add_risk_mismatches(data)
        yield data


def test_risk_ranking_filter_and_diagnosis_in_the_browser(base_url: str, web_data: Fixture) -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        _unavailable(f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        _unavailable("the playwright package")
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
        page.goto(base_url + "/")

        # New mismatches: the one to review first, although the benign one is newer.
        new = page.locator("section.alert tbody tr")
        files = [new.nth(i).locator("td").nth(3).inner_text() for i in range(new.count())]
        assert files.index(RISKY) < files.index(BENIGN), files
        assert new.nth(files.index(RISKY)).locator(".risk.r-review").count() == 1

        # The latest list: by finish time, with a risk column; then filtered in the form.
        latest = page.locator("table.latest tbody tr")
        names = [latest.nth(i).locator("td").nth(2).inner_text() for i in range(latest.count())]
        assert names.index(BENIGN) < names.index(RISKY)  # newest first
        page.select_option("select[name=risk]", "review")
        page.select_option("select[name=verdict]", "mismatch")
        page.click("form.filters button")
        page.wait_for_url("**risk=review**")
        rows = page.locator("table.latest tbody tr")
        shown = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())]
        assert shown == [RISKY], shown
        assert page.locator("select[name=risk]").input_value() == "review"

        # The file page leads with why it differs; hostile text stays text.
        page.click(f"table.latest >> text={RISKY}")
        page.wait_for_url(f"**/files/{web_data.files[RISKY]}")
        headings = page.locator("main h2").all_inner_texts()
        assert headings[0].startswith("Why it differs: risk review"), headings
        assert "module differs <b>bold</b>" in page.locator("table.diagnosis").inner_text()
        assert page.locator("table.diagnosis b").count() == 0
        assert "</pre><script>alert('d')</script>" in page.locator("pre.diff").inner_text()
        browser.close()
    assert not problems, problems
