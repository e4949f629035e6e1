"""The JSON API over a real migrated database: reads, writes, pagination, OpenAPI."""

from __future__ import annotations

import base64
import itertools
import json

import psycopg
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from rebuilder.worker.queue import Priority
from tests.support.fakes import FakeDispatcher
from tests.support.web import make_app
from tests.support.webdata import (
    TOKEN,
    Fixture,
    add_done,
    add_file,
    settings_for,
)

DEMO_1 = "demo_pkg-1.0-py3-none-any.whl"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_openapi_document_is_valid_and_lists_the_api(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    validate(doc)
    paths = set(doc["paths"])
    for wanted in (
        "/api/v1/projects",
        "/api/v1/projects/{name}/releases",
        "/api/v1/files/{file_id}",
        "/api/v1/files/{file_id}/attempts",
        "/api/v1/files/{file_id}/bundle",
        "/api/v1/attempts/{attempt_id}",
        "/api/v1/verdicts",
        "/api/v1/queue",
        "/api/v1/log/checkpoint",
        "/api/v1/log/inclusion",
        "/api/v1/log/consistency",
        "/api/v1/watch",
        "/api/v1/files/{file_id}/rebuild",
    ):
        assert wanted in paths, wanted
    assert not any(p.startswith(("/files", "/projects", "/static")) for p in paths)
    index = client.get("/api")
    assert "/api/v1/verdicts" in index.text


def test_reads(client: TestClient, web_data: Fixture) -> None:
    project = client.get("/api/v1/projects/Demo_Pkg").json()
    assert project["name"] == "demo-pkg" and project["watched"] is True
    releases = client.get("/api/v1/projects/demo-pkg/releases").json()
    assert [r["version"] for r in releases["items"]] == ["2.0", "1.1", "1.0"]
    assert releases["items"][0]["files"][0]["verdict"] == "mismatch"
    release = client.get("/api/v1/projects/demo-pkg/releases/1.1").json()
    assert release["files"][0]["verdict"] == "equivalent"
    file_id = web_data.files[DEMO_1]
    one = client.get(f"/api/v1/files/{file_id}").json()
    assert one["verdict"] == "reproducible" and one["previous_verdict"] == "mismatch"
    attempts = client.get(f"/api/v1/files/{file_id}/attempts").json()
    assert [a["id"] for a in attempts["items"]] == [
        web_data.attempts["ok"],
        web_data.attempts["ok-old"],
    ]
    full = client.get(f"/api/v1/attempts/{web_data.attempts['equiv']}").json()
    assert full["stabilizers"] == [{"name": "zip-order", "version": 1}]
    assert full["strategy"]["env"] == {"TZ": "UTC"}
    mismatches = client.get("/api/v1/verdicts", params={"verdict": "mismatch"}).json()
    assert [f["version"] for f in mismatches["items"]] == ["2.0"]
    queue = client.get("/api/v1/queue").json()
    assert queue["queued"] >= 1 and {w["name"] for w in queue["workers"]} >= {"worker-1"}
    summary = client.get("/api/v1/summary").json()
    assert summary["counts"]["failed"] == 1
    assert sum(sum(d["counts"].values()) for d in summary["days"]) == len(web_data.attempts)


def test_bundle_checkpoint_and_proofs(client: TestClient, web_data: Fixture) -> None:
    file_id = web_data.files[DEMO_1]
    bundle = client.get(f"/api/v1/files/{file_id}/bundle")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "application/jsonl"
    assert "rebuild.intoto.jsonl" in bundle.headers["content-disposition"]
    lines = bundle.text.strip().split("\n")
    assert [json.loads(base64.b64decode(json.loads(x)["payload"]))["tag"] for x in lines] == [
        "provenance",
        "vsa",
    ]
    same = client.get(f"/pypi/demo-pkg/1.0/{DEMO_1}/rebuild.intoto.jsonl")
    assert same.content == bundle.content
    assert client.get(f"/api/v1/files/{web_data.files['other3']}/bundle").status_code == 404
    checkpoint = client.get("/api/v1/log/checkpoint").json()
    assert checkpoint["tree_size"] == 2 and checkpoint["note"].startswith("rebuilder.test/")
    proof = client.get("/api/v1/log/inclusion", params={"index": 1, "tree_size": 2}).json()
    assert proof["logIndex"] == 1 and len(proof["hashes"]) == 1
    consistency = client.get("/api/v1/log/consistency", params={"old_size": 1, "new_size": 2})
    assert consistency.status_code == 200
    bad = client.get("/api/v1/log/inclusion", params={"index": 5, "tree_size": 2})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/log/entries/0").status_code == 200


def test_errors_are_problem_documents(client: TestClient) -> None:
    for path, status in (
        ("/api/v1/files/999999", 404),
        ("/api/v1/files/not-a-number", 422),
        ("/api/v1/projects?cursor=bm90LWEtY3Vyc29y", 400),
        ("/api/v1/projects?limit=100000", 422),
        ("/api/v1/nothing-here", 404),
    ):
        answer = client.get(path)
        assert answer.status_code == status, path
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == status and body["title"] and "detail" in body


def test_a_cursor_of_one_list_is_refused_by_another(client: TestClient) -> None:
    page = client.get("/api/v1/projects", params={"limit": 2}).json()
    assert page["next"]
    answer = client.get("/api/v1/attempts", params={"cursor": page["next"]})
    assert answer.status_code == 400


@pytest.mark.parametrize("method_path", ["/api/v1/watch", "/api/v1/files/{file}/rebuild"])
def test_writes_need_the_operator_token(
    client: TestClient, web_data: Fixture, method_path: str
) -> None:
    path = method_path.format(file=web_data.files["other2"])
    body = {"projects": ["attrs"]} if "watch" in path else {}
    missing = client.post(path, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403
    basic = client.post(path, json=body, headers={"Authorization": "Basic b3A6b3A="})
    assert basic.status_code == 401


def test_writes_are_refused_when_no_token_is_configured(web_data: Fixture) -> None:
    app = make_app(settings_for(web_data, token=None), web_data.pool)
    with TestClient(app) as test_client:
        answer = test_client.post("/api/v1/watch", json={"projects": ["x"]}, headers=AUTH)
        assert answer.status_code == 403
        empty = test_client.post(
            "/api/v1/watch", json={"projects": ["x"]}, headers={"Authorization": "Bearer "}
        )
        assert empty.status_code in {401, 403}


def test_watch_add(client: TestClient, web_data: Fixture) -> None:
    answer = client.post(
        "/api/v1/watch", json={"projects": ["New_Project", "demo-pkg"]}, headers=AUTH
    )
    assert answer.status_code == 200
    assert answer.json() == {"added": ["new-project"]}
    with psycopg.connect(web_data.url) as conn:
        row = conn.execute("SELECT watched FROM projects WHERE name = 'new-project'").fetchone()
    assert row == (True,)
    invalid = client.post("/api/v1/watch", json={"projects": ["not a name!"]}, headers=AUTH)
    assert invalid.status_code == 422


def test_request_rebuild_records_and_dispatches(
    client: TestClient, web_data: Fixture, dispatcher: FakeDispatcher
) -> None:
    file_id = web_data.files["other4"]
    answer = client.post(
        f"/api/v1/files/{file_id}/rebuild", json={"priority": "campaign"}, headers=AUTH
    )
    assert answer.status_code == 202
    attempt_id = answer.json()["attempt_id"]
    assert answer.json()["dispatched"] is True
    assert dispatcher.sent[-1] == (attempt_id, Priority.CAMPAIGN)
    with psycopg.connect(web_data.url) as conn:
        row = conn.execute(
            "SELECT status, priority, dispatched_at IS NOT NULL FROM attempts WHERE id = %s",
            (attempt_id,),
        ).fetchone()
    assert row == ("queued", int(Priority.CAMPAIGN), True)
    again = client.post(f"/api/v1/files/{file_id}/rebuild", headers=AUTH)
    assert again.status_code == 409
    assert client.post("/api/v1/files/999999/rebuild", headers=AUTH).status_code == 404


def test_request_rebuild_without_a_broker_is_recorded_undispatched(web_data: Fixture) -> None:
    failing = FakeDispatcher(down=True)
    for dispatcher in (None, failing):
        app = make_app(settings_for(web_data), web_data.pool, dispatcher=dispatcher)
        file_id = web_data.files["other5" if dispatcher is None else "other6"]
        with TestClient(app) as test_client:
            answer = test_client.post(f"/api/v1/files/{file_id}/rebuild", headers=AUTH)
        assert answer.status_code == 202
        assert answer.json()["dispatched"] is False
        with psycopg.connect(web_data.url) as conn:
            row = conn.execute(
                "SELECT status, dispatched_at FROM attempts WHERE id = %s",
                (answer.json()["attempt_id"],),
            ).fetchone()
        assert row == ("queued", None)  # the scheduler sends it


def _walk(client: TestClient, path: str, key: str, on_page: object = None) -> list[object]:
    seen: list[object] = []
    cursor = None
    while True:
        params = {"limit": 4} if cursor is None else {"limit": 4, "cursor": cursor}
        page = client.get(path, params=params).json()
        seen.extend(item[key] for item in page["items"])
        if callable(on_page):
            on_page(len(seen))
        cursor = page["next"]
        if cursor is None:
            return seen


def test_project_pages_are_stable_while_projects_are_added(
    client: TestClient, web_data: Fixture
) -> None:
    before = _walk(client, "/api/v1/projects", "name")
    assert before == sorted(before) and len(before) == len(set(before)) > 8

    def insert(n: int) -> None:
        # Names that sort before and after the current position.
        with psycopg.connect(web_data.url, autocommit=True) as conn:
            for name in (f"aaa-{n}", f"zzz-{n}", f"other-{n:02d}-b"):
                conn.execute("INSERT INTO projects (name) VALUES (%s)", (name,))

    during = _walk(client, "/api/v1/projects", "name", insert)
    assert len(during) == len(set(during)), "a project was listed twice"
    assert set(before) <= set(during), "a project was skipped"
    assert during == sorted(during)


def test_attempt_and_verdict_pages_are_stable_while_rebuilds_finish(
    client: TestClient, web_data: Fixture
) -> None:
    with psycopg.connect(web_data.url, autocommit=True) as conn:
        for i in range(10):
            add_done(
                conn,
                add_file(conn, "paging", f"0.{i}", f"paging-0.{i}.tar.gz"),
                "failed",
                reason_class="build",
            )
    before = _walk(client, "/api/v1/attempts", "id")
    assert before == sorted(before, reverse=True)

    serial = itertools.count()

    def finish_more(_seen: int) -> None:
        n = next(serial)
        with psycopg.connect(web_data.url, autocommit=True) as conn:
            file_id = add_file(conn, "paging", f"1.{n}", f"paging-1.{n}.tar.gz")
            add_done(conn, file_id, "reproducible")

    during = _walk(client, "/api/v1/attempts", "id", finish_more)
    assert len(during) == len(set(during))
    assert set(before) <= set(during)
    verdicts = _walk(client, "/api/v1/verdicts", "file_id", finish_more)
    assert len(verdicts) == len(set(verdicts)), "a file was listed twice"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/projects?prefix=de%00mo",
        "/api/v1/projects/de%00mo",
        "/search?q=%00",
        "/projects/de%00mo",
    ],
)
def test_a_nul_character_is_a_400_not_a_database_error(client: TestClient, url: str) -> None:
    # Found by the OpenAPI fuzz test: PostgreSQL text cannot hold NUL.
    answer = client.get(url)
    assert answer.status_code == 400, answer.text
    assert "NUL" in answer.text
