"""``rebuilder campaign`` and ``rebuilder audit`` end to end on PostgreSQL and a fixture index.

No broker is reachable here (a closed port): attempts stay queued and unsent, as after
a crash between commit and send, for the scheduler to send.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cli.main import main
from rebuilder.campaigns.store import PostgresCampaignStore
from rebuilder.store.db import Pool
from rebuilder.store.repository import PostgresStore
from rebuilder.verdict import FileResult, Verdict
from tests.support.index_server import FixtureIndex


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    campaign_url: str,
    pool: Pool,
    served: FixtureIndex,
    tmp_path: Path,
) -> Pool:
    monkeypatch.setenv("REBUILDER_DATABASE_URL", campaign_url)
    monkeypatch.setenv("REBUILDER_INDEX_URL", served.url)
    monkeypatch.setenv("REBUILDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REBUILDER_BROKER_URL", "amqp://guest:guest@127.0.0.1:1/")
    return pool


def test_dry_run_then_start_then_report_then_cancel(
    env: Pool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        main(
            ["campaign", "start", "--name", "n", "--select", "project:demo", "--dry-run", "--json"]
        )
        == 0
    )
    dry = json.loads(capsys.readouterr().out)
    assert dry["files"] == 4 and dry["unknown_to_database"] == 4

    code = main(
        [
            "campaign",
            "start",
            "--name",
            "incident",
            "--select",
            "demo==2.0",
            "--select",
            "uploaded:2024-05-01..2024-05-02",
            "--json",
        ]
    )
    assert code == 0
    started = json.loads(capsys.readouterr().out)
    # demo 2.0 (2 files); the window finds no recorded files yet (nothing recorded before)
    assert started["files"] == 2 and started["queued"] == 2
    store = PostgresCampaignStore(env)
    assert store.progress(started["id"]).queued == 2
    with env.connection() as conn:
        unsent = conn.execute(
            "SELECT count(*) FROM attempts WHERE dispatched_at IS NULL AND status = 'queued'"
        ).fetchone()
    assert unsent is not None and unsent[0] == 2  # left for the scheduler to send

    out = tmp_path / "report.html"
    assert (
        main(["campaign", "report", str(started["id"]), "--format", "html", "--out", str(out)]) == 0
    )
    assert "<h1>Campaign" in out.read_text()
    assert main(["campaign", "status", str(started["id"]), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["progress"]["queued"] == 2
    assert main(["campaign", "list", "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == [started["id"]]
    assert main(["campaign", "cancel", str(started["id"])]) == 0
    assert store.progress(started["id"]).cancelled == 2
    assert main(["campaign", "cancel", str(started["id"])]) == 2  # not running any more


def test_audit_exit_codes_follow_the_verdicts(
    env: Pool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wheel_sha = hashlib.sha256(b"demo wheel 1.0").hexdigest()
    lock = tmp_path / "requirements.txt"
    lock.write_text(f"demo==1.0 --hash=sha256:{wheel_sha}\n")
    assert main(["audit", str(lock), "--json"]) == 2  # never rebuilt: unchecked
    result = json.loads(capsys.readouterr().out)
    assert [f["state"] for f in result["files"]] == ["unknown"]

    assert main(["audit", str(lock), "--rebuild", "--json"]) == 2  # queued: pending
    result = json.loads(capsys.readouterr().out)
    assert [f["state"] for f in result["files"]] == ["pending"]

    fleet = PostgresStore(env)
    attempt_id = result["files"][0]["attempt_id"]
    judged = FileResult("demo", "1.0", "demo-1.0-py3-none-any.whl", Verdict.MISMATCH, wheel_sha)
    assert fleet.finish_attempt(attempt_id, judged, None, None)
    assert main(["audit", str(lock)]) == 1
    assert "mismatch" in capsys.readouterr().out

    lock.write_text(f"demo==1.0 --hash=sha256:{'0' * 64}\n")
    assert main(["audit", str(lock), "--json"]) == 1  # the lock's hash is not served
