"""The HTML pages over a real migrated database: content, escaping, errors, redirects."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from reports.security import PAGE_CSP, REPORT_CSP
from tests.support.web import make_app
from tests.support.webdata import (
    HOSTILE_FILENAME,
    HOSTILE_PATH,
    HOSTILE_REASON,
    HOSTILE_VERSION,
    Fixture,
    settings_for,
)

DEMO_1 = "demo_pkg-1.0-py3-none-any.whl"
DEMO_2 = "demo_pkg-2.0-py3-none-any.whl"


def _no_raw(text: str, *hostile: str) -> None:
    for value in hostile:
        assert value not in text, f"unescaped: {value!r}"
        assert str(escape(value)) in text


def test_home_shows_counts_new_mismatches_queue_and_workers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    # Latest verdicts: demo 1.0 reproducible, 1.1 equivalent, 2.0 mismatch, evil failed.
    counts = {name: n for n, name in re.findall(r'<span class="n">(\d+)</span> (\w+)', text)}
    assert counts["reproducible"] == "1"
    assert counts["equivalent"] == "1"
    assert counts["mismatch"] == "1"
    assert counts["failed"] == "1"
    new = text.split("<h2>New mismatches</h2>", 1)[1].split("</section>", 1)[0]
    assert f'<a href="/files/{DEMO_2}"' not in new  # linked by id, not by name
    assert DEMO_2 in new and "reproducible" in new  # what it was before
    assert DEMO_1 not in new
    assert "1</strong> rebuild attempts queued" in text
    assert "alive" in text and "silent" in text  # worker-1 beat now, the other an hour ago
    _no_raw(text, "worker-<i>2</i>")
    assert "<svg" in text and "Share of rebuilds verified" in text


def test_search_redirects_any_spelling_to_the_normalized_project(client: TestClient) -> None:
    answer = client.get("/search", params={"q": "Demo_Pkg"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/projects/demo-pkg"


def test_search_suggests_prefix_and_containing_names(client: TestClient) -> None:
    answer = client.get("/search", params={"q": "other-0"})
    assert answer.status_code == 200
    names = re.findall(r'<a href="/projects/([a-z0-9-]+)">', answer.text)
    assert names[:3] == ["other-00", "other-01", "other-02"]
    missing = client.get("/search", params={"q": "zzz-nothing"})
    assert missing.status_code == 404
    assert "No project named" in missing.text


def test_search_never_redirects_off_site(client: TestClient) -> None:
    for q in ("//evil.example", "https://evil.example/", "/\\evil.example"):
        answer = client.get("/search", params={"q": q}, follow_redirects=False)
        assert answer.status_code in {200, 404}
        assert "location" not in answer.headers


def test_paths_with_slashes_are_not_redirected(client: TestClient) -> None:
    for path in ("//evil.example/", "/projects/demo-pkg/", "///evil.example/x"):
        answer = client.get("http://testserver" + path, follow_redirects=False)
        assert answer.request.url.path == path  # sent as it is, not read as a host
        assert answer.status_code == 404, path
        assert "location" not in answer.headers


def test_project_page_lists_releases_files_history_and_trend(
    client: TestClient, web_data: Fixture
) -> None:
    page = client.get("/projects/demo-pkg")
    assert page.status_code == 200
    text = page.text
    for version in ("1.0", "1.1", "2.0"):
        assert f'scope="rowgroup">{version}</th>' in text
    assert f'<a href="/files/{web_data.files[DEMO_2]}">{DEMO_2}</a>' in text
    history = re.findall(r"<tr><td>(\d+)</td>", text.split("Attempt history", 1)[1])
    demo = [v for k, v in web_data.attempts.items() if k != "evil"]
    assert [int(h) for h in history] == sorted(demo, reverse=True)
    assert 'src="/projects/demo-pkg/badge.svg"' in text


def test_project_page_redirects_to_the_normalized_name(client: TestClient) -> None:
    answer = client.get("/projects/Demo.Pkg", follow_redirects=False)
    assert answer.status_code == 301
    assert answer.headers["location"] == "/projects/demo-pkg"


def test_unknown_project_is_an_html_404(client: TestClient) -> None:
    answer = client.get("/projects/no-such-project")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "No project named" in answer.text


def test_file_page_of_a_mismatch(client: TestClient, web_data: Fixture) -> None:
    file_id = web_data.files[DEMO_2]
    text = client.get(f"/files/{file_id}").text
    assert "v-mismatch" in text
    assert "f" * 64 in text  # rebuilt hash
    _no_raw(text, HOSTILE_PATH)
    assert f'<iframe class="diffoscope" sandbox src="/files/{file_id}/diffoscope"' in text
    assert "rebuilder check demo-pkg==2.0" in text
    assert "&lt;script&gt;alert(&#39;log&#39;)" in text  # the build log, escaped


def test_file_page_with_attestations_has_bundle_proof_and_verify_command(
    client: TestClient, web_data: Fixture
) -> None:
    file_id = web_data.files[DEMO_1]
    text = client.get(f"/files/{file_id}").text
    assert f'href="/api/v1/files/{file_id}/bundle"' in text
    assert "/api/v1/log/inclusion?index=0&amp;tree_size=2" in text
    assert "/api/v1/log/inclusion?index=1&amp;tree_size=2" in text
    assert f"rebuilder verify {DEMO_1} --attestations attestations" in text
    assert f"attestations/pypi/demo-pkg/1.0/{DEMO_1}/rebuild.intoto.jsonl" in text


def test_hostile_names_show_as_text(client: TestClient, web_data: Fixture) -> None:
    file_id = web_data.files[HOSTILE_FILENAME]
    text = client.get(f"/files/{file_id}").text
    _no_raw(text, HOSTILE_FILENAME, HOSTILE_VERSION, HOSTILE_REASON)
    assert "<img src=x" not in text
    home = client.get("/").text
    assert "<img src=x" not in home and "<i>italic" not in home
    feed = client.get("/feeds/problems.atom").text
    assert "<img src=x" not in feed and "&lt;img src=x" in feed


def test_diffoscope_report_is_served_with_a_policy_forbidding_scripts(
    client: TestClient, web_data: Fixture
) -> None:
    answer = client.get(f"/files/{web_data.files[DEMO_2]}/diffoscope")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == REPORT_CSP
    assert "script-src" not in REPORT_CSP and "default-src 'none'" in REPORT_CSP
    assert "sandbox" in REPORT_CSP
    assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get(f"/files/{web_data.files[DEMO_1]}/diffoscope").status_code == 404


def test_evidence_only_serves_manifest_paths(client: TestClient, web_data: Fixture) -> None:
    file_id = web_data.files[DEMO_2]
    log = client.get(f"/files/{file_id}/evidence/build.log")
    assert log.status_code == 200
    assert log.headers["content-type"].startswith("text/plain")
    assert b"wheel built" in log.content
    for path in ("../../etc/passwd", "build.log/..", "%2e%2e/x"):
        assert client.get(f"/files/{file_id}/evidence/{path}").status_code == 404


def test_feeds_and_badges(client: TestClient) -> None:
    feed = client.get("/feeds/problems.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert feed.text.count("<entry>") == 2  # demo 2.0 mismatch, evil failed
    project_feed = client.get("/projects/demo-pkg/feed.atom")
    assert project_feed.text.count("<entry>") == 1
    badge = client.get("/projects/demo-pkg/badge.svg")
    assert badge.headers["content-type"].startswith("image/svg+xml")
    assert ">mismatch</text>" in badge.text
    assert client.get("/projects/other-05/badge.svg").text.count(">unknown</text>") == 1


def test_security_headers_on_every_kind_of_answer(client: TestClient, web_data: Fixture) -> None:
    for path in (
        "/",
        "/projects/demo-pkg",
        f"/files/{web_data.files[DEMO_2]}",
        "/static/style.css",
        "/api/v1/verdicts",
        "/nowhere",
        "/api/v1/files/999999",
    ):
        answer = client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["referrer-policy"] == "no-referrer", path
        assert answer.headers["content-security-policy"] == PAGE_CSP, path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "unsafe-inline" not in PAGE_CSP
    assert "script-src 'self'" in PAGE_CSP


def test_a_crash_is_a_page_with_an_id_and_no_traceback(web_data: Fixture) -> None:
    app: FastAPI = make_app(settings_for(web_data), web_data.pool)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /srv/app/db.py line 12")

    @app.get("/api/v1/boom")
    def api_boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        page = test_client.get("/boom")
        assert page.status_code == 500
        assert "secret internals" not in page.text and "Traceback" not in page.text
        assert re.search(r"Error id: <code>[0-9a-f]{12}</code>", page.text)
        assert page.headers["content-security-policy"] == PAGE_CSP
        problem = test_client.get("/api/v1/boom")
        assert problem.status_code == 500
        assert problem.headers["content-type"] == "application/problem+json"
        body = problem.json()
        assert body["status"] == 500 and re.fullmatch(r"[0-9a-f]{12}", body["id"])
        assert "secret" not in problem.text
