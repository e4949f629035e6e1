"""What a new operator sees in the first hour, in a real headless Chromium (issue 18).

The home page shows both queues (rebuilds and source checks) and the latest rebuilds in
the order they finished; the project page says what is checked for an sdist and why a
source check failed; the release source page names the repository a failed check used;
the campaign page separates its links; and the file page's verify snippet is the whole
sequence, which this test runs as written against this server.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from rebuilder.attest.publish import Attestor, load_or_create_key
from rebuilder.evidence import Evidence
from rebuilder.index.model import BuildRequirement, PinnedFile
from rebuilder.plan.strategy import ArchiveInputs, BackendPin, Strategy
from rebuilder.store.log import TransparencyLog
from rebuilder.verdict import FileResult, Verdict
from tests.support.postgres import database_url
from tests.support.web import make_app
from tests.support.webdata import ORIGIN, Fixture, schema_with_data, settings_for

__all__ = ["database_url"]

CHROMIUM = os.environ.get("REBUILDER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

WHEEL = "first_hour-1.0-py3-none-any.whl"
SDIST = "first_hour-1.0.tar.gz"
WHEEL_BYTES = b"the published wheel of first-hour 1.0\n"
FORGE = "https://forge.example/team/first-hour"
OUTAGE = "the worker could not finish this source check: git ls-remote: the host did not answer"


@dataclass(frozen=True)
class FirstHour:
    data: Fixture
    wheel: int  # file ids
    sdist: int
    slow: int
    quick: int
    campaign: int


def _serve_folder(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _file(conn: psycopg.Connection[Any], project: str, filename: str, kind: str, url: str) -> int:
    conn.execute(
        "INSERT INTO projects (name, watched) VALUES (%s, true) ON CONFLICT DO NOTHING", (project,)
    )
    conn.execute(
        "INSERT INTO releases (project, version) VALUES (%s, '1.0') ON CONFLICT DO NOTHING",
        (project,),
    )
    sha = hashlib.sha256(WHEEL_BYTES if filename == WHEEL else filename.encode()).hexdigest()
    row = conn.execute(
        """
        INSERT INTO files (release_id, filename, kind, url, sha256, size, upload_time)
        SELECT id, %s, %s, %s, %s, 100, now() FROM releases WHERE project = %s AND version = '1.0'
        RETURNING id
        """,
        (filename, kind, url, sha, project),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _done(conn: psycopg.Connection[Any], file_id: int, finished_minutes_ago: int) -> int:
    row = conn.execute(
        """
        INSERT INTO attempts (file_id, status, priority, requested_at, started_at, finished_at,
            worker, verdict, rebuilt_sha256, seconds)
        SELECT id, 'done', 5, now() - interval '2 hours', now() - interval '2 hours',
            now() - make_interval(mins => %s), 'worker-1', 'reproducible', sha256, 1.0
        FROM files WHERE id = %s RETURNING id
        """,
        (finished_minutes_ago, file_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _pin(name: str) -> PinnedFile:
    return PinnedFile(
        name, f"https://files.example/{name}", hashlib.sha256(name.encode()).hexdigest()
    )


def _strategy() -> Strategy:
    """The strategy the wheel was rebuilt with (the provenance names its inputs)."""
    return Strategy(
        project="first-hour",
        version="1.0",
        target=WHEEL,
        distribution="wheel",
        source=_pin(SDIST),
        backend=BackendPin("setuptools (75.0.0)", "setuptools", "75.0.0"),
        requirements=(
            BuildRequirement("setuptools", "75.0.0", _pin("setuptools-75.0.0-py3-none-any.whl")),
        ),
        archive=ArchiveInputs(source_date_epoch=1700000000, build_clock=None),
        image="rebuilder/py311@sha256:" + "a" * 64,
        image_digest="sha256:" + "a" * 64,
        python_version="3.11.9",
        resolved_as_of="2024-01-01T00:00:00Z",
    )


def _fill(data: Fixture, file_base: str) -> FirstHour:
    with psycopg.connect(data.url, autocommit=True) as conn:
        wheel = _file(conn, "first-hour", WHEEL, "wheel", f"{file_base}/{WHEEL}")
        sdist = _file(conn, "first-hour", SDIST, "sdist", f"{file_base}/{SDIST}")
        # Queued first, finished last: the newest finish must come first on the home page.
        slow = _file(conn, "slow-finisher", "slow_finisher-1.0-py3-none-any.whl", "wheel", FORGE)
        quick = _file(conn, "quick-finisher", "quick_finisher-1.0-py3-none-any.whl", "wheel", FORGE)
        _done(conn, slow, -1)  # the clock of the database: finished just now (+1 min)
        _done(conn, quick, 30)
        attempt = _done(conn, wheel, 60)
        # Three source checks waiting (the home page must show them), one failed outage.
        for n in (1, 2, 3):
            conn.execute(
                "INSERT INTO source_checks (release_id, sdist_id, priority) "
                "SELECT release_id, id, 1 FROM files WHERE id = %s",
                (data.files[f"other{n}"],),
            )
        conn.execute(
            """
            INSERT INTO source_checks (release_id, sdist_id, status, started_at, finished_at,
                worker, verdict, reason, repository, tries)
            SELECT release_id, id, 'done', now(), now(), 'worker-1', 'failed', %s, %s, 3
            FROM files WHERE id = %s
            """,
            (OUTAGE, FORGE, sdist),
        )
        # A check waiting for its delayed retry: the host did not answer its first try.
        waiting = _file(conn, "waiting-pkg", "waiting_pkg-1.0.tar.gz", "sdist", FORGE)
        conn.execute(
            "INSERT INTO source_checks (release_id, sdist_id, priority, dispatched_at, tries, "
            "repository) SELECT release_id, id, 5, now(), 1, %s FROM files WHERE id = %s",
            (FORGE + "-waiting", waiting),
        )
        row = conn.execute(
            "INSERT INTO campaigns (name, selection, status, finished_at) "
            "VALUES ('first hour', '{}', 'done', now()) RETURNING id"
        ).fetchone()
        assert row is not None
        campaign = int(row[0])
        conn.execute(
            "INSERT INTO campaign_files (campaign_id, file_id, attempt_id) VALUES (%s, %s, %s)",
            (campaign, wheel, attempt),
        )
    # The wheel's real signed bundle, in the log, with the key the site publishes.
    signer = load_or_create_key(data.blob_dir.parent / "keys" / "signing-key.pem")
    evidence = Evidence.for_file(data.blob_dir.parent / "evidence", "first-hour", "1.0", WHEEL)
    evidence.write_strategy(_strategy())
    result = FileResult(
        "first-hour",
        "1.0",
        WHEEL,
        Verdict.REPRODUCIBLE,
        hashlib.sha256(WHEEL_BYTES).hexdigest(),
        rebuilt_sha256=hashlib.sha256(WHEEL_BYTES).hexdigest(),
        seconds=1.0,
        evidence=str(evidence.path),
    )
    envelopes = Attestor(signer, "https://rebuilder.test/builder", data.blob_dir).sign(result)
    lines = [e.dumps() for e in envelopes]
    entries = TransparencyLog(data.pool, origin=ORIGIN).append_many(lines)
    with psycopg.connect(data.url, autocommit=True) as conn:
        for position, (entry, kind) in enumerate(zip(entries, ("provenance", "vsa"), strict=True)):
            conn.execute(
                "INSERT INTO attestations (attempt_id, file_id, position, kind, log_origin, "
                "leaf_index) VALUES (%s, %s, %s, %s, %s, %s)",
                (attempt, wheel, position, kind, ORIGIN, entry.index),
            )
    return FirstHour(data, wheel, sdist, slow, quick, campaign)


@pytest.fixture(scope="module")
def first_hour(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstHour]:
    published = tmp_path_factory.mktemp("published")
    (published / WHEEL).write_bytes(WHEEL_BYTES)
    files, file_base = _serve_folder(published)
    try:
        for data in schema_with_data(database_url, tmp_path_factory.mktemp("data") / "blobs"):
            yield _fill(data, file_base)
    finally:
        files.shutdown()
        files.server_close()


@pytest.fixture(scope="module")
def base_url(first_hour: FirstHour) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(settings_for(first_hour.data), first_hour.data.pool)
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


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"the browser test needs Chromium at {CHROMIUM} under CI")
        pytest.skip(f"no browser: Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        pytest.skip("no browser: the playwright package")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def test_home_shows_both_queues_and_rebuilds_in_finish_order(page: Any, base_url: str) -> None:
    page.goto(base_url + "/")
    queues = page.locator("#queues").inner_text()
    assert "1 rebuild attempts queued" in queues  # the fixture's campaign job
    assert "4 source checks queued" in queues
    table = page.locator("section", has=page.locator("h2", has_text="Latest rebuilds"))
    files = table.locator("tbody tr td:nth-child(3)").all_inner_texts()
    assert files[0] == "slow_finisher-1.0-py3-none-any.whl", files
    assert files.index("slow_finisher-1.0-py3-none-any.whl") < files.index(
        "quick_finisher-1.0-py3-none-any.whl"
    )


def test_project_page_says_what_is_checked_for_an_sdist_and_why_it_failed(
    page: Any, base_url: str
) -> None:
    page.goto(base_url + "/projects/first-hour")
    sdist_row = page.locator("table.releases tr", has=page.locator(f"a:text-is('{SDIST}')"))
    verdict_cell = sdist_row.locator("td").nth(-2).inner_text()
    assert verdict_cell.startswith("source check: failed"), verdict_cell
    assert "not yet" not in verdict_cell
    wheel_row = page.locator("table.releases tr", has=page.locator(f"a:text-is('{WHEEL}')"))
    assert "reproducible" in wheel_row.inner_text()
    reason = page.locator("small.source-reason").inner_text()
    assert "the host did not answer" in reason  # seen without clicking
    page.click("table.releases a[href$='/source']")
    page.wait_for_url(base_url + "/projects/first-hour/1.0/source")
    repository = page.locator("tr", has=page.locator("th", has_text="Repository"))
    assert FORGE in repository.inner_text()


def test_a_waiting_check_shows_the_repository_its_worker_found(page: Any, base_url: str) -> None:
    page.goto(base_url + "/projects/waiting-pkg/1.0/source")
    active = page.locator("p.active-check").inner_text()
    assert "queued" in active and "tries so far: 1" in active
    assert FORGE + "-waiting" in active


def test_campaign_page_separates_its_links(page: Any, base_url: str, first_hour: FirstHour) -> None:
    page.goto(f"{base_url}/campaigns/{first_hour.campaign}")
    links = page.locator("td.links")
    assert links.locator("a").all_inner_texts() == ["evidence", "attestation"]
    assert links.inner_text() == "evidence · attestation"


def test_the_verify_snippet_runs_as_written(
    page: Any, base_url: str, first_hour: FirstHour, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/files/{first_hour.wheel}")
    snippet = page.locator("pre.verify-snippet").inner_text()
    assert "/api/v1/keys" in snippet and "sha256sum -c" in snippet
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", snippet],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"{WHEEL}: OK" in output  # the download matched the recorded sha256
    assert "operator key id:" in output
    assert "VERIFIED" in output or "PASSED" in output, output
    # The same commands refuse a file whose bytes are not the published ones.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    (tampered / WHEEL).write_bytes(WHEEL_BYTES + b"backdoor")
    steps = snippet.split("# 2.", 1)[1]
    again = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "# 2." + steps],
        cwd=tampered,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode != 0, again.stdout + again.stderr
