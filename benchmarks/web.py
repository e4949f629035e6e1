"""Speed of the status page and JSON API over a database of 1,000,000 attempts.

Fills a PostgreSQL database (INSERT ... SELECT generate_series, a few seconds) with
realistic shapes: many small projects and one big one, a few releases each, wheels and
sdists, several attempts per file with a mix of verdicts spread over a year, a queue,
workers, and a transparency log with attestations. Then serves the app with uvicorn on a
loopback port and times sequential, warm requests of every page and API endpoint.

    .venv/bin/python -m benchmarks.web --attempts 1000000 --report /tmp/web-bench.md

The database (default: rebuilder_bench_web on the local server) is made anew unless
``--reuse`` is given and it already holds the data.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import psycopg
import uvicorn
from psycopg import sql

from cli.web import web_app
from rebuilder.attest.keys import KeyAlgorithm, generate_key
from rebuilder.attest.publish import load_or_create_key
from rebuilder.settings import Settings
from rebuilder.store.blobs import BlobStore
from rebuilder.store.db import open_pool
from rebuilder.store.log import TransparencyLog
from rebuilder.store.migrate import migrate

logger = logging.getLogger(__name__)

SERVER = "postgresql://postgres@127.0.0.1:5432"
ORIGIN = "bench.rebuilder.test/log"
BIG = "big-project"
FILES_PER_RELEASE = 4
ATTEMPTS_PER_FILE = 5
BIG_RELEASES = 2000
ATTESTED_FILES = 500
SIGNED_SOURCES = 200
DIFF_BYTES = 400 * 1024  # a large diff: the page shows its first 256 KiB


def _make_database(name: str) -> str:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{SERVER}/{name}"


def fill(url: str, attempts: int) -> dict[str, float]:
    """Fill the schema; seconds taken per step."""
    files = attempts // ATTEMPTS_PER_FILE
    releases = files // FILES_PER_RELEASE
    projects = max(1, (releases - BIG_RELEASES) // 10)
    timings: dict[str, float] = {}

    def step(name: str, query: str, params: object = None) -> None:
        started = time.perf_counter()
        conn.execute(query, params)  # type: ignore[arg-type]
        timings[name] = time.perf_counter() - started
        logger.info("%s: %.1f s", name, timings[name])

    with psycopg.connect(url, autocommit=True) as conn:
        # Bulk load without the summary triggers, then fill the summaries the way
        # migration 0400 does for existing data (the triggers' per-row cost is measured
        # separately below).
        conn.execute("ALTER TABLE attempts DISABLE TRIGGER attempts_web_done_insert")
        conn.execute("ALTER TABLE attempts DISABLE TRIGGER attempts_web_project")
        step(
            "projects",
            "INSERT INTO projects (name, watched, added_at) "
            "SELECT 'proj-' || lpad(i::text, 6, '0'), i %% 3 = 0, now() - interval '400 days' "
            "FROM generate_series(1, %s) i "
            "UNION ALL SELECT %s, true, now() - interval '400 days'",
            (projects, BIG),
        )
        step(
            "releases",
            """
            INSERT INTO releases (project, version, discovered_at)
            SELECT CASE WHEN i <= %(big)s THEN %(bigname)s
                        ELSE 'proj-' || lpad((((i - %(big)s - 1) %% %(projects)s) + 1)::text,
                                             6, '0') END,
                   CASE WHEN i <= %(big)s THEN '1.' || i
                        ELSE '0.' || ((i - %(big)s - 1) / %(projects)s) END,
                   now() - make_interval(days => 365 - (i * 365 / %(releases)s)::int)
            FROM generate_series(1, %(releases)s) i
            """,
            {"big": BIG_RELEASES, "bigname": BIG, "projects": projects, "releases": releases},  # type: ignore[arg-type]
        )
        step(
            "files",
            """
            INSERT INTO files (release_id, filename, kind, url, sha256, size, upload_time,
                generator)
            SELECT r.id,
                   replace(r.project, '-', '_') || '-' || r.version ||
                       CASE k WHEN 0 THEN '.tar.gz' ELSE '-py3-none-any' || k || '.whl' END,
                   CASE k WHEN 0 THEN 'sdist' ELSE 'wheel' END,
                   'https://files.example/' || r.id || '/' || k,
                   encode(sha256((r.id || '/' || k)::bytea), 'hex'),
                   10000 + r.id, r.discovered_at,
                   CASE WHEN k > 0 THEN 'hatchling 1.' || (r.id %% 27) END
            FROM releases r CROSS JOIN generate_series(0, %s - 1) k
            """,
            (FILES_PER_RELEASE,),
        )
        step(
            "attempts",
            """
            INSERT INTO attempts (file_id, status, priority, requested_at, started_at,
                finished_at, worker, verdict, reason_class, reason, stabilizers, differences,
                seconds, rebuilt_sha256, evidence_manifest, strategy)
            SELECT f.id, 'done', 5, t - interval '5 minutes', t - interval '2 minutes', t,
                   'worker-' || (f.id %% 20),
                   v,
                   CASE WHEN v = 'failed' THEN 'build' END,
                   CASE WHEN v = 'failed' THEN 'the build backend exited with 1' END,
                   CASE WHEN v = 'equivalent'
                        THEN '[{"name": "zip-order", "version": 1}]'::jsonb ELSE '[]' END,
                   CASE WHEN v = 'mismatch'
                        THEN '[{"path": "pkg/__init__.py", "kind": "content"}]'::jsonb
                        ELSE '[]' END,
                   60 + (f.id %% 100), f.sha256, '{}'::jsonb,
                   '{"command": ["python", "-m", "build"]}'::jsonb
            FROM files f
            CROSS JOIN generate_series(1, %s) n
            CROSS JOIN LATERAL (
                SELECT now() - make_interval(secs => (365 * 86400.0) * (1 - (n - 1 + random())
                           / %s)) AS t,
                       CASE WHEN x < 0.80 THEN 'reproducible' WHEN x < 0.88 THEN 'equivalent'
                            WHEN x < 0.92 THEN 'mismatch' WHEN x < 0.98 THEN 'failed'
                            ELSE 'unsupported' END AS v
                FROM (SELECT random() AS x, f.id AS dep) r
            ) outcome
            ORDER BY t
            """,
            (ATTEMPTS_PER_FILE, ATTEMPTS_PER_FILE),
        )
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER attempts_web_done_insert")
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER attempts_web_project")
        step(
            "attempt_projects",
            "INSERT INTO attempt_projects (attempt_id, project) SELECT a.id, r.project "
            "FROM attempts a JOIN files f ON f.id = a.file_id "
            "JOIN releases r ON r.id = f.release_id",
        )
        step(
            "file_verdicts",
            """
            INSERT INTO file_verdicts (file_id, attempt_id, verdict, previous_verdict,
                finished_at)
            SELECT file_id, id, verdict, previous_verdict, finished_at FROM (
                SELECT file_id, id, verdict, finished_at,
                       lag(verdict) OVER (PARTITION BY file_id ORDER BY id) AS previous_verdict,
                       row_number() OVER (PARTITION BY file_id ORDER BY id DESC) AS nth
                FROM attempts WHERE status = 'done'
            ) ranked WHERE nth = 1
            """,
        )
        step(
            "verdict_days",
            "INSERT INTO verdict_days (day, verdict, n) "
            "SELECT (finished_at AT TIME ZONE 'UTC')::date, verdict, count(*) FROM attempts "
            "WHERE status = 'done' GROUP BY 1, 2",
        )
        step(
            "project_verdicts",
            "INSERT INTO project_verdicts (project, verdict, n) "
            "SELECT r.project, fv.verdict, count(*) FROM file_verdicts fv "
            "JOIN files f ON f.id = fv.file_id JOIN releases r ON r.id = f.release_id "
            "GROUP BY 1, 2",
        )
        step(
            "queue",
            "INSERT INTO attempts (file_id, priority) SELECT id, 1 FROM files WHERE id % 200 = 0",
        )
        conn.execute(
            "INSERT INTO workers (name, host, pid, version, heartbeat_at) "
            "SELECT 'worker-' || i, 'host-' || (i % 5), 1000 + i, '0.1.0', "
            "now() - make_interval(secs => i * 20) FROM generate_series(0, 19) i"
        )
        step("analyze", "VACUUM ANALYZE")
    return timings


def fill_log(url: str) -> None:
    """A log of 2 envelopes for each of ATTESTED_FILES files, checkpointed, and linked."""
    pool = open_pool(url, min_size=1, max_size=2, name="bench-fill")
    try:
        log = TransparencyLog(pool, origin=ORIGIN)
        with pool.connection() as conn:
            rows = conn.execute(
                "SELECT f.id, fv.attempt_id FROM files f "
                "JOIN file_verdicts fv ON fv.file_id = f.id ORDER BY f.id DESC LIMIT %s",
                (ATTESTED_FILES,),
            ).fetchall()
        lines = []
        for file_id, attempt_id in rows:
            for kind in ("provenance", "vsa"):
                payload = base64.b64encode(
                    json.dumps({"file": file_id, "attempt": attempt_id, "kind": kind}).encode()
                ).decode()
                lines.append(
                    json.dumps(
                        {
                            "payload": payload,
                            "payloadType": "application/vnd.in-toto+json",
                            "signatures": [{"keyid": "k" * 64, "sig": "c2ln"}],
                        },
                        separators=(",", ":"),
                    )
                )
        entries = log.append_many(lines)
        log.checkpoint(generate_key(KeyAlgorithm.ED25519), "bench-key")
        with pool.connection() as conn, conn.transaction():
            with conn.cursor().copy(
                "COPY attestations (attempt_id, file_id, position, kind, log_origin, leaf_index) "
                "FROM STDIN"
            ) as copy:
                for n, (file_id, attempt_id) in enumerate(rows):
                    for position, kind in enumerate(("provenance", "vsa")):
                        entry = entries[2 * n + position]
                        copy.write_row((attempt_id, file_id, position, kind, ORIGIN, entry.index))
            conn.execute("ANALYZE attestations")
    finally:
        pool.close()


def fill_sources(url: str, blobs: BlobStore) -> float:
    """A finished source check for every release (an older one for 10%), mixed verdicts,
    results with explained and differing files, a large diff for the inconsistent ones,
    and signed statements in the log for SIGNED_SOURCES releases. Seconds taken."""
    started = time.perf_counter()
    diff_line = "+ changed line of an sdist file that is not in git\n"
    diff_sha = blobs.put_bytes((diff_line * (DIFF_BYTES // len(diff_line))).encode())
    result = {
        "explained": [
            {"path": f"pkg/_version{i}.py", "rule": "setuptools-scm@1"} for i in range(5)
        ],
        "differing": [{"path": f"pkg/mod{i}.py", "kind": "content"} for i in range(20)],
        "repo_only_count": 120,
        "from_git": [{"filename": "x-1.0.tar.gz", "verdict": "mismatch", "reason": None}],
    }
    with psycopg.connect(url, autocommit=True) as conn:
        for older in (True, False):
            conn.execute(
                """
                INSERT INTO source_checks (release_id, sdist_id, status, requested_at,
                    started_at, finished_at, worker, verdict, reason, repository, tag, commit,
                    result, seconds, evidence_manifest)
                SELECT r.id, f.id, 'done', r.discovered_at, r.discovered_at,
                    r.discovered_at + interval '1 minute', 'worker-1', v.verdict,
                    CASE v.verdict WHEN 'failed' THEN 'git fetch timed out' END,
                    'https://git.example/' || r.project, 'v' || r.version,
                    encode(sha256(r.id::text::bytea), 'hex')::char(40), %(result)s, 12.5,
                    CASE v.verdict WHEN 'inconsistent' THEN
                        jsonb_build_object('diff.patch', %(diff)s::text) END
                FROM releases r
                JOIN files f ON f.release_id = r.id AND f.kind = 'sdist'
                CROSS JOIN LATERAL (SELECT CASE
                    WHEN r.id %% 10 < 6 THEN 'consistent' WHEN r.id %% 10 < 8 THEN 'inconsistent'
                    WHEN r.id %% 10 < 9 THEN 'no-source' ELSE 'failed' END AS verdict) v
                WHERE NOT %(older)s OR r.id %% 10 = 3
                ORDER BY r.id
                """,
                {"result": json.dumps(result), "diff": diff_sha, "older": older},
            )
        rows = conn.execute(
            "SELECT max(id), release_id FROM source_checks GROUP BY release_id "
            "ORDER BY release_id DESC LIMIT %s",
            (SIGNED_SOURCES,),
        ).fetchall()
    pool = open_pool(url, min_size=1, max_size=2, name="bench-fill")
    try:
        entries = TransparencyLog(pool, origin=ORIGIN).append_many(
            [_envelope({"source-check": int(check_id)}) for check_id, _ in rows]
        )
        with pool.connection() as conn, conn.transaction():
            with conn.cursor().copy(
                "COPY source_attestations (check_id, release_id, position, kind, log_origin, "
                "leaf_index) FROM STDIN"
            ) as copy:
                for (check_id, release_id), entry in zip(rows, entries, strict=True):
                    copy.write_row((check_id, release_id, 0, "source-check", ORIGIN, entry.index))
            conn.execute("ANALYZE source_checks")
            conn.execute("ANALYZE source_attestations")
    finally:
        pool.close()
    return time.perf_counter() - started


def _envelope(payload: dict[str, object]) -> str:
    return json.dumps(
        {
            "payload": base64.b64encode(json.dumps(payload).encode()).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"keyid": "k" * 64, "sig": "c2ln"}],
        },
        separators=(",", ":"),
    )


def trigger_cost(url: str, n: int = 20000) -> tuple[float, float]:
    """Seconds to insert ``n`` finished attempts with, then without, the summary triggers."""
    results = []
    with psycopg.connect(url, autocommit=True) as conn:
        for enabled in (True, False):
            action = "ENABLE" if enabled else "DISABLE"
            for trigger in ("attempts_web_done_insert", "attempts_web_project"):
                conn.execute(f"ALTER TABLE attempts {action} TRIGGER {trigger}")
            with conn.transaction():
                started = time.perf_counter()
                conn.execute(
                    "INSERT INTO attempts (file_id, status, finished_at, verdict) "
                    "SELECT id, 'done', now(), 'reproducible' FROM files ORDER BY id LIMIT %s",
                    (n,),
                )
                results.append(time.perf_counter() - started)
                raise psycopg.Rollback
        conn.execute("ALTER TABLE attempts ENABLE TRIGGER USER")
    return results[0], results[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def endpoints(url: str, rng: random.Random) -> list[tuple[str, Callable[[], str]]]:
    """Every page and API read, each a function picking a fresh realistic target."""
    with psycopg.connect(url) as conn:
        projects = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM projects ORDER BY random() LIMIT 500"
            ).fetchall()
        ]
        files = [
            r[0]
            for r in conn.execute("SELECT id FROM files ORDER BY random() LIMIT 500").fetchall()
        ]
        attempts = [
            r[0]
            for r in conn.execute("SELECT id FROM attempts ORDER BY random() LIMIT 500").fetchall()
        ]
        attested = [
            r[0]
            for r in conn.execute("SELECT DISTINCT file_id FROM attestations LIMIT 200").fetchall()
        ]
        releases = conn.execute(
            "SELECT project, version FROM releases ORDER BY random() LIMIT 500"
        ).fetchall()
        size_row = conn.execute("SELECT tree_size FROM log_heads").fetchone()
        inconsistent = conn.execute(
            "SELECT r.project, r.version FROM source_checks c JOIN releases r "
            "ON r.id = c.release_id WHERE c.verdict = 'inconsistent' LIMIT 200"
        ).fetchall()
        signed = conn.execute(
            "SELECT r.project, r.version FROM source_attestations t JOIN releases r "
            "ON r.id = t.release_id LIMIT 200"
        ).fetchall()
    size = int(size_row[0]) if size_row else 1
    client = httpx2.Client()
    second_page_cursor: dict[str, str] = {}

    def big_second_page() -> str:
        if "big" not in second_page_cursor:
            page = client.get(f"{BASE[0]}/api/v1/projects/{BIG}/releases?limit=20").json()
            second_page_cursor["big"] = page["next"]
        return f"/projects/{BIG}?cursor={second_page_cursor['big']}"

    def deep_projects() -> str:
        name = rng.choice(projects)
        cursor = base64.urlsafe_b64encode(json.dumps([1, "projects", name]).encode()).decode()
        return f"/api/v1/projects?cursor={cursor.rstrip('=')}"

    pick = rng.choice
    return [
        ("page: home", lambda: "/"),
        ("page: search (suggestions)", lambda: f"/search?q={pick(projects)[:9]}"),
        ("page: search (exact, redirect)", lambda: f"/search?q={pick(projects).upper()}"),
        ("page: project (small)", lambda: f"/projects/{pick(projects)}"),
        ("page: project (big, 2,000 releases)", lambda: f"/projects/{BIG}"),
        ("page: project (big, page 2)", big_second_page),
        ("page: file", lambda: f"/files/{pick(files)}"),
        ("page: file (attested)", lambda: f"/files/{pick(attested)}"),
        ("feed: global", lambda: "/feeds/problems.atom"),
        ("feed: project", lambda: f"/projects/{pick(projects)}/feed.atom"),
        ("badge: project", lambda: f"/projects/{pick(projects)}/badge.svg"),
        ("badge: big project", lambda: f"/projects/{BIG}/badge.svg"),
        ("api: summary", lambda: "/api/v1/summary"),
        ("api: projects by prefix", lambda: f"/api/v1/projects?prefix={pick(projects)[:9]}"),
        ("api: projects (deep cursor)", deep_projects),
        ("api: project", lambda: f"/api/v1/projects/{pick(projects)}"),
        ("api: releases", lambda: f"/api/v1/projects/{pick(projects)}/releases"),
        ("api: releases (big)", lambda: f"/api/v1/projects/{BIG}/releases"),
        ("api: release", lambda: "/api/v1/projects/{}/releases/{}".format(*pick(releases))),
        ("api: file", lambda: f"/api/v1/files/{pick(files)}"),
        ("api: file attempts", lambda: f"/api/v1/files/{pick(files)}/attempts"),
        ("api: attempts", lambda: "/api/v1/attempts"),
        ("api: attempts (mismatch)", lambda: "/api/v1/attempts?verdict=mismatch"),
        ("api: attempts (queued)", lambda: "/api/v1/attempts?status=queued"),
        ("api: attempt", lambda: f"/api/v1/attempts/{pick(attempts)}"),
        ("api: verdicts", lambda: "/api/v1/verdicts"),
        ("api: verdicts (failed)", lambda: "/api/v1/verdicts?verdict=failed"),
        ("api: queue and workers", lambda: "/api/v1/queue"),
        ("api: bundle", lambda: f"/api/v1/files/{pick(attested)}/bundle"),
        ("api: log checkpoint", lambda: "/api/v1/log/checkpoint"),
        (
            "api: inclusion proof",
            lambda: f"/api/v1/log/inclusion?index={rng.randrange(size)}&tree_size={size}",
        ),
        (
            "api: consistency proof",
            lambda: f"/api/v1/log/consistency?old_size={rng.randrange(1, size)}&new_size={size}",
        ),
        ("api: openapi.json", lambda: "/api/v1/openapi.json"),
        ("page: release source", lambda: "/projects/{}/{}/source".format(*pick(releases))),
        (
            "page: release source (inconsistent, diff)",
            lambda: "/projects/{}/{}/source".format(*pick(inconsistent)),
        ),
        ("page: release source (signed)", lambda: "/projects/{}/{}/source".format(*pick(signed))),
        (
            "api: source check",
            lambda: "/api/v1/projects/{}/releases/{}/source".format(*pick(releases)),
        ),
        (
            "api: source bundle",
            lambda: "/api/v1/projects/{}/releases/{}/source/bundle".format(*pick(signed)),
        ),
        ("api: keys", lambda: "/api/v1/keys"),
        ("page: keys", lambda: "/keys"),
    ]


BASE = [""]


def measure(
    url: str, *, requests: int, warmup: int, seed: int, data_dir: Path
) -> list[tuple[str, float, float, float, int]]:
    """(name, p50 ms, p95 ms, max ms, status) of each endpoint, sequential and warm."""
    settings = Settings(
        database_url=url,
        log_origin=ORIGIN,
        operator_token=None,
        data_dir=data_dir,
        signing_key=data_dir / "keys" / "signing-key.pem",
        log_key_name="bench.rebuilder.test",
    )
    load_or_create_key(settings.signing_key_path)  # its public half is served
    port = _free_port()
    BASE[0] = f"http://127.0.0.1:{port}"
    pool = open_pool(url, name="bench-web")
    server = uvicorn.Server(
        uvicorn.Config(web_app(settings, pool), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    rng = random.Random(seed)  # noqa: S311 - picks benchmark targets, not secrets
    results = []
    try:
        with httpx2.Client(base_url=BASE[0], timeout=30) as client:
            for name, target in endpoints(url, rng):
                statuses = set()
                for _ in range(warmup):
                    client.get(target())
                times = []
                for _ in range(requests):
                    path = target()
                    started = time.perf_counter()
                    answer = client.get(path)
                    _ = answer.content
                    times.append((time.perf_counter() - started) * 1000)
                    statuses.add(answer.status_code)
                    if answer.status_code >= 400:
                        logger.warning("%s -> %s", path, answer.status_code)
                times.sort()
                p95 = times[max(0, round(0.95 * len(times)) - 1)]
                results.append((name, statistics.median(times), p95, times[-1], max(statuses)))
                logger.info("%-40s p50 %6.1f ms  p95 %6.1f ms", name, results[-1][1], p95)
    finally:
        server.should_exit = True
        thread.join(10)
        pool.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", default="rebuilder_bench_web")
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per endpoint")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep an already filled database")
    parser.add_argument("--report", type=Path, default=None, help="write the table here")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="blobs and key (default: a new temp folder)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    url = f"{SERVER}/{args.database}"
    timings: dict[str, float] = {}
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-web-"))
    if not args.reuse:
        url = _make_database(args.database)
        migrate(url)
        started = time.perf_counter()
        timings = fill(url, args.attempts)
        fill_log(url)
        timings["source checks"] = fill_sources(
            url, BlobStore(Settings(data_dir=data_dir).blob_dir)
        )
        timings["total fill"] = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM attempts), (SELECT count(*) FROM files), "
            "(SELECT count(*) FROM releases), (SELECT count(*) FROM projects), "
            "(SELECT count(*) FROM source_checks)"
        ).fetchone()
    assert counts is not None
    with_trigger, without = trigger_cost(url)
    results = measure(
        url, requests=args.requests, warmup=args.warmup, seed=args.seed, data_dir=data_dir
    )
    lines = [
        f"Data: {counts[0]:,} attempts, {counts[1]:,} files, {counts[2]:,} releases, "
        f"{counts[3]:,} projects (one with {BIG_RELEASES:,} releases), "
        f"{counts[4]:,} source checks; "
        f"{args.requests} sequential warm requests per row, random targets.",
        "",
        "| endpoint | p50 ms | p95 ms | max ms | status |",
        "|---|---:|---:|---:|---:|",
        *(f"| {n} | {p50:.1f} | {p95:.1f} | {mx:.1f} | {st} |" for n, p50, p95, mx, st in results),
        "",
        f"Slowest p95: {max(r[2] for r in results):.1f} ms. Summary triggers: inserting "
        f"20,000 finished attempts took {with_trigger:.2f} s with them, {without:.2f} s without.",
    ]
    if timings:
        lines.append("Fill: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ".")
    text = "\n".join(lines)
    print(text)
    if args.report:
        args.report.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
