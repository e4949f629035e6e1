"""The status page in a real headless Chromium, served by uvicorn on a loopback port.

Debian's Chromium is driven by Playwright (its own browser download is not used). The
test walks home -> search -> project -> file, follows real links, and fails on any
console error or Content-Security-Policy violation, and when a hostile name renders as
markup instead of text.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.support.postgres import database_url
from tests.support.web import make_app
from tests.support.webdata import (
    HOSTILE_DIFF,
    HOSTILE_FILENAME,
    HOSTILE_TAG,
    Fixture,
    schema_with_data,
    settings_for,
)

__all__ = ["database_url"]

CHROMIUM = os.environ.get("REBUILDER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = os.environ.get("REBUILDER_SCREENSHOTS")  # a folder: save page screenshots


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser test needs {reason} under CI")
    pytest.skip(f"no browser: {reason}")


@pytest.fixture(scope="module")
def web_data(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    yield from schema_with_data(database_url, tmp_path_factory.mktemp("data") / "blobs")


@pytest.fixture(scope="module")
def base_url(web_data: Fixture) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(settings_for(web_data), web_data.pool)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_walk_home_search_project_file(base_url: str, web_data: Fixture) -> None:
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
        page.on(
            "console",
            lambda m: (
                problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})")
                if m.type in {"error", "warning"}
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: (
                problems.append(f"request failed: {r.url}")
                if r.url.startswith(base_url) and "diffoscope" not in r.url
                else None
            ),
        )
        # Any CSP violation is reported to the page as an event: count them.
        page.add_init_script(
            "window.__csp = [];"
            "document.addEventListener('securitypolicyviolation',"
            " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        )

        def shot(name: str) -> None:
            if SCREENSHOTS:
                Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)

        page.goto(base_url + "/")
        assert page.title().startswith("Rebuild status")
        assert page.locator("h2", has_text="New mismatches").count() == 1
        assert page.locator("svg.chart rect").count() >= 3
        shot("home")

        # Search: the suggestion script fills the datalist from the API as one types.
        page.fill("#q", "other-1")
        page.wait_for_function(
            "() => document.querySelectorAll('#project-suggestions option').length > 0"
        )
        page.fill("#q", "Demo_Pkg")
        page.press("#q", "Enter")
        page.wait_for_url(base_url + "/projects/demo-pkg")
        assert page.locator("h1").inner_text() == "demo-pkg"
        assert page.locator("img[alt^='rebuild:']").evaluate("i => i.naturalWidth") > 0
        shot("project")

        page.click("text=demo_pkg-2.0-py3-none-any.whl >> nth=0")
        page.wait_for_url(f"{base_url}/files/{web_data.files['demo_pkg-2.0-py3-none-any.whl']}")
        assert page.locator(".verdict.v-mismatch").count() >= 1
        frame = page.frame_locator("iframe.diffoscope")
        assert frame.locator("p").inner_text() == "differs"
        shot("file")

        # The file page's source line leads to the release source page; the hostile
        # tag, file names and diff stay text.
        page.click("p.source-line a")
        page.wait_for_url(f"{base_url}/projects/demo-pkg/2.0/source")
        assert page.locator(".verdict.s-inconsistent").count() == 1
        assert HOSTILE_TAG in page.locator("main").inner_text()
        assert HOSTILE_DIFF.strip() in page.locator("pre.diff").inner_text()
        assert page.locator("main script, main img[src='x']").count() == 0
        assert page.locator("a[href^='javascript:']").count() == 0
        assert page.evaluate("window.__csp") == []
        shot("source")
        page.goto(base_url + "/projects/demo-pkg/1.0/source")
        assert page.locator(".verdict.s-consistent").count() == 1
        assert page.locator("a[download='source.intoto.jsonl']").count() == 1
        page.click("text=the operator's key")
        page.wait_for_url(base_url + "/keys")
        assert "BEGIN PUBLIC KEY" in page.locator("main").inner_text()

        # A hostile file name shows as text, and its markup never became elements.
        page.goto(f"{base_url}/files/{web_data.files[HOSTILE_FILENAME]}")
        assert page.locator("h1.filename").inner_text() == HOSTILE_FILENAME
        assert page.locator("main img[src='x']").count() == 0
        assert page.evaluate("typeof window.alert") == "function"

        page.goto(base_url + "/")
        violations = page.evaluate("window.__csp")
        browser.close()
    assert not violations, violations
    # The diffoscope report's own script was refused by the frame's sandbox: expected.
    blocked = [p for p in problems if "Blocked script execution" in p and "/diffoscope" in p]
    assert len(blocked) == 1, problems
    others = [p for p in problems if p not in blocked]
    assert not others, "\n".join(others)
