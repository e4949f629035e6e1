"""Record an attempt's outcome and its signed statements in one transaction.

The verdict, the log entries of its envelopes and the ``attestations`` rows that tie
them to the attempt commit together or not at all: an outcome is never recorded without
its attestations, and an envelope is never logged for an outcome that was refused (an
attempt already finished by someone else, a claim taken back from a silent worker).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from rebuilder.store import attempts
from rebuilder.store.db import Connection
from rebuilder.store.log import TransparencyLog
from rebuilder.verdict import FileResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedStatement:
    """One envelope line of a file's bundle and what kind of statement it carries."""

    kind: str  # provenance | vsa | failure
    line: str  # the DSSE envelope, one line of JSON


def record_outcome(
    conn: Connection,
    attempt_id: int,
    result: FileResult,
    *,
    worker: str,
    strategy_json: Mapping[str, Any] | None,
    image_digest: str | None,
    evidence_manifest: Mapping[str, str] | None,
    statements: Sequence[SignedStatement],
    log_origin: str,
) -> bool:
    """Finish the attempt held by ``worker`` and log its statements; False if refused."""
    with conn.transaction() as tx:
        finished = attempts.finish_attempt(
            conn,
            attempt_id,
            result,
            strategy_json,
            image_digest,
            worker=worker,
            evidence_manifest=evidence_manifest,
        )
        if not finished:
            raise psycopg.Rollback(tx)
        if statements:
            entries = TransparencyLog(conn, log_origin).append_many(s.line for s in statements)
            row = conn.execute("SELECT file_id FROM attempts WHERE id = %s", (attempt_id,))
            file_id = int(_first(row.fetchone()))
            with conn.cursor() as cur:
                cur.executemany(
                    """
                    INSERT INTO attestations
                        (attempt_id, file_id, position, kind, log_origin, leaf_index)
                    VALUES (%s, %s, %s, %s, %s, %s)
                    """,
                    [
                        (attempt_id, file_id, i, s.kind, log_origin, e.index)
                        for i, (s, e) in enumerate(zip(statements, entries, strict=True))
                    ],
                )
        return True
    return False


def bundle_lines(conn: Connection, file_id: int) -> list[str]:
    """The envelope lines of the file's latest attested attempt, in bundle order."""
    rows = conn.execute(
        """
        SELECT e.entry FROM attestations t
        JOIN log_entries e ON e.origin = t.log_origin AND e.leaf_index = t.leaf_index
        WHERE t.attempt_id = (
            SELECT max(attempt_id) FROM attestations WHERE file_id = %s
        )
        ORDER BY t.position
        """,
        (file_id,),
    ).fetchall()
    return [bytes(r[0]).decode("utf-8") for r in rows]


def _first(row: tuple[Any, ...] | None) -> Any:  # noqa: ANN401 - one column of any type
    if row is None:
        msg = "the attempt vanished inside its own transaction"
        raise AssertionError(msg)
    return row[0]
