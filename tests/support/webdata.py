"""Fixture rows for the status page and API tests, in a migrated PostgreSQL schema.

The rows are written with plain SQL (the triggers of migration 0400 keep the status
page's summaries), and include hostile package text: a version and a file name with
HTML in them, a difference path with a script tag, a diffoscope report with a script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rebuilder.attest.keys import KeyAlgorithm, generate_key
from rebuilder.attest.publish import load_or_create_key
from rebuilder.settings import Settings
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import Pool, open_pool
from rebuilder.store.log import TransparencyLog
from rebuilder.store.migrate import migrate

TOKEN = "operator-token-for-tests"  # noqa: S105 - a test token
ORIGIN = "rebuilder.test/web-log"
HOSTILE_VERSION = '1.0"<i>italic<i>'
HOSTILE_FILENAME = 'evil"><img src=x onerror=alert(1)>-1.0-py3-none-any.whl'
HOSTILE_PATH = "pkg/<script>alert('path')</script>.py"
HOSTILE_REASON = "<script>alert('reason')</script> failed"
DIFFOSCOPE_HTML = b"<html><body><script>alert('diffoscope')</script><p>differs</p></body></html>"
HOSTILE_REPOSITORY = "javascript:alert('repo')//<b>x</b>"
HOSTILE_TAG = "v2.0<script>alert('tag')</script>"
HOSTILE_SOURCE_PATH = "src/<img src=x onerror=alert('file')>.py"
HOSTILE_RULE = "rule<i>@1"
HOSTILE_DIFF = "--- a/x.py\n+++ b/x.py\n+</pre><script>alert('diff')</script>\n"
SOURCE_REPOSITORY = "https://git.example/demo/demo-pkg"
COMMIT = "c0ffee" + "0" * 34


@dataclass(frozen=True)
class Fixture:
    url: str
    pool: Pool
    blob_dir: Path
    files: dict[str, int]  # filename -> file id
    attempts: dict[str, int]  # label -> attempt id


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _schema(database_url: str) -> tuple[str, str]:
    name = f"web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name, make_conninfo(database_url, options=f"-csearch_path={name}")


def add_file(conn: psycopg.Connection[object], project: str, version: str, filename: str) -> int:
    conn.execute(
        "INSERT INTO projects (name, watched) VALUES (%s, true) ON CONFLICT DO NOTHING", (project,)
    )
    conn.execute(
        "INSERT INTO releases (project, version) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (project, version),
    )
    row = conn.execute(
        """
        INSERT INTO files (release_id, filename, kind, url, sha256, size, upload_time)
        SELECT id, %s, 'wheel', %s, %s, 1234, now() - interval '3 days'
        FROM releases WHERE project = %s AND version = %s RETURNING id
        """,
        (filename, f"https://files.example/{uuid.uuid4().hex}", sha(filename), project, version),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_done(
    conn: psycopg.Connection[object],
    file_id: int,
    verdict: str,
    *,
    days_ago: int = 0,
    reason_class: str | None = None,
    reason: str | None = None,
    differences: list[dict[str, str]] | None = None,
    stabilizers: list[dict[str, object]] | None = None,
    manifest: dict[str, str] | None = None,
    rebuilt_sha256: str | None = None,
    diagnosis: list[dict[str, str]] | None = None,
    risk: str | None = None,
    minutes_ago: int = 0,
) -> int:
    # The diagnosis columns only when asked for: earlier schemas (migration tests) lack them.
    extra_columns = ", diagnosis, risk" if diagnosis is not None or risk is not None else ""
    extra_values = ", %s, %s" if extra_columns else ""
    params: list[object] = [
        file_id,
        days_ago,
        days_ago,
        days_ago,
        minutes_ago,
        verdict,
        reason_class,
        reason,
        json.dumps(differences or []),
        json.dumps(stabilizers or []),
        None if manifest is None else json.dumps(manifest),
        rebuilt_sha256,
        json.dumps({"command": ["python", "-m", "build", "--wheel"], "env": {"TZ": "UTC"}}),
    ]
    if extra_columns:
        params += [json.dumps(diagnosis or []), risk]
    row = conn.execute(
        f"""
        INSERT INTO attempts (file_id, status, priority, requested_at, started_at, finished_at,
            worker, verdict, reason_class, reason, differences, stabilizers, evidence_manifest,
            rebuilt_sha256, strategy, seconds{extra_columns})
        VALUES (%s, 'done', 5, now() - make_interval(days => %s) - interval '1 hour',
            now() - make_interval(days => %s) - interval '50 minutes',
            now() - make_interval(days => %s, mins => %s), 'worker-1', %s, %s, %s, %s, %s,
            %s, %s, %s, 42.5{extra_values})
        RETURNING id
        """,  # noqa: S608 - only fixed column names are formatted in
        params,
    ).fetchone()
    assert row is not None
    return int(row[0])


def _envelope(tag: str) -> bytes:
    payload = base64.b64encode(json.dumps({"tag": tag}).encode()).decode()
    doc = {
        "payload": payload,
        "payloadType": "application/vnd.in-toto+json",
        "signatures": [{"keyid": "k" * 64, "sig": base64.b64encode(tag.encode()).decode()}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def fill(url: str, pool: Pool, blob_dir: Path) -> Fixture:
    blobs = BlobStore(blob_dir)
    load_or_create_key(blob_dir.parent / "keys" / "signing-key.pem")  # its .pub is served
    log_sha = blobs.put_bytes(b"building...\n<script>alert('log')</script>\nwheel built\n")
    report_sha = blobs.put_bytes(DIFFOSCOPE_HTML)
    files: dict[str, int] = {}
    attempts: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for version in ("1.0", "1.1", "2.0"):
            name = f"demo_pkg-{version}-py3-none-any.whl"
            files[name] = add_file(conn, "demo-pkg", version, name)
        attempts["ok-old"] = add_done(
            conn, files["demo_pkg-1.0-py3-none-any.whl"], "mismatch", days_ago=5
        )
        attempts["ok"] = add_done(
            conn,
            files["demo_pkg-1.0-py3-none-any.whl"],
            "reproducible",
            days_ago=4,
            manifest={"build.log": log_sha},
            rebuilt_sha256=sha("demo_pkg-1.0-py3-none-any.whl"),
        )
        attempts["equiv"] = add_done(
            conn,
            files["demo_pkg-1.1-py3-none-any.whl"],
            "equivalent",
            days_ago=2,
            stabilizers=[{"name": "zip-order", "version": 1}],
        )
        attempts["mismatch-before"] = add_done(
            conn, files["demo_pkg-2.0-py3-none-any.whl"], "reproducible", days_ago=3
        )
        attempts["mismatch"] = add_done(
            conn,
            files["demo_pkg-2.0-py3-none-any.whl"],
            "mismatch",
            days_ago=1,
            differences=[{"path": HOSTILE_PATH, "kind": "content"}],
            manifest={"build.log": log_sha, "diffoscope/diffoscope.html": report_sha},
            rebuilt_sha256="f" * 64,
        )
        files[HOSTILE_FILENAME] = add_file(conn, "evil", HOSTILE_VERSION, HOSTILE_FILENAME)
        attempts["evil"] = add_done(
            conn,
            files[HOSTILE_FILENAME],
            "failed",
            reason_class="build",
            reason=HOSTILE_REASON,
        )
        for i in range(30):
            files[f"other{i}"] = add_file(
                conn, f"other-{i:02d}", "0.1", f"other_{i:02d}-0.1.tar.gz"
            )
        conn.execute("INSERT INTO attempts (file_id, priority) VALUES (%s, 9)", (files["other0"],))
        conn.execute(
            """
            INSERT INTO workers (name, host, pid, version, heartbeat_at) VALUES
            ('worker-1', 'host-a', 10, '0.1.0', now()),
            ('worker-<i>2</i>', 'host-b', 11, '0.1.0', now() - interval '1 hour')
            """
        )
    log = TransparencyLog(pool, origin=ORIGIN)
    lines = [_envelope("provenance"), _envelope("vsa")]
    entries = log.append_many(lines)
    log.checkpoint(generate_key(KeyAlgorithm.ED25519), "test-key")
    with psycopg.connect(url, autocommit=True) as conn:
        for position, (entry, kind) in enumerate(zip(entries, ("provenance", "vsa"), strict=True)):
            conn.execute(
                """
                INSERT INTO attestations (attempt_id, file_id, position, kind, log_origin,
                    leaf_index) VALUES (%s, %s, %s, %s, %s, %s)
                """,
                (
                    attempts["ok"],
                    files["demo_pkg-1.0-py3-none-any.whl"],
                    position,
                    kind,
                    ORIGIN,
                    entry.index,
                ),
            )
    _fill_sources(url, pool, blobs, files)
    return Fixture(url, pool, blob_dir, files, attempts)


def add_source_check(
    conn: psycopg.Connection[object],
    file_id: int,
    verdict: str,
    *,
    result: dict[str, object] | None = None,
    repository: str | None = None,
    tag: str | None = None,
    commit: str | None = None,
    reason: str | None = None,
    manifest: dict[str, str] | None = None,
) -> int:
    """A finished source check of the release of ``file_id`` (judging that file)."""
    row = conn.execute(
        """
        INSERT INTO source_checks (release_id, sdist_id, status, requested_at, started_at,
            finished_at, worker, verdict, reason, repository, tag, commit, result, seconds,
            evidence_manifest)
        SELECT release_id, id, 'done', now() - interval '2 hours', now() - interval '1 hour',
            now(), 'worker-1', %s, %s, %s, %s, %s, %s, 3.5, %s
        FROM files WHERE id = %s RETURNING id
        """,
        (
            verdict,
            reason,
            repository,
            tag,
            commit,
            None if result is None else json.dumps(result),
            None if manifest is None else json.dumps(manifest),
            file_id,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _fill_sources(url: str, pool: Pool, blobs: BlobStore, files: dict[str, int]) -> None:
    """Source checks: demo 1.0 consistent and signed, 2.0 inconsistent with hostile text,
    the evil release failed; demo 1.1 never checked."""
    diff_sha = blobs.put_bytes(HOSTILE_DIFF.encode())
    with psycopg.connect(url, autocommit=True) as conn:
        add_source_check(conn, files["demo_pkg-1.0-py3-none-any.whl"], "inconsistent")
        consistent = add_source_check(
            conn,
            files["demo_pkg-1.0-py3-none-any.whl"],
            "consistent",
            repository=SOURCE_REPOSITORY,
            tag="v1.0",
            commit=COMMIT,
            result={
                "verdict": "consistent",
                "repository": SOURCE_REPOSITORY,
                "tag": "v1.0",
                "commit": COMMIT,
                "explained": [{"path": "PKG-INFO", "rule": "pkg-info@1"}],
                "differing": [],
                "repo_only_count": 7,
                "from_git": [
                    {"filename": "demo_pkg-1.0-py3-none-any.whl", "verdict": "reproducible"}
                ],
            },
        )
        add_source_check(
            conn,
            files["demo_pkg-2.0-py3-none-any.whl"],
            "inconsistent",
            repository=HOSTILE_REPOSITORY,
            tag=HOSTILE_TAG,
            commit=COMMIT,
            result={
                "verdict": "inconsistent",
                "explained": [{"path": HOSTILE_SOURCE_PATH, "rule": HOSTILE_RULE}],
                "differing": [{"path": HOSTILE_SOURCE_PATH, "kind": "content"}],
                "repo_only_count": 3,
                "from_git": [
                    {"filename": HOSTILE_FILENAME, "verdict": "mismatch", "reason": "<b>r</b>"}
                ],
            },
            manifest={"report.json": diff_sha, "diff.patch": diff_sha},
        )
        add_source_check(conn, files[HOSTILE_FILENAME], "failed", reason=HOSTILE_REASON)
    entry = TransparencyLog(pool, origin=ORIGIN).append_many([_envelope("source-check")])[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO source_attestations (check_id, release_id, position, kind, log_origin,
                leaf_index)
            SELECT id, release_id, 0, 'source-check', %s, %s FROM source_checks WHERE id = %s
            """,
            (ORIGIN, entry.index, consistent),
        )


RISKY = "risky-1.0-py3-none-any.whl"
BENIGN = "benign-1.0-py3-none-any.whl"
RISKY_DIFF = (
    "--- published/risky/__init__.py\n+++ rebuilt/risky/__init__.py\n"
    "-</pre><script>alert('d')</script>\n+x = 1\n"
)


def add_risk_mismatches(data: Fixture) -> None:
    """Two more mismatches today: a benign packaging one (the newest) and one to review
    (an hour older), with diagnoses and, for the risky one, a hostile unified diff."""
    blobs = BlobStore(data.blob_dir)
    diff_sha = blobs.put_bytes(RISKY_DIFF.encode())
    with psycopg.connect(data.url, autocommit=True) as conn:
        data.files[RISKY] = add_file(conn, "risky", "1.0", RISKY)
        data.attempts["risky"] = add_done(
            conn,
            data.files[RISKY],
            "mismatch",
            minutes_ago=60,
            differences=[{"path": HOSTILE_PATH, "kind": "content"}],
            diagnosis=[
                {
                    "path": HOSTILE_PATH,
                    "kind": "content",
                    "cause": "code",
                    "detail": "module differs <b>bold</b>",
                    "risk": "review",
                }
            ],
            risk="review",
            manifest={"differences.diff": diff_sha},
        )
        data.files[BENIGN] = add_file(conn, "benign", "1.0", BENIGN)
        data.attempts["benign"] = add_done(
            conn,
            data.files[BENIGN],
            "mismatch",
            minutes_ago=5,
            differences=[{"path": "benign-1.0.dist-info/METADATA", "kind": "metadata"}],
            diagnosis=[
                {
                    "path": "benign-1.0.dist-info/METADATA",
                    "kind": "metadata",
                    "cause": "line-endings",
                    "detail": "METADATA: only CRLF/LF line endings differ",
                    "risk": "packaging",
                }
            ],
            risk="packaging",
        )


def schema_with_data(database_url: str, blob_dir: Path) -> Iterator[Fixture]:
    """A new migrated schema filled by :func:`fill`, dropped afterwards."""
    name, url = _schema(database_url)
    migrate(url)
    pool = open_pool(url, min_size=1, max_size=4, name="web-tests")
    try:
        yield fill(url, pool, blob_dir)
    finally:
        pool.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def settings_for(data: Fixture, token: str | None = TOKEN) -> Settings:
    return Settings(
        database_url=data.url,
        data_dir=data.blob_dir.parent,
        log_origin=ORIGIN,
        operator_token=token,
        index_url="http://127.0.0.1:1/simple/",
        signing_key=data.blob_dir.parent / "keys" / "signing-key.pem",
        log_key_name="rebuilder.test",
    )
