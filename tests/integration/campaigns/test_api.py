"""The campaign API and pages on the real web app and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rebuilder.index.simple import SimpleIndex
from rebuilder.settings import Settings
from rebuilder.store.db import Pool
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import FileResult, Verdict
from rebuilder.worker.queue import Priority
from reports.campaign_routes import get_index
from tests.support.fakes import FakeDispatcher
from tests.support.index_server import FixtureIndex
from tests.support.web import make_app

TOKEN = "campaign-operator-token"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = '<script>alert("name")</script>'


@pytest.fixture
def dispatcher() -> FakeDispatcher:
    return FakeDispatcher()


@pytest.fixture
def client(
    pool: Pool, served: FixtureIndex, tmp_path: Path, dispatcher: FakeDispatcher
) -> Iterator[TestClient]:
    settings = Settings(
        database_url="postgresql://unused",
        data_dir=tmp_path / "data",
        operator_token=TOKEN,
        index_url=served.url,
        cache_dir=tmp_path / "cache",
    )
    app = make_app(settings, pool, dispatcher=dispatcher)
    app.dependency_overrides[get_index] = lambda: SimpleIndex(served.url, tmp_path / "idx")
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def start(client: TestClient, **body: object) -> dict[str, object]:
    answer = client.post("/api/v1/campaigns", json=body, headers=AUTH)
    assert answer.status_code == 202, answer.text
    data: dict[str, object] = answer.json()
    return data


def test_writes_need_the_operator_token(client: TestClient) -> None:
    body = {"name": "x", "specs": ["demo==1.0"]}
    assert client.post("/api/v1/campaigns", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/v1/campaigns", json=body, headers=wrong).status_code == 403
    assert client.get("/api/v1/campaigns").json() == []  # nothing was started
    assert client.post("/api/v1/campaigns/1/cancel").status_code == 401


def test_dry_run_counts_and_starts_nothing(client: TestClient) -> None:
    body = {"name": "x", "projects": ["demo"], "project_window": {"since": "2024-05-04"}}
    answer = client.post("/api/v1/campaigns", json={**body, "dry_run": True}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["files"] == 2 and answer.json()["unknown_to_database"] == 2
    assert client.get("/api/v1/campaigns").json() == []


def test_start_follow_report_cancel(
    client: TestClient, pool: Pool, dispatcher: FakeDispatcher
) -> None:
    started = start(client, name=HOSTILE, specs=["demo==1.0", "other==1.0"])
    campaign_id = started["id"]
    assert (started["files"], started["queued"], started["dispatched"]) == (5, 5, 5)
    assert {p for _, p in dispatcher.sent} == {Priority.CAMPAIGN}

    listed = client.get("/api/v1/campaigns").json()
    assert [c["id"] for c in listed] == [campaign_id]
    one = client.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert one["name"] == HOSTILE and one["progress"]["queued"] == 5

    fleet = PostgresStore(pool)
    attempt_id = dispatcher.sent[0][0]
    row = fleet.attempt(attempt_id)
    assert row is not None
    file = fleet.file(row.file_id)
    assert file is not None
    done = FileResult(file.project, file.version, file.filename, Verdict.REPRODUCIBLE, "0" * 64)
    assert fleet.finish_attempt(attempt_id, done, None, None)

    page = client.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200
    assert '<meta http-equiv="refresh"' in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "<progress" in page.text
    assert client.get("/campaigns").status_code == 200

    csv_text = client.get(f"/api/v1/campaigns/{campaign_id}/report?format=csv").text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert sorted(r["state"] for r in rows) == ["queued"] * 4 + ["reproducible"]
    html = client.get(f"/api/v1/campaigns/{campaign_id}/report?format=html")
    assert html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]
    assert "<script>" not in html.text
    md = client.get(f"/api/v1/campaigns/{campaign_id}/report?format=md")
    assert md.text.startswith(f"# Campaign {campaign_id}")
    assert client.get(f"/api/v1/campaigns/{campaign_id}/report?format=pdf").status_code == 422

    cancelled = client.post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=AUTH)
    assert cancelled.json() == {"id": campaign_id, "status": "cancelled", "withdrawn": 4}
    again = client.post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=AUTH)
    assert again.status_code == 409
    page = client.get(f"/campaigns/{campaign_id}")
    assert '<meta http-equiv="refresh"' not in page.text  # nothing left to follow


def test_unknown_campaigns_and_bad_selections(client: TestClient) -> None:
    assert client.get("/api/v1/campaigns/999").status_code == 404
    assert client.get("/campaigns/999").status_code == 404
    assert client.get("/api/v1/campaigns/999/report").status_code == 404
    assert client.post("/api/v1/campaigns/999/cancel", headers=AUTH).status_code == 404
    empty = client.post("/api/v1/campaigns", json={"name": "x"}, headers=AUTH)
    assert empty.status_code == 422
    nothing = client.post(
        "/api/v1/campaigns", json={"name": "x", "specs": ["nosuch==1.0"]}, headers=AUTH
    )
    assert nothing.status_code == 422
    assert "no file" in nothing.text
